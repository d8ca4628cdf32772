"""Classifier stage: reads only the feature cache, fits a grid under a protocol, returns tidy rows."""
from __future__ import annotations

import json
import logging
import time
from io import StringIO

import numpy as np
import pandas as pd

from .cache import FeatureEntry, atomic_write_text, stable_hash
from .protocols import plan_splits, select

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "dataset", "frontend", "width", "classifier", "protocol", "standardize", "seed", "fold",
    "setting", "kernel", "C", "gamma", "n_hidden", "on_grid_edge", "capped_fits",
    "accuracy", "selection_score", "n_train", "n_test", "n_skipped", "grid_seconds", "feature_key",
]


def build_grid(classifier_cfg: dict, seed: int):
    from hydra.utils import instantiate

    return instantiate(classifier_cfg, seed=seed, _convert_="all")


def classify(entry: FeatureEntry, classifier_cfg: dict, protocol: str, standardize: bool, seed: int,
             labels_meta: dict, results_dir) -> pd.DataFrame:
    """Fit the grid on the cached features; rows are cached by what made them."""
    spec = {"features": entry.key, "classifier": classifier_cfg, "protocol": protocol,
            "standardize": bool(standardize), "seed": int(seed), "format": 1}
    path = results_dir / entry.key / f"{classifier_cfg.get('name', 'clf')}-{protocol}-{stable_hash(spec)[:12]}.csv"
    if path.is_file():
        log.info("classification cached at %s: nothing to fit", path)
        table = pd.read_csv(path, keep_default_na=False, dtype={"fold": str, "setting": str})
        # one entry can serve several jobs (MFCC features are shared by both widths): label the rows
        # with this job's dataset/frontend/width, not with those of the job that first wrote them
        for key, value in labels_meta.items():
            table[key] = value
        return table

    X, clips = entry.load()
    ok = clips["ok"].to_numpy(dtype=bool) & np.isfinite(X).all(axis=1)
    X, clips = X[ok], clips[ok].reset_index(drop=True)
    y = clips["label"].to_numpy()
    grid = build_grid({k: v for k, v in classifier_cfg.items() if k != "name"}, seed)
    splits = plan_splits(protocol, clips)
    t0 = time.perf_counter()
    scores, capped = grid.scores(X, y, splits, standardize=standardize)
    seconds = time.perf_counter() - t0
    rows = []
    for rec in select(protocol, splits, scores):
        setting = grid.settings[rec["setting_index"]]
        rows.append({
            **labels_meta, "classifier": grid.name, "protocol": protocol, "standardize": bool(standardize),
            "seed": int(seed), "fold": rec["fold"], "setting": json.dumps(setting, sort_keys=True),
            "kernel": setting.get("kernel", ""), "C": setting.get("C", ""), "gamma": setting.get("gamma", ""),
            "n_hidden": setting.get("n_hidden", ""), "on_grid_edge": grid.edge(setting),
            "capped_fits": int(capped.sum()), "accuracy": rec["accuracy"],
            "selection_score": rec["selection_score"], "n_train": rec["n_train"], "n_test": rec["n_test"],
            "n_skipped": int((~ok).sum()), "grid_seconds": round(seconds, 3), "feature_key": entry.key,
        })
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    buf = StringIO()
    table.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())
    acc = table["accuracy"].astype(float)
    log.info("%s %s %s: accuracy %.4f (folds %s) in %.1f s, %d fits x %d settings",
             labels_meta.get("frontend"), grid.name, protocol, acc.mean(), len(acc), seconds,
             len(splits), len(grid.settings))
    return table
