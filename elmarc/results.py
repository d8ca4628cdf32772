"""Result rows, one home: the columns every stage's rows have, how a row is made, and the cache entry that
keeps a fit's rows with its per-clip predictions (read by the report; never refitted when cached).

A row is one reported fold of one (features, classifier, protocol, standardisation, seed): the classify
stage writes rows of the grid on random features, the train stage rows of the trained models and of the
grid on their features.
"""
from __future__ import annotations

import logging

import pandas as pd

from .entry import CacheEntry

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "dataset", "frontend", "width", "classifier", "protocol", "standardize", "seed", "seeded", "fold",
    "setting", "kernel", "C", "gamma", "n_hidden", "on_grid_edge", "capped_fits", "exact_fits",
    "accuracy", "selection_score", "n_train", "n_test", "n_skipped", "grid_seconds", "feature_key",
]
# a training-free proxy's scores: one row per (job labels, seed, fold, proxy), the minibatch drawn from the fold's
# training part (report.agreement ranks the front-ends by them beside the classifiers' accuracies)
SCORE_COLUMNS = ["dataset", "frontend", "width", "protocol", "seed", "fold", "predictor", "score", "seconds",
                 "batch", "feature_key"]
SCORES = "scores.csv"
GRID_FIELDS = {"kernel": "", "C": "", "gamma": "", "n_hidden": "", "on_grid_edge": False, "capped_fits": 0, "exact_fits": 0}
PREDICTION_LABELS = ("dataset", "frontend", "width", "classifier", "protocol", "standardize", "seeded")
ROWS, PREDICTIONS = "rows.csv", "predictions.csv"


def result_row(labels: dict, **fields) -> dict:
    """One row: the job's labels (dataset, frontend, width) and the fields; grid-only fields default to empty."""
    row = {**GRID_FIELDS, **labels, **fields}
    unknown = set(row) - set(RESULT_COLUMNS)
    missing = set(RESULT_COLUMNS) - set(row)
    if unknown or missing:
        raise ValueError(f"result row: unknown {sorted(unknown)}, missing {sorted(missing)}")
    return row


def rows_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def cached_rows(entry: CacheEntry, fit_now, labels: dict, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and per-clip predictions cached in `entry`, or fit_now()'s, written there with a checked marker."""
    with entry.lock():                       # parallel jobs of a seed-free run fit it once
        if entry.read() is not None:
            log.info("classification cached at %s: nothing to fit", entry.root)
            table = pd.read_csv(entry.root / ROWS, keep_default_na=False, dtype={"fold": str, "setting": str})
            # one entry can serve several jobs (MFCC features are shared by both widths, seed-free runs
            # by every seed): label the rows with this job's labels, not those of the job that wrote them
            for key, value in {**labels, "seed": int(seed)}.items():
                table[key] = value
            return table, read_predictions(entry, seed, table)
        table, predictions = fit_now()
        entry.begin()
        entry.write_text(PREDICTIONS, predictions.to_csv(index=False))
        entry.write_text(ROWS, table.to_csv(index=False))
        entry.finish([ROWS, PREDICTIONS])
        return table, read_predictions(entry, seed, table)


def read_predictions(entry: CacheEntry, seed: int, table: pd.DataFrame) -> pd.DataFrame:
    """The cached per-clip predictions (clip_id, fold, seed, label, predicted), labelled like this job's rows."""
    out = pd.read_csv(entry.root / PREDICTIONS, keep_default_na=False,
                      dtype={"clip_id": str, "fold": str, "label": str, "predicted": str})
    return label_predictions(out, seed, table.iloc[0])


def label_predictions(predictions: pd.DataFrame, seed: int, row) -> pd.DataFrame:
    """Per-clip predictions with the seed and the labels of their row."""
    out = predictions.copy()
    out["seed"] = int(seed)
    for key in PREDICTION_LABELS:
        out[key] = row[key]
    return out
