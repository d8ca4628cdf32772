"""Random-weight CNN front-ends (SPEC section 2) and how they are built from config."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ..config import WIDTHS, ConfigError, FrontendConfig, checked_target, with_schema
from .base import Frontend, FrontendConfigError, init_random_


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
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from .declarative import Declared

    frontend_cfg = with_schema(frontend_cfg, FrontendConfig)
    nf = resolve_nf(frontend_cfg, width)
    kwargs: dict[str, Any] = {} if nf is None else {"nf": nf}
    cls = checked_target(frontend_cfg.model.get("_target_"), "frontend.model._target_",
                         lambda c: isinstance(c, type) and issubclass(c, Frontend), "an elmarc Frontend class")
    if issubclass(cls, Declared):
        kwargs["name"] = str(frontend_cfg.get("name", "custom"))
        kwargs.update(input_shape or {})
    try:
        model = instantiate(frontend_cfg.model, **kwargs, _convert_="all")
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__ from None
        if isinstance(exc.__cause__, TypeError):      # an argument the class does not take (a misspelt key)
            raise FrontendConfigError(f"frontend {frontend_cfg.get('name')!r}: frontend.model: {exc.__cause__}") from None
        raise
    if not isinstance(model, Frontend):
        raise ConfigError(f"frontend {frontend_cfg.get('name')!r}: {type(model).__name__} is not an elmarc Frontend")
    if getattr(model, "pretrained", False):       # a HEAR module's own weights: nothing to draw
        return model.eval()
    return init_random_(model, seed)


def has_weights(model: Frontend) -> bool:
    """Front-ends without parameters (mfcc) or with fixed ones (a HEAR module) give the same features for every seed."""
    return not getattr(model, "seed_free", False) and any(True for _ in model.parameters())
