"""Check a composed config before any audio is read: name the key, the value and what is allowed."""
from __future__ import annotations

from omegaconf import DictConfig

from .frontends import WIDTHS

PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


class ConfigError(ValueError):
    pass


def _int(key, value, minimum=None, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} is not allowed: use an integer" + (f" >= {minimum}" if minimum is not None else "")
                          + (" or null" if allow_none else ""))
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} is out of range: use an integer >= {minimum}")


def _number(key, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} is not allowed: use a number")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} is out of range: use a number >= {minimum}")


def _choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {list(allowed)}")


def _bool(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: use true or false")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first wrong value found."""
    _int("seed", cfg.seed, 0)
    _choice("features.width", cfg.features.width, WIDTHS)
    _int("extract.batch_size", cfg.extract.batch_size, 1, allow_none=True)
    _int("extract.num_workers", cfg.extract.num_workers, 0, allow_none=True)
    _int("extract.threads", cfg.extract.get("threads"), 1, allow_none=True)
    _int("extract.devices", cfg.extract.devices, 1)
    _choice("extract.precision", str(cfg.extract.precision), PRECISIONS)
    _choice("extract.accelerator", cfg.extract.accelerator, ACCELERATORS)
    _choice("extract.on_error", cfg.extract.on_error, ("skip", "raise"))
    _bool("extract.audio_cache", cfg.extract.audio_cache)
    _choice("extract.compile", str(cfg.extract.get("compile", "auto")).lower(), ("auto", "true", "false"))
    _bool("extract.tf32", cfg.extract.get("tf32", False))
    _bool("extract.progress", cfg.extract.progress)
    _bool("classify.standardize", cfg.classify.standardize)
    for key in ("sample_rate", "n_samples", "n_frames", "n_fft", "hop_length", "n_mels"):
        _int(f"input.{key}", cfg.input[key], 1)
    for key in ("f_min", "f_max", "amin", "top_db"):
        _number(f"input.{key}", cfg.input[key], 0)
    if cfg.input.f_max > cfg.input.sample_rate / 2:
        raise ConfigError(f"input.f_max={cfg.input.f_max} is above the Nyquist frequency of "
                          f"input.sample_rate={cfg.input.sample_rate}: use at most {cfg.input.sample_rate / 2}")
    _choice("input.resampler", cfg.input.resampler, ("soxr_hq", "polyphase"))
    if "n_folds" in cfg.dataset:
        _int("dataset.n_folds", cfg.dataset.n_folds, 2)
    fe = cfg.frontend
    for key in ("name", "model"):
        if key not in fe:
            raise ConfigError(f"frontend config lacks '{key}' (see conf/frontend/*.yaml)")
    if fe.get("widths") is not None:
        for w in WIDTHS:
            _int(f"frontend.widths.{w}", fe.widths.get(w), 1)
    for w in WIDTHS:
        _int(f"frontend.batch_size.{w}", fe.batch_size.get(w), 1)
        if fe.get("gpu_batch_size") is not None:
            _int(f"frontend.gpu_batch_size.{w}", fe.gpu_batch_size.get(w), 1)
    clf = cfg.classifier
    if clf.get("name") == "svm":
        for c in clf.C:
            _number("classifier.C", c, 1e-12)
        for g in clf.gammas:
            if g != "auto":
                _number("classifier.gammas", g, 1e-300)
    if clf.get("name") == "elm":
        for k in clf.n_hidden:
            _int("classifier.n_hidden", k, 1)
