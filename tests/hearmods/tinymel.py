"""A HEAR 2021 module: a seeded random projection of a log-mel spectrogram at 16 kHz.

Scene embedding: the mean over frames of the projected frames; timestamp embeddings: the frames
themselves, every 20 ms. The model file, when given, holds the projection's seed (one integer).
"""
import math

import torch
import torchaudio

__version__ = "0.1"

SAMPLE_RATE, N_MELS, DIM, HOP = 16000, 32, 24, 320


class TinyMel(torch.nn.Module):
    sample_rate = SAMPLE_RATE
    scene_embedding_size = DIM
    timestamp_embedding_size = DIM

    def __init__(self, seed: int = 0):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=HOP, n_mels=N_MELS)
        g = torch.Generator().manual_seed(seed)
        self.proj = torch.nn.Parameter(torch.randn(N_MELS, DIM, generator=g) / math.sqrt(N_MELS), requires_grad=False)

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """(n, samples) -> (n, frames, DIM)"""
        return torch.log(self.mel(audio) + 1e-6).transpose(1, 2) @ self.proj


def load_model(model_file_path: str = "") -> TinyMel:
    seed = int(open(model_file_path).read().strip()) if model_file_path else 0
    return TinyMel(seed)


def get_timestamp_embeddings(audio: torch.Tensor, model: TinyMel):
    emb = model.frames(audio)
    ts = torch.arange(emb.shape[1], dtype=torch.float32) * (1000.0 * HOP / SAMPLE_RATE)
    return emb, ts.expand(audio.shape[0], -1)


def get_scene_embeddings(audio: torch.Tensor, model: TinyMel) -> torch.Tensor:
    return model.frames(audio).mean(dim=1)
