"""The MFCC baseline (SPEC section 2, last row): 120 statistics of the whole clip."""
from __future__ import annotations

import torch
import torchaudio.functional as AF

from ..audio import InputConfig, fix_length, mel_filterbank, power_spectrogram, power_to_db
from .base import Frontend


class MFCC(Frontend):
    """20 MFCCs + delta + delta-delta; mean and std of each over time -> 120 values.

    Layout of the vector: [mean(mfcc), std(mfcc), mean(d), std(d), mean(dd), std(dd)],
    20 values each. Standard deviations are population (ddof 0).
    """

    input_kind = "audio"

    def __init__(self, n_mfcc: int = 20, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                 sample_rate: int = 12000, f_min: float = 0.0, f_max: float = 6000.0,
                 amin: float = 1e-10, top_db: float = 80.0):
        super().__init__()

        cfg = InputConfig(sample_rate=sample_rate, f_min=f_min, f_max=f_max)
        self.n_fft, self.hop, self.amin, self.top_db = n_fft, hop_length, amin, top_db
        self.register_buffer("fbank", mel_filterbank(cfg, n_fft=n_fft, n_mels=n_mels), persistent=False)
        self.register_buffer("dct", AF.create_dct(n_mfcc, n_mels, norm="ortho"), persistent=False)
        self.feature_dim = 6 * n_mfcc

    def coefficients(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(time,) -> the MFCCs, their deltas and delta-deltas, each (frames, n_mfcc)."""
        if audio.shape[-1] < self.n_fft:
            audio = fix_length(audio, self.n_fft, axis=-1)
        mel = power_spectrogram(audio, self.n_fft, self.hop) @ self.fbank
        coeffs = power_to_db(mel, self.amin, self.top_db) @ self.dct
        delta = torch.diff(coeffs, dim=0)
        return coeffs, delta, torch.diff(delta, dim=0)

    def clip_features(self, audio: torch.Tensor) -> torch.Tensor:
        """(time,) -> (120,)"""
        stats = []
        for m in self.coefficients(audio):
            stats += [m.mean(dim=0), m.std(dim=0, unbiased=False)]
        return torch.cat(stats)

    def forward(self, clips: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.clip_features(c) for c in clips])
