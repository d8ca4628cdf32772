"""elmarc's random-weight front-ends as a HEAR 2021 module (hear-eval-kit, hear-validator, suites that read the API).

    import elmarc.hear as module
    model = module.load_model("vgg:large:1")          # front-end[:width[:seed]], defaults vgg:small:0
    module.get_scene_embeddings(audio, model)         # (n_sounds, n_samples) float32 in [-1, 1] at model.sample_rate
                                                      #   -> (n_sounds, scene_embedding_size)
    module.get_timestamp_embeddings(audio, model)     # -> (n_sounds, n_frames, d), timestamps (n_sounds, n_frames) ms

The front-end is a built-in name (``python -m elmarc.describe`` lists them) or the path of a declared
front-end's YAML. ``model.sample_rate`` is a HEAR rate, 16000 unless ``sample_rate=`` says another
(22050, 32000, 44100, 48000; or 12000, elmarc's own, for callers outside HEAR). hear-eval-kit does not
resample: it reads the task's folder of that rate. The module resamples to the front-ends' 12 kHz with
the resampler elmarc's loader uses (soxr HQ), so a scene embedding is exactly the feature vector elmarc
caches for a clip decoded at 12 kHz from audio at that rate: the same input pipeline (a clip shorter
than the paper's input is repeated until long enough, a longer one cropped from the start: 350 000
samples, or 1376 log-mel frames) and the same front-end, weights drawn from the seed.

Timestamp embeddings come from the whole clip's feature maps, computed once (frontends.time_maps): the
clip, repeated up to the paper's input length if shorter and never cropped, runs through the front-end
once; the embedding at t is each feature map averaged over the positions centred within the
``window_ms`` window around t (cut at the clip's edges; a window holding no position takes the
nearest one), so a window spanning a whole clip of the paper's length gives its scene embedding.
Deep layers have coarse positions (vgg's fifth layer, one per 27 s), so their share of a short window
is the position nearest it. Timestamps run from 0 every ``hop_ms`` (50 ms, HEAR's suggestion) while
inside the clip. Declared front-ends, whose maps are not exposed, run each window as its own clip.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from .audio import fix_length, log_mel, logmel_input, mel_filterbank, resample, waveform_input
from .config import ConfigError, FrontendConfig, InputConfig, compose, with_schema
from .frontends import FrontendFactory
from .frontends.time_maps import covers, pool_windows, time_maps

HEAR_RATES = (16000, 22050, 32000, 44100, 48000)
SAMPLE_RATE = 16000
DEFAULT_MODEL = "vgg:small:0"
TIMESTAMP_HOP_MS = 50.0
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

    def __init__(self, factory: FrontendFactory, input_cfg, spec: str, hop_ms: float = TIMESTAMP_HOP_MS,
                 window_ms: float = TIMESTAMP_WINDOW_MS, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.factory, self.input_cfg = factory, input_cfg
        self.frontend = frontend = factory.build()
        self.spec = spec
        self.sample_rate = int(sample_rate)
        self.scene_embedding_size = self.timestamp_embedding_size = int(frontend.feature_dim)
        self.hop_ms, self.window_ms = float(hop_ms), float(window_ms)
        self._fbank = mel_filterbank(input_cfg) if frontend.input_kind == "logmel" else None

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.frontend.parameters()), torch.device("cpu"))

    def to_model_rate(self, clip: np.ndarray) -> np.ndarray:
        """A clip at sample_rate resampled to the front-ends' rate, as elmarc's loader does."""
        return resample(clip, self.sample_rate, self.input_cfg.sample_rate, self.input_cfg.resampler)

    def inputs(self, clips: list[np.ndarray]):
        """The model inputs elmarc makes from each clip at 12 kHz (extract.inputs.ClipInputs does the same)."""
        kind = self.frontend.input_kind
        if kind == "waveform":
            return torch.stack([waveform_input(c, self.input_cfg) for c in clips])
        if kind == "logmel":
            return torch.stack([logmel_input(c, self.input_cfg, self._fbank) for c in clips])
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in clips]

    def whole_inputs(self, clips: list[np.ndarray]):
        """12 kHz clips of one length as a model input that keeps all of each, repeated up to the paper's
        length if shorter, and the input units per second (log-mel frames, or samples)."""
        cfg, kind = self.input_cfg, self.frontend.input_kind
        if kind == "waveform":
            return torch.stack([fix_length(torch.from_numpy(c), max(c.size, cfg.n_samples)) for c in clips]), cfg.sample_rate
        if kind == "logmel":
            mels = [log_mel(c, cfg, self._fbank) for c in clips]
            return (torch.stack([fix_length(m, max(m.shape[0], cfg.n_frames), axis=0) for m in mels]),
                    cfg.sample_rate / cfg.hop_length)
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in clips], cfg.sample_rate / self.frontend.hop

    @property
    def batch_size(self) -> int:
        """Clips per pass: the front-end's batch size for its width on this device, as elmarc extracts."""
        return self.factory.batch_size(self.device.type == "cuda")

    @torch.no_grad()
    def embed(self, clips: list[np.ndarray]) -> torch.Tensor:
        """Scene embeddings of 12 kHz clips, in batches, with the inputs on the model's device (HEAR's runners
        move the model to a GPU when there is one)."""
        device, batch_size = self.device, self.batch_size
        outs = [self.frontend(to_device(self.inputs(clips[i:i + batch_size]), device)).float().cpu()
                for i in range(0, len(clips), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, self.scene_embedding_size)


def to_device(inputs, device: torch.device):
    """A batch of model inputs (a tensor, or a list of whole clips) on device."""
    return inputs.to(device) if isinstance(inputs, torch.Tensor) else [x.to(device) for x in inputs]


def load_model(model_file_path: str = "", hop_ms: float = TIMESTAMP_HOP_MS, window_ms: float = TIMESTAMP_WINDOW_MS,
               frontend: str | None = None, width: str | None = None, seed: int | None = None,
               sample_rate: int = SAMPLE_RATE) -> ElmarcHearModel:
    """model_file_path names the front-end, width and seed: 'front-end[:width[:seed]]' (default vgg:small:0);
    a declared front-end's YAML path (optionally ':width:seed'); or a text file holding such a spec. The other
    arguments are a runner's --model-options: frontend/width/seed override the spec, sample_rate is the rate
    audio arrives at (a HEAR rate; 12000 is elmarc's own), hop_ms/window_ms shape timestamp embeddings."""
    rate = int(sample_rate)
    if rate not in HEAR_RATES and rate != InputConfig().sample_rate:
        raise ValueError(f"load_model: sample_rate={sample_rate} is not a HEAR rate; use one of {list(HEAR_RATES)} "
                         f"(or {InputConfig().sample_rate}, elmarc's own)")
    if not (hop_ms > 0 and window_ms > 0):
        raise ValueError(f"load_model: hop_ms={hop_ms} and window_ms={window_ms} must be positive")
    spec = str(model_file_path or "")
    as_file = Path(spec).expanduser()
    if spec and as_file.is_file() and not spec.endswith((".yaml", ".yml")):
        spec = as_file.read_text().strip()
    name, width_, seed_ = parse_model_spec(spec)
    name, width, seed = frontend or name, width or width_, int(seed if seed is not None else seed_)
    cfg = InputConfig()
    shape = {"n_samples": cfg.n_samples, "n_frames": cfg.n_frames, "n_mels": cfg.n_mels}
    factory = FrontendFactory.of(frontend_config(name), width, seed, shape)
    return ElmarcHearModel(factory, cfg, f"{name}:{width}:{seed}", hop_ms, window_ms, rate)


def _clips(audio: torch.Tensor, model: ElmarcHearModel) -> list[np.ndarray]:
    """(n_sounds, n_samples) at model.sample_rate -> 12 kHz clips."""
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        raise ValueError(f"audio must be a (n_sounds, n_samples) tensor, got {getattr(audio, 'shape', type(audio))}")
    if audio.shape[1] == 0:
        raise ValueError("audio has no samples")
    return [model.to_model_rate(a) for a in audio.detach().float().cpu().numpy()]


def get_scene_embeddings(audio: torch.Tensor, model: ElmarcHearModel) -> torch.Tensor:
    """(n_sounds, n_samples) at model.sample_rate -> (n_sounds, scene_embedding_size) float32: elmarc's features."""
    return model.embed(_clips(audio, model))


def timestamps_ms(n_samples: int, sample_rate: int, hop_ms: float) -> np.ndarray:
    """Window centres from 0 every hop_ms while inside the clip (at least one)."""
    duration_ms = 1000.0 * n_samples / sample_rate
    return np.arange(0.0, max(duration_ms, 1e-9), hop_ms)


def window_bounds(centres_ms: np.ndarray, window_ms: float, duration_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Each window [t - w/2, t + w/2] cut at the clip's edges, in seconds."""
    lo = np.clip(centres_ms - window_ms / 2, 0.0, duration_ms) / 1000.0
    hi = np.clip(centres_ms + window_ms / 2, 0.0, duration_ms) / 1000.0
    return lo, hi


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: ElmarcHearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) -> ((n_sounds, n_frames, d) float32, (n_sounds, n_frames) centres in ms)."""
    clips = _clips(audio, model)
    duration_ms = 1000.0 * audio.shape[1] / model.sample_rate
    centres = timestamps_ms(audio.shape[1], model.sample_rate, model.hop_ms)
    lo, hi = window_bounds(centres, model.window_ms, duration_ms)
    step = 1 if model.frontend.input_kind == "audio" else model.batch_size
    emb = torch.cat([_pooled_maps(clips[i:i + step], model, lo, hi, duration_ms / 1000.0)
                     for i in range(0, len(clips), step)])
    ts = torch.as_tensor(centres, dtype=torch.float32).expand(len(clips), -1).contiguous()
    return emb, ts


def _pooled_maps(clips: list[np.ndarray], model: ElmarcHearModel, lo: np.ndarray, hi: np.ndarray,
                 duration_s: float) -> torch.Tensor:
    """12 kHz clips' timestamp embeddings (n_clips, n_windows, d) for windows [lo, hi] in seconds."""
    if not covers(model.frontend):                  # a declared front-end: each window as its own clip
        rate = model.input_cfg.sample_rate
        starts = [int(round(a * rate)) for a in lo]
        cuts = [(a, max(int(round(b * rate)), a + 1)) for a, b in zip(starts, hi)]
        return torch.stack([model.embed([clip[a:b] for a, b in cuts]) for clip in clips])
    x, units_per_second = model.whole_inputs(clips)
    maps = time_maps(model.frontend, to_device(x, model.device))
    # the clip's edges lie half an input unit beyond its first and last frame (or sample)
    lo_units = np.where(lo <= 0.0, -0.5, lo * units_per_second)
    hi_units = np.where(hi >= duration_s, hi * units_per_second + 0.5, hi * units_per_second)
    return pool_windows(maps, torch.from_numpy(lo_units), torch.from_numpy(hi_units))
