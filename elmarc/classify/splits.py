"""Train/evaluate index splits shared by the classifier grids and the protocols."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..storage import stable_hash


@dataclass(frozen=True)
class Split:
    """Row indices into the feature matrix: fit on ``train``, score on ``eval``.

    role: 'inner' (model selection inside an outer fold), 'outer' (a fold's held-out
    score), 'valid' or 'test' (predefined splits). outer: the held-out fold, -1 if none.
    """

    name: str
    train: np.ndarray
    eval: np.ndarray
    outer: int
    role: str


def standardise(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance with statistics of the training part only (constant columns kept at 0)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return (train - mean) / std, (other - mean) / std


@dataclass
class GridScores:
    """What a grid's fits give, each (n_splits, n_settings): accuracy, the predicted labels of the
    split's evaluation clips, and per fit whether it was capped (stopped at the user's iteration
    limit: approximate) or solved by the exact fallback."""

    accuracy: np.ndarray
    capped: np.ndarray
    exact: np.ndarray
    predictions: np.ndarray             # object array: each cell (n_eval,) labels

    @classmethod
    def empty(cls, n_splits: int, n_settings: int) -> GridScores:
        shape = (n_splits, n_settings)
        return cls(np.full(shape, np.nan), np.zeros(shape, bool), np.zeros(shape, bool), np.empty(shape, dtype=object))


def with_splits(clips: pd.DataFrame, assignment: pd.DataFrame) -> pd.DataFrame:
    """The entry's clip table with this run's folds and splits: features do not depend on them, so one entry
    serves every fold assignment (dataset.n_folds), and rows must use the run's, not the extracting run's."""
    by_id = assignment.set_index("clip_id")
    out = clips.copy()
    for col in ("fold", "split"):
        if col in by_id:
            out[col] = out["clip_id"].map(by_id[col]).to_numpy()
    return out


def splits_id(assignment: pd.DataFrame) -> str:
    """A hash of the fold and split of every clip (part of every row cache key)."""
    cols = [c for c in ("clip_id", "fold", "split") if c in assignment]
    return stable_hash(assignment[cols].astype(str).to_numpy().tolist())[:16]
