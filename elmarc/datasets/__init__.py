"""Datasets: each module reads one published layout and says which protocol it implies."""
from __future__ import annotations

import inspect
import typing

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config import checked_target, with_schema
from ..errors import UserError
from .base import ClipSource, DatasetError


def build_dataset(dataset_cfg: DictConfig | dict) -> ClipSource:
    """Instantiate the dataset config's ``_target_`` (a ``build(**cfg)`` function) into a ClipSource."""
    dataset_cfg = with_schema(dataset_cfg)
    checked_target(dataset_cfg.get("_target_"), "dataset._target_", _builds_a_clip_source, "a function that builds a ClipSource")
    try:
        source = instantiate(dataset_cfg, _convert_="all")
    except InstantiationException as exc:
        # Hydra wraps the loader's own error; the user needs that message, not the wrapper's
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        raise
    if not isinstance(source, ClipSource):
        raise DatasetError(f"dataset {dataset_cfg.get('name')!r}: {dataset_cfg.get('_target_')} did not build a ClipSource")
    if len(source) == 0:
        raise DatasetError(f"dataset {dataset_cfg.get('name')!r} has no clips under root {source.root!r}")
    return source


def _builds_a_clip_source(obj) -> bool:
    """A dataset loader: a function annotated to return a ClipSource (or a ClipSource class itself)."""
    if isinstance(obj, type):
        return issubclass(obj, ClipSource)
    if not inspect.isfunction(obj):
        return False
    try:
        returns = typing.get_type_hints(obj).get("return")
    except Exception:           # an annotation that does not resolve says nothing
        return False
    return isinstance(returns, type) and issubclass(returns, ClipSource)


__all__ = ["ClipSource", "DatasetError", "build_dataset"]
