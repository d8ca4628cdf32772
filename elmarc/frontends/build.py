"""How front-ends are built from config: the factory a job holds, the weights SPEC draws, the memory check."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode

from ..config import WIDTHS, ConfigError, FrontendConfig, checked_target, with_schema
from .base import Frontend, FrontendConfigError, init_random_
from .declarative import Declared
from .speed import ops


def resolve_nf(frontend_cfg: DictConfig | dict, width: str) -> int | None:
    """Filters per layer for this width, or None for front-ends without a width (mfcc)."""
    if width not in WIDTHS:
        raise ConfigError(f"features.width={width!r} is not allowed; use one of {list(WIDTHS)}")
    widths = frontend_cfg.get("widths")
    if widths is None:
        return None
    return int(widths[width])


def build_frontend(frontend_cfg: DictConfig | dict, width: str, seed: int,
                   input_shape: dict | None = None) -> Frontend:
    """Instantiate ``frontend_cfg.model`` with the width's nf and SPEC's seeded random init.

    input_shape (n_samples, n_frames, n_mels) lets declared front-ends check their layers
    against the configured input; the paper's sizes are used when it is None.
    """
    frontend_cfg = with_schema(frontend_cfg, FrontendConfig)
    model = _instantiate(frontend_cfg, width, input_shape)
    if getattr(model, "pretrained", False):       # a HEAR module's own weights: nothing to draw
        return model.eval()
    return init_random_(model, seed)


def _instantiate(frontend_cfg: DictConfig, width: str, input_shape: dict | None) -> Frontend:


    nf = resolve_nf(frontend_cfg, width)
    kwargs: dict[str, Any] = {} if nf is None else {"nf": nf}
    cls = checked_target(frontend_cfg.model.get("_target_"), "frontend.model._target_",
                         lambda c: isinstance(c, type) and issubclass(c, Frontend), "an elmarc Frontend class")
    if issubclass(cls, Declared):
        kwargs["name"] = str(frontend_cfg.get("name", "custom"))
        kwargs.update(input_shape or {})
    given = {k: v for k, v in frontend_cfg.model.items() if k != "_target_"}
    try:                        # an argument the class does not take (a misspelt key), told before anything runs
        inspect.signature(cls).bind(**{**given, **kwargs})
    except TypeError as exc:
        raise FrontendConfigError(f"frontend {frontend_cfg.get('name')!r}: frontend.model: {exc}") from None
    try:
        model = instantiate(frontend_cfg.model, **kwargs, _convert_="all")
    except InstantiationException as exc:   # the class's own error, not the config's: its message, or its traceback
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__ from None
        raise
    if not isinstance(model, Frontend):
        raise ConfigError(f"frontend {frontend_cfg.get('name')!r}: {type(model).__name__} is not an elmarc Frontend")
    return model


def memory_need(frontend_cfg: DictConfig | dict, width: str, input_shape: dict, batch: int) -> tuple[int, int] | None:
    """(bytes of the weights, bytes of the largest map at this batch, as the plain forms make it: an upper bound
    of what the faster forms hold) of a front-end, from a copy on the meta device (nothing allocated); None
    where it cannot be told (a HEAR module, a whole-clip input)."""
    frontend_cfg = with_schema(frontend_cfg, FrontendConfig)
    if "hear" in str(frontend_cfg.model.get("_target_", "")):
        return None
    largest = [0]

    class Sizes(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    largest[0] = max(largest[0], t.numel() * t.element_size())
            return out

    try:
        with torch.device("meta"):
            model = _instantiate(frontend_cfg, width, input_shape)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        if model.input_kind == "waveform":
            x = torch.zeros(batch, int(input_shape["n_samples"]), device="meta")
        elif model.input_kind == "logmel":
            x = torch.zeros(batch, int(input_shape["n_frames"]), int(input_shape["n_mels"]), device="meta")
        else:
            return None

        with torch.no_grad(), ops.direct_convolution(), Sizes():     # the plain maps: few ops, and the largest
            model(x)
    except ConfigError:
        raise
    except Exception:           # a model the meta device cannot run says nothing about its size
        return None
    return weights, largest[0]


def has_weights(model: Frontend) -> bool:
    """Front-ends without parameters (mfcc) or with fixed ones (a HEAR module) give the same features for every seed."""
    return not getattr(model, "seed_free", False) and any(True for _ in model.parameters())


@dataclass(frozen=True)
class FrontendFactory:
    """One job's front-end: its config node (over the schema), width, seed and input shape; builds fresh,
    identically initialised copies (the extract stage uses one, the train stage one per run)."""

    config: DictConfig
    width: str
    seed: int
    input_shape: dict

    @classmethod
    def of(cls, frontend_cfg: DictConfig | dict, width: str, seed: int, input_shape: dict) -> FrontendFactory:
        return cls(with_schema(frontend_cfg, FrontendConfig), str(width), int(seed), dict(input_shape))

    @property
    def name(self) -> str:
        return str(self.config.name)

    @property
    def nf(self) -> int | None:
        return resolve_nf(self.config, self.width)

    def build(self) -> Frontend:
        return build_frontend(self.config, self.width, self.seed, self.input_shape)

    def batch_size(self, gpu: bool) -> int:
        """The config's batch size for the width: gpu_batch_size on a GPU, else batch_size."""
        sizes = self.config.gpu_batch_size if gpu else self.config.batch_size
        return int(sizes[self.width])

    def compile_pays(self, gpu: bool) -> bool:
        """Whether the config's compile flag for this device says torch.compile pays (at the large width only:
        there a job runs minutes to hours, and the compile's start-up would dominate a small one)."""
        flag = self.config.compile.gpu if gpu else self.config.compile.cpu
        return bool(flag) and self.width == "large"

    def check_fits(self, batch: int, available: int | None, where: str) -> None:
        """Refuse, before anything is allocated, a front-end whose weights and maps cannot fit (a width typed
        with a zero too many): weights + twice the largest map at this batch, counted on the meta device."""
        need = memory_need(self.config, self.width, self.input_shape, batch)
        if need is None or available is None or need[0] + 2 * need[1] <= available:
            return
        gib = 2 ** 30
        raise ConfigError(f"frontend {self.name!r} at width {self.width} cannot fit: its weights take "
                          f"{need[0] / gib:.1f} GiB and its largest map {need[1] / gib:.1f} GiB at batch {batch}, "
                          f"{(need[0] + 2 * need[1]) / gib:.1f} GiB in all; {available / gib:.1f} GiB are available "
                          f"({where}).\n  Fix: a smaller frontend.widths.{self.width} or extract.batch_size.")
