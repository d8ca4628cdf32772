"""A job's classifier grid: the class its config names (checked before anything is built) and what a fit needs."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ..config import checked_target
from ..errors import UserError


def grid_class(classifier_cfg: dict):
    """The classifier grid's class, only if it is one (a class with settings to score)."""
    return checked_target(classifier_cfg.get("_target_"), "classifier._target_",
                          lambda c: isinstance(c, type) and callable(getattr(c, "scores", None)) and hasattr(c, "uses_seed"),
                          "a classifier grid class (with scores() and uses_seed, as elmarc.classify.SVMGrid)")


def build_grid(classifier_cfg: dict, seed: int, n_jobs: int = 1):
    """The classifier grid of the config; the seed goes to grids with random weights (ELM) only, n_jobs to those that fit in parallel."""
    cls = grid_class(classifier_cfg)
    extra = {"seed": int(seed)} if cls.uses_seed else {}
    if "n_jobs" in inspect.signature(cls).parameters:
        extra["n_jobs"] = int(n_jobs)
    try:
        return instantiate(classifier_cfg, **extra, _convert_="all")
    except InstantiationException as exc:          # the grid's own message for a setting that cannot work
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        raise


@dataclass(frozen=True)
class GridJob:
    """What the classifier stage fits for one job: the grid's config, the protocol, standardisation, the seed,
    how many fits run at a time, the labels of its rows, and the run's fold and split of every clip."""

    classifier: dict
    protocol: str
    standardize: bool
    seed: int
    n_jobs: int
    labels: dict                                   # dataset, frontend, width
    assignment: pd.DataFrame = field(repr=False)   # clip_id, fold, split

    @property
    def name(self) -> str:
        return str(self.classifier["name"])

    @property
    def uses_seed(self) -> bool:
        return bool(grid_class(self.classifier).uses_seed)

    def build(self):
        return build_grid(self.classifier, self.seed, self.n_jobs)
