"""Datasets: each module reads one published layout and says which protocol it implies."""
from __future__ import annotations

from omegaconf import DictConfig

from ..config import with_schema
from ..errors import UserError
from .base import ClipSource, DatasetError


def build_dataset(dataset_cfg: DictConfig | dict) -> ClipSource:
    """Instantiate the dataset config's ``_target_`` (a ``build(**cfg)`` function) into a ClipSource."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    dataset_cfg = with_schema(dataset_cfg)
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


__all__ = ["ClipSource", "DatasetError", "build_dataset"]
