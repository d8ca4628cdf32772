"""Any HEAR 2021 module as an elmarc front-end: its scene embeddings are the features.

``frontend=hear frontend.model.module=<importable module> frontend.model.model_file=<path or empty>``.
The module's weights are its own (no random init, no seed, no width); audio reaches it at its
``sample_rate`` (the job's input.sample_rate is set to it, so the decode-once audio cache keeps a
copy at that rate), as float32 in [-1, 1], one clip per call, or a fixed crop of ``crop_seconds``
(shorter clips repeated, as elmarc's own inputs) batched. Every answer is checked against the API
(shape, dtype, finite values); a module that breaks it stops the job with the module's name and
what was wrong, before any feature is cached.
"""
from __future__ import annotations

import hashlib
import importlib
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio import fix_length
from .base import Frontend, FrontendConfigError


class HearModuleError(FrontendConfigError):
    """A HEAR module that cannot be loaded or answers outside the API."""


def file_sha256(path: str) -> str | None:
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise HearModuleError(f"frontend.model.model_file={path!r} does not exist.\n"
                              f"  Fix: give the path of the module's weights, or leave it empty if it needs none.")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_sha256(module) -> str | None:
    """A digest of the module's Python source: its file, or every .py file of its package folder."""
    origin = getattr(module, "__file__", None)
    if not origin:
        return None
    path = Path(origin)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def module_version(name: str, module) -> str:
    """The module's __version__, or its distribution's version, or 'unknown'."""
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version(name.split(".")[0])
    except metadata.PackageNotFoundError:
        return "unknown"


class HearFrontend(Frontend):
    """Scene embeddings of a HEAR module: audio clips (list of (time,) tensors) -> (batch, scene_embedding_size)."""

    input_kind = "audio"
    pretrained = True            # its weights are the module's: build_frontend leaves them alone
    seed_free = True             # no seed changes it: one cache entry for every seed

    def __init__(self, module: str, model_file: str = "", crop_seconds: float | None = None):
        super().__init__()
        if not module:
            raise HearModuleError("frontend=hear needs frontend.model.module=<an importable HEAR module>")
        try:
            self.module = importlib.import_module(module)
        except Exception as exc:
            raise HearModuleError(f"HEAR module {module!r} cannot be imported ({type(exc).__name__}: {exc}).\n"
                                  f"  Fix: install it in this environment, or put its folder on PYTHONPATH.") from None
        missing = [f for f in ("load_model", "get_scene_embeddings") if not callable(getattr(self.module, f, None))]
        if missing:
            raise HearModuleError(f"HEAR module {module!r} has no {', '.join(missing)}: it does not follow the HEAR 2021 API")
        self.module_name, self.model_file, self.crop_seconds = module, str(model_file or ""), crop_seconds
        self._file_hash = file_sha256(self.model_file)
        self._source_hash = source_sha256(self.module)
        try:
            self.model = self.module.load_model(self.model_file) if self.model_file else self.module.load_model()
        except Exception as exc:            # the module's own failure: its name and its message, not a config key
            raise HearModuleError(f"HEAR module {module!r}: load_model raised {type(exc).__name__}: {exc}") from exc
        for attr in ("sample_rate", "scene_embedding_size"):
            if not isinstance(getattr(self.model, attr, None), (int, np.integer)):
                raise HearModuleError(f"HEAR module {module!r}: its model has no integer {attr}")
        self.sample_rate = int(self.model.sample_rate)
        self.feature_dim = int(self.model.scene_embedding_size)
        if isinstance(self.model, nn.Module):
            self.add_module("hear_model", self.model)      # its parameters count in the describe table
        self.check(self.embed([torch.zeros(self.sample_rate)]), 1)   # a probe: a module that breaks the API fails here

    def identity(self) -> dict:
        """What makes its features (part of the cache key): module, version, its source's and model file's
        hashes, crop. The source counts too: a local module edited without a new version is extracted again."""
        return {"module": self.module_name, "version": module_version(self.module_name, self.module),
                "source_sha256": self._source_hash, "model_file_sha256": self._file_hash,
                "sample_rate": self.sample_rate, "crop_seconds": self.crop_seconds}

    def check(self, emb, n: int) -> torch.Tensor:
        where = f"HEAR module {self.module_name!r}: get_scene_embeddings"
        if not isinstance(emb, torch.Tensor):
            raise HearModuleError(f"{where} returned {type(emb).__name__}, not a torch.Tensor")
        if tuple(emb.shape) != (n, self.feature_dim):
            raise HearModuleError(f"{where} returned shape {tuple(emb.shape)} for {n} clip(s); the API needs "
                                  f"({n}, scene_embedding_size={self.feature_dim})")
        if emb.dtype != torch.float32:
            raise HearModuleError(f"{where} returned {emb.dtype}; the API needs torch.float32")
        if not bool(torch.isfinite(emb).all()):
            raise HearModuleError(f"{where} returned NaN or infinite values")
        return emb

    def embed(self, clips: list[torch.Tensor]) -> torch.Tensor:
        device = next((p.device for p in self.model.parameters()), torch.device("cpu")) if isinstance(self.model, nn.Module) else None
        if self.crop_seconds:
            n = int(round(self.crop_seconds * self.sample_rate))
            audio = torch.stack([fix_length(c.float(), n, axis=-1) for c in clips])
            out = self._scene_embeddings(audio.to(device) if device else audio)
            return self.check(out, len(clips)).detach().float().cpu()
        outs = []
        for c in clips:                      # whole clips differ in length: one call each
            a = c.float()[None]
            outs.append(self.check(self._scene_embeddings(a.to(device) if device else a), 1).detach().cpu())
        return torch.cat(outs)

    def _scene_embeddings(self, audio: torch.Tensor):
        try:
            return self.module.get_scene_embeddings(audio, self.model)
        except Exception as exc:            # the module's own failure: its name and its message
            raise HearModuleError(f"HEAR module {self.module_name!r}: get_scene_embeddings raised "
                                  f"{type(exc).__name__}: {exc}") from exc

    def forward(self, clips: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(clips, torch.Tensor):
            clips = list(clips)
        with torch.no_grad():
            return self.embed(clips)
