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
from ..storage import stable_hash
from .protocols import plan_splits, select
from .splits import GridScores

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "dataset", "frontend", "width", "classifier", "protocol", "standardize", "seed", "seeded", "fold",
    "setting", "kernel", "C", "gamma", "n_hidden", "on_grid_edge", "capped_fits", "exact_fits",
    "accuracy", "selection_score", "n_train", "n_test", "n_skipped", "grid_seconds", "feature_key",
]


def grid_class(classifier_cfg: dict):
    """The classifier grid's class, only if it is one (a class with settings to score)."""
    from ..config import checked_target

    return checked_target(classifier_cfg.get("_target_"), "classifier._target_",
                          lambda c: isinstance(c, type) and callable(getattr(c, "scores", None)) and hasattr(c, "uses_seed"),
                          "a classifier grid class (with scores() and uses_seed, as elmarc.classify.SVMGrid)")


def build_grid(classifier_cfg: dict, seed: int, n_jobs: int = 1):
    """The classifier grid of the config; the seed goes to grids with random weights (ELM) only, n_jobs to those that fit in parallel."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

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


def with_splits(clips: pd.DataFrame, assignment: pd.DataFrame | None) -> pd.DataFrame:
    """The entry's clip table with this run's folds and splits: features do not depend on them, so one entry
    serves every fold assignment (dataset.n_folds), and rows must use the run's, not the extracting run's."""
    if assignment is None:
        return clips
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


def classify(entry: FeatureEntry, classifier_cfg: dict, protocol: str, standardize: bool, seed: int,
             labels_meta: dict, results_dir, fit: bool = True, n_jobs: int | None = None,
             assignment: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the grid on the cached features (or, fit=False, only read what is cached for them):
    (one row per reported fold, one row per test clip of each reported fold). assignment: the run's
    clip_id, fold, split (the dataset's), which replace those the entry recorded when it was extracted."""
    seeded = entry.spec.get("seed") is not None or grid_class(classifier_cfg).uses_seed
    spec = {"features": entry.key, "classifier": classifier_cfg, "protocol": protocol,
            "standardize": bool(standardize), "seed": int(seed) if seeded else None, "format": 4}
    if assignment is not None:
        spec["splits"] = splits_id(assignment)
    rows = CacheEntry.keyed(Path(results_dir) / entry.key, f"{classifier_cfg['name']}-{protocol}", spec, digits=12)

    def fit_now():
        X, clips = entry.load()
        clips = with_splits(clips, assignment)
        return fit_rows(lambda outer: X, clips, classifier_cfg, protocol, standardize, seed, seeded,
                        labels_meta, entry.key, n_jobs)

    if not fit and not rows.is_complete():
        raise UserError(f"no classifier results cached for this job ({rows.root}).\n"
                        f"  Fix: run the classify stage first (stage=all, or stage=classify,report).")
    return cached_rows(rows, fit_now, labels_meta, seed)


ROWS, PREDICTIONS = "rows.csv", "predictions.csv"


def cached_rows(rows: CacheEntry, fit_now, labels_meta: dict, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and per-clip predictions cached in the entry `rows`, or fit_now()'s, written there with a checked marker."""
    with rows.lock():                       # parallel jobs of a seed-free run fit it once
        if rows.read() is not None:
            log.info("classification cached at %s: nothing to fit", rows.root)
            table = pd.read_csv(rows.root / ROWS, keep_default_na=False, dtype={"fold": str, "setting": str})
            # one entry can serve several jobs (MFCC features are shared by both widths, seed-free runs
            # by every seed): label the rows with this job's labels, not those of the job that wrote them
            for key, value in {**labels_meta, "seed": int(seed)}.items():
                table[key] = value
            return table, read_predictions(rows, seed, table)
        table, predictions = fit_now()
        rows.begin()
        rows.write_text(PREDICTIONS, predictions.to_csv(index=False))
        rows.write_text(ROWS, table.to_csv(index=False))
        rows.finish([ROWS, PREDICTIONS])
        return table, read_predictions(rows, seed, table)


def read_predictions(rows: CacheEntry, seed: int, table: pd.DataFrame) -> pd.DataFrame:
    """The cached per-clip predictions (clip_id, fold, seed, label, predicted), labelled like this job's rows."""
    out = pd.read_csv(rows.root / PREDICTIONS, keep_default_na=False,
                      dtype={"clip_id": str, "fold": str, "label": str, "predicted": str})
    out["seed"] = int(seed)
    for key in ("dataset", "frontend", "width", "classifier", "protocol", "standardize", "seeded"):
        out[key] = table[key].iloc[0]
    return out


def fit_rows(features_for, clips: pd.DataFrame, classifier_cfg: dict, protocol: str, standardize: bool, seed: int,
             seeded: bool, labels_meta: dict, feature_key: str, n_jobs: int | None,
             label: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the grid under the protocol: (rows, per-clip predictions).

    features_for(outer) -> (n_clips, dim) features of every clip for the splits of that outer fold
    (-1 for a predefined split): one matrix for random features, one per fold for features of
    weights trained on that fold's training part. label: the rows' classifier name (the grid's by default).
    """
    from ..resources import blas_threads, job_cores

    cores = job_cores()
    n_jobs = min(int(n_jobs or cores), cores)
    splits_all = plan_splits(protocol, clips[clips["ok"].to_numpy(dtype=bool)].reset_index(drop=True))
    outers = sorted({sp.outer for sp in splits_all})
    feats = {o: features_for(o) for o in outers}
    ok = clips["ok"].to_numpy(dtype=bool).copy()
    for X in feats.values():
        ok &= np.isfinite(X).all(axis=1)
    clips = clips[ok].reset_index(drop=True)
    y = clips["label"].to_numpy()
    grid = build_grid(classifier_cfg, seed, n_jobs)
    splits = plan_splits(protocol, clips)
    result = GridScores.empty(len(splits), len(grid.settings))
    t0 = time.perf_counter()
    # one BLAS thread per fit: a product's rounding depends on how many threads share it, and the rows must
    # not depend on the launcher or classify.n_jobs; the job's cores go to n_jobs fits at a time instead
    with blas_threads(1):
        for outer in outers:
            idx = [i for i, sp in enumerate(splits) if sp.outer == outer]
            part = grid.scores(feats[outer][ok], y, [splits[i] for i in idx], standardize=standardize)
            for j, i in enumerate(idx):
                for name in ("accuracy", "capped", "exact", "predictions"):
                    getattr(result, name)[i] = getattr(part, name)[j]
    seconds = time.perf_counter() - t0
    scores, capped = result.accuracy, result.capped
    name = label or grid.name
    rows, predictions = [], []
    for rec in select(protocol, splits, scores):
        setting = grid.settings[rec["setting_index"]]
        split = splits[rec["split_index"]]
        predicted = result.predictions[rec["split_index"], rec["setting_index"]]          # the fit the grid scored
        predictions.append(pd.DataFrame({"clip_id": clips["clip_id"].to_numpy()[split.eval], "fold": rec["fold"],
                                         "seed": int(seed), "label": y[split.eval], "predicted": predicted}))
        rows.append({
            **labels_meta, "classifier": name, "protocol": protocol, "standardize": bool(standardize),
            "seed": int(seed), "seeded": bool(seeded), "fold": rec["fold"], "setting": json.dumps(setting, sort_keys=True),
            "kernel": setting.get("kernel", ""), "C": setting.get("C", ""), "gamma": setting.get("gamma", ""),
            "n_hidden": setting.get("n_hidden", ""), "on_grid_edge": grid.edge(setting),
            "capped_fits": int(capped.sum()), "exact_fits": int(result.exact.sum()), "accuracy": rec["accuracy"],
            "selection_score": rec["selection_score"], "n_train": rec["n_train"], "n_test": rec["n_test"],
            "n_skipped": int((~ok).sum()), "grid_seconds": round(seconds, 3), "feature_key": feature_key,
        })
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    acc = table["accuracy"].astype(float)
    log.info("%s %s %s: accuracy %.4f (folds %s) in %.1f s, %d fits x %d settings",
             labels_meta.get("frontend"), name, protocol, acc.mean(), len(acc), seconds,
             len(splits), len(grid.settings))
    return table, pd.concat(predictions, ignore_index=True)
