"""elmarc's random-weight front-ends as a HEAR 2021 module (hear-eval-kit, and suites that read the API).

    import elmarc.hear as module
    model = module.load_model("vgg:large:1")          # front-end[:width[:seed]], defaults vgg:small:0
    module.get_scene_embeddings(audio, model)         # (n_sounds, n_samples) float32 in [-1, 1] at 12 kHz
                                                      #   -> (n_sounds, scene_embedding_size)
    module.get_timestamp_embeddings(audio, model)     # -> (n_sounds, n_frames, d), timestamps (n_sounds, n_frames) ms

The front-end is a built-in name (``python -m elmarc.describe`` lists them) or the path of a declared
front-end's YAML. ``sample_rate`` is 12000: resampling is the caller's job in HEAR (hear-eval-kit
resamples every task to the module's rate). Scene embeddings are exactly the feature vectors elmarc
caches for a clip: the same input pipeline (a clip shorter than the paper's input is repeated until
long enough, a longer one cropped from the start: 350 000 samples, or 1376 log-mel frames) and the
same front-end, weights drawn from the seed.

Timestamp embeddings are windowed features: the embedding at t is the scene embedding of the
TIMESTAMP_WINDOW_MS window of audio centred at t (cut at the clip's edges), every TIMESTAMP_HOP_MS
from t = 0. Windowed for every front-end alike: several architectures pool time away (vgg's maps
end 1 x 1), and the windowed vector is the one elmarc's classifiers see for a clip of that length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from .audio import logmel_input, mel_filterbank, waveform_input
from .config import ConfigError, FrontendConfig, InputConfig, compose, with_schema
from .frontends import build_frontend

SAMPLE_RATE = 12000
DEFAULT_MODEL = "vgg:small:0"
TIMESTAMP_HOP_MS = 250.0
TIMESTAMP_WINDOW_MS = 1000.0


def parse_model_spec(spec: str) -> tuple[str, str, int]:
    """'vgg' -> ('vgg', 'small', 0); 'vgg:large:1'; 'path/to/arch.yaml:large' -> (path, 'large', 0)."""
    parts = (spec or DEFAULT_MODEL).split(":")
    name = parts[0] or "vgg"
    width = parts[1] if len(parts) > 1 and parts[1] else "small"
    try:
        seed = int(parts[2]) if len(parts) > 2 and parts[2] else 0
    except ValueError:
        raise ValueError(f"load_model({spec!r}): the seed must be an integer (front-end[:width[:seed]])") from None
    return name, width, seed


def frontend_config(name: str):
    """A built-in front-end's config, or a declared front-end's YAML file."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"load_model: {path} does not exist (a declared front-end's YAML was expected)")
        return with_schema(OmegaConf.load(path), FrontendConfig)
    return compose([f"frontend={name}"]).frontend


class ElmarcHearModel(nn.Module):
    """A random front-end with the input settings it is cached with; the HEAR attributes."""

    sample_rate = SAMPLE_RATE

    def __init__(self, frontend, input_cfg, spec: str, hop_ms: float = TIMESTAMP_HOP_MS,
                 window_ms: float = TIMESTAMP_WINDOW_MS):
        super().__init__()

        self.frontend, self.input_cfg, self.spec = frontend, input_cfg, spec
        self.scene_embedding_size = self.timestamp_embedding_size = int(frontend.feature_dim)
        self.hop_ms, self.window_ms = float(hop_ms), float(window_ms)
        self._fbank = mel_filterbank(input_cfg) if frontend.input_kind == "logmel" else None

    def inputs(self, clips: list[np.ndarray]):
        """The model inputs elmarc makes from each clip (extract.inputs.ClipInputs does the same)."""
        kind = self.frontend.input_kind
        if kind == "waveform":
            return torch.stack([waveform_input(c, self.input_cfg) for c in clips])
        if kind == "logmel":
            return torch.stack([logmel_input(c, self.input_cfg, self._fbank) for c in clips])
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in clips]

    @torch.no_grad()
    def embed(self, clips: list[np.ndarray], batch_size: int = 16) -> torch.Tensor:
        """Scene embeddings of clips, in batches, with the inputs on the model's device (HEAR's runners move
        the model to a GPU when there is one)."""
        device = next((p.device for p in self.frontend.parameters()), torch.device("cpu"))
        outs = [self.frontend(to_device(self.inputs(clips[i:i + batch_size]), device)).float().cpu()
                for i in range(0, len(clips), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, self.scene_embedding_size)


def to_device(inputs, device: torch.device):
    """A batch of model inputs (a tensor, or a list of whole clips) on device."""
    return inputs.to(device) if isinstance(inputs, torch.Tensor) else [x.to(device) for x in inputs]


def load_model(model_file_path: str = "", hop_ms: float = TIMESTAMP_HOP_MS, window_ms: float = TIMESTAMP_WINDOW_MS,
               frontend: str | None = None, width: str | None = None, seed: int | None = None) -> ElmarcHearModel:
    """model_file_path names the front-end, width and seed: 'front-end[:width[:seed]]' (default vgg:small:0);
    a declared front-end's YAML path (optionally ':width:seed'); or a text file holding such a spec (runners
    such as hear-eval-kit's accept only existing files as --model). frontend/width/seed override it (a
    runner's --model-options)."""
    spec = str(model_file_path or "")
    as_file = Path(spec).expanduser()
    if spec and as_file.is_file() and not spec.endswith((".yaml", ".yml")):
        spec = as_file.read_text().strip()
    name, width_, seed_ = parse_model_spec(spec)
    name, width, seed = frontend or name, width or width_, int(seed if seed is not None else seed_)
    cfg = InputConfig()
    shape = {"n_samples": cfg.n_samples, "n_frames": cfg.n_frames, "n_mels": cfg.n_mels}
    frontend = build_frontend(frontend_config(name), width, seed, shape)
    return ElmarcHearModel(frontend, cfg, f"{name}:{width}:{seed}", hop_ms, window_ms)


def _clips(audio: torch.Tensor) -> list[np.ndarray]:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        raise ValueError(f"audio must be a (n_sounds, n_samples) tensor, got {getattr(audio, 'shape', type(audio))}")
    if audio.shape[1] == 0:
        raise ValueError("audio has no samples")
    return [a for a in audio.detach().float().cpu().numpy()]


def get_scene_embeddings(audio: torch.Tensor, model: ElmarcHearModel) -> torch.Tensor:
    """(n_sounds, n_samples) at 12 kHz -> (n_sounds, scene_embedding_size) float32: elmarc's feature vectors."""
    return model.embed(_clips(audio))


def timestamps_ms(n_samples: int, hop_ms: float) -> np.ndarray:
    """Window centres from 0 every hop_ms while inside the clip (at least one)."""
    duration_ms = 1000.0 * n_samples / SAMPLE_RATE
    return np.arange(0.0, max(duration_ms, 1e-9), hop_ms)


def get_timestamp_embeddings(audio: torch.Tensor, model: ElmarcHearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) -> ((n_sounds, n_frames, d) float32, (n_sounds, n_frames) centres in ms)."""
    clips = _clips(audio)
    n = audio.shape[1]
    centres = timestamps_ms(n, model.hop_ms)
    half = int(round(model.window_ms / 2000.0 * SAMPLE_RATE))
    windows = []
    for clip in clips:
        for c in centres:
            mid = int(round(c / 1000.0 * SAMPLE_RATE))
            windows.append(clip[max(0, mid - half):min(n, mid + half)] if min(n, mid + half) > max(0, mid - half) else clip[:1])
    emb = model.embed(windows).reshape(len(clips), len(centres), -1)
    ts = torch.as_tensor(centres, dtype=torch.float32).expand(len(clips), -1).contiguous()
    return emb, ts
