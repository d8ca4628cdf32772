"""The classify stage of one job: reads only the feature cache, fits a grid under a protocol, returns tidy rows.

Rows are cached by what made them. A run that no seed can change (a weightless front-end with
a deterministic classifier: MFCC + SVM) is keyed without the seed, so a sweep over seeds fits
it once, and its rows say ``seeded = False`` so that statistics count it once.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..entry import CacheEntry
from ..errors import UserError
from ..extract.feature_cache import FeatureEntry
from ..resources import blas_threads
from ..results import cached_rows, result_row, rows_table
from .grid import GridJob
from .protocols import plan_splits, select
from .splits import GridScores, splits_id, with_splits

log = logging.getLogger(__name__)

FORMAT = 4                # what a rows entry holds and how it is keyed; older entries are fitted again


def classify_stage(entry: FeatureEntry, grid: GridJob, results_dir: Path, fit: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the grid on the cached features (or, fit=False, only read what is cached for them):
    (one row per reported fold, one row per test clip of each reported fold). The run's fold and split of
    every clip (grid.assignment) replace those the entry recorded when it was extracted."""
    seeded = entry.spec.get("seed") is not None or grid.uses_seed
    spec = {"features": entry.key, "classifier": grid.classifier, "protocol": grid.protocol,
            "standardize": grid.standardize, "seed": grid.seed if seeded else None, "format": FORMAT,
            "splits": splits_id(grid.assignment)}
    rows = CacheEntry.keyed(Path(results_dir) / entry.key, f"{grid.name}-{grid.protocol}", spec, digits=12)

    def fit_now():
        X, clips = entry.load()
        return fit_rows(lambda outer: X, with_splits(clips, grid.assignment), grid, seeded, entry.key)

    if not fit and not rows.is_complete():
        raise UserError(f"no classifier results cached for this job ({rows.root}).\n"
                        f"  Fix: run the classify stage first (stage=all, or stage=classify,report).")
    return cached_rows(rows, fit_now, grid.labels, grid.seed)


def fit_rows(features_for, clips: pd.DataFrame, grid: GridJob, seeded: bool, feature_key: str,
             label: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the grid under the protocol: (rows, per-clip predictions).

    features_for(outer) -> (n_clips, dim) features of every clip for the splits of that outer fold
    (-1 for a predefined split): one matrix for random features, one per fold for features of
    weights trained on that fold's training part. label: the rows' classifier name (the grid's by default).
    """
    protocol, standardize, seed = grid.protocol, grid.standardize, grid.seed
    splits_all = plan_splits(protocol, clips[clips["ok"].to_numpy(dtype=bool)].reset_index(drop=True))
    outers = sorted({sp.outer for sp in splits_all})
    feats = {o: features_for(o) for o in outers}
    ok = clips["ok"].to_numpy(dtype=bool).copy()
    for X in feats.values():
        ok &= np.isfinite(X).all(axis=1)
    clips = clips[ok].reset_index(drop=True)
    y = clips["label"].to_numpy()
    fits = grid.build()
    splits = plan_splits(protocol, clips)
    result = GridScores.empty(len(splits), len(fits.settings))
    t0 = time.perf_counter()
    # one BLAS thread per fit: a product's rounding depends on how many threads share it, and the rows must
    # not depend on the launcher or classify.n_jobs; the job's cores go to n_jobs fits at a time instead
    with blas_threads(1):
        for outer in outers:
            idx = [i for i, sp in enumerate(splits) if sp.outer == outer]
            part = fits.scores(feats[outer][ok], y, [splits[i] for i in idx], standardize=standardize)
            for j, i in enumerate(idx):
                for name in ("accuracy", "capped", "exact", "predictions"):
                    getattr(result, name)[i] = getattr(part, name)[j]
    seconds = time.perf_counter() - t0
    scores, capped = result.accuracy, result.capped
    name = label or fits.name
    rows, predictions = [], []
    for rec in select(protocol, splits, scores):
        setting = fits.settings[rec["setting_index"]]
        split = splits[rec["split_index"]]
        predicted = result.predictions[rec["split_index"], rec["setting_index"]]          # the fit the grid scored
        predictions.append(pd.DataFrame({"clip_id": clips["clip_id"].to_numpy()[split.eval], "fold": rec["fold"],
                                         "seed": int(seed), "label": y[split.eval], "predicted": predicted}))
        rows.append(result_row(
            grid.labels, classifier=name, protocol=protocol, standardize=bool(standardize), seed=int(seed),
            seeded=bool(seeded), fold=rec["fold"], setting=json.dumps(setting, sort_keys=True),
            kernel=setting.get("kernel", ""), C=setting.get("C", ""), gamma=setting.get("gamma", ""),
            n_hidden=setting.get("n_hidden", ""), on_grid_edge=fits.edge(setting), capped_fits=int(capped.sum()),
            exact_fits=int(result.exact.sum()), accuracy=rec["accuracy"], selection_score=rec["selection_score"],
            n_train=rec["n_train"], n_test=rec["n_test"], n_skipped=int((~ok).sum()), grid_seconds=round(seconds, 3),
            feature_key=feature_key))
    table = rows_table(rows)
    acc = table["accuracy"].astype(float)
    log.info("%s %s %s: accuracy %.4f (folds %s) in %.1f s, %d fits x %d settings",
             grid.labels.get("frontend"), name, protocol, acc.mean(), len(acc), seconds,
             len(splits), len(fits.settings))
    return table, pd.concat(predictions, ignore_index=True)
