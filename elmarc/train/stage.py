"""The train stage of one job: the front-end trained end to end on exactly the random protocol's splits.

The runs (trainer.py) train every learning rate of the recipe on each outer split; this stage keys them,
lets one job train them (the svm and elm jobs of a front-end share them), and turns them into result rows:
classifier 'trained' (end to end), 'trained@1epoch' (the proxy), and '<grid>@trained' (the job's SVM/ELM
grid on the features of each fold's trained weights, under the same protocol).

Cache layout, one folder per (feature spec, recipe, splits), shared by every job that asks:
    <cache>/trained/<features key>-<recipe>-<hash>/
        fold<k>/lr<lr>/   last.ckpt, best.ckpt, epoch1.pt, history.json, done.json
        fold<k>/          trained.csv, trained_1epoch.csv (per-clip test predictions), features.npy, done.json
        rows/<classifier>-<protocol>-<hash>/   rows of the grid on the trained features
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..classify.grid import GridJob
from ..classify.splits import with_splits
from ..classify.stage import fit_rows
from ..config import InputConfig, RecipeConfig
from ..datasets import ClipSource
from ..entry import CacheEntry
from ..errors import UserError
from ..extract.feature_cache import FeatureEntry
from ..frontends import FrontendFactory, has_weights
from ..results import cached_rows, result_row, rows_table
from ..storage import stable_hash
from .trainer import PROXY, TRAINED, Trainer, fold_label, outer_splits, recipe_key

KEY_FORMAT = 5


def train_stage(entry: FeatureEntry, source: ClipSource, frontend: FrontendFactory, inputs: InputConfig,
                recipe: RecipeConfig, grid: GridJob, cache_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every outer split; rows (trained, trained@1epoch, <grid>@trained) and per-clip predictions.
    source: the clips as extraction read them (from the decode-once audio cache where it is on)."""
    if not has_weights(frontend.build()):
        raise UserError(f"frontend={frontend.name} has no weights to train.\n"
                        f"  Fix: leave it out of the train stage (it stays in the random tables).")
    try:
        X, clips = entry.load()
    except UserError as exc:
        raise UserError(f"the train stage uses the random features' clip table and statistics: {exc}") from None
    clips = with_splits(clips, grid.assignment).assign(index=np.arange(len(clips)))
    usable = clips["ok"].to_numpy(dtype=bool) & np.isfinite(X).all(axis=1)
    clips, X = clips[usable].reset_index(drop=True), X[usable]
    splits = outer_splits(grid.protocol, clips, recipe)
    key = {"features": entry.key, "recipe": recipe_key(recipe), "format": KEY_FORMAT,
           "splits": {s["name"]: [stable_hash(clips["clip_id"].to_numpy()[s[p]].tolist())[:16] for p in ("train", "val", "test")]
                      for s in splits}}
    runs = CacheEntry.keyed(Path(cache_dir) / "trained", f"{entry.root.name}-{recipe.name}", key, digits=12)
    root = runs.root
    trainer = Trainer(frontend.build, source, clips, X, inputs, recipe, grid.seed, root)
    with runs.lock():                   # the svm and elm jobs of one front-end share its training runs: one trains
        runs.begin()
        summaries = [trainer.fold(s) for s in splits]
    rows, predictions = [], []
    for split, done in zip(splits, summaries):
        for name in (TRAINED, PROXY):
            table = pd.read_csv(root / split["name"] / f"{name.replace('@', '_')}.csv", keep_default_na=False,
                                dtype={"clip_id": str, "fold": str, "label": str, "predicted": str})
            lr = done["lr"] if name == TRAINED else done["proxy_lr"]
            epochs = done["best_epoch"] + 1 if name == TRAINED else 1
            rows.append(result_row(
                grid.labels, classifier=name, protocol=grid.protocol, standardize=False, seed=grid.seed, seeded=True,
                fold=fold_label(split), setting=json.dumps({"lr": lr, "epochs": epochs}, sort_keys=True),
                accuracy=float((table["label"] == table["predicted"]).mean()),
                selection_score=-done["best_val_loss"] if name == TRAINED else "",
                n_train=done["n_train"], n_test=done["n_test"], n_skipped=int((~usable).sum()),
                grid_seconds=done["seconds"] if name == TRAINED else done["proxy_seconds"], feature_key=root.name))
            predictions.append(table.assign(classifier=name))
    e2e = rows_table(rows)
    preds = pd.concat(predictions, ignore_index=True)
    preds["seed"] = grid.seed
    for k in ("dataset", "frontend", "width"):
        preds[k] = grid.labels[k]
    preds["protocol"], preds["standardize"], preds["seeded"] = grid.protocol, False, True

    grid_rows, grid_preds = trained_feature_rows(trainer, splits, root, grid)
    return pd.concat([e2e, grid_rows], ignore_index=True), pd.concat([preds, grid_preds], ignore_index=True)


def trained_feature_rows(trainer: Trainer, splits: list[dict], root: Path, grid: GridJob):
    """The job's SVM/ELM grid on the features of each fold's trained weights, under the same protocol."""
    name = f"{grid.name}@trained"
    spec = {"trained": root.name, "classifier": grid.classifier, "protocol": grid.protocol,
            "standardize": grid.standardize, "seed": grid.seed, "format": 4}
    rows = CacheEntry.keyed(root / "rows", f"{grid.name}-{grid.protocol}", spec, digits=12)
    by_outer = {s["outer"]: s for s in splits}
    clips = trainer.clips.assign(ok=True)

    def fit_now():
        def features_for(outer):
            return np.load(root / by_outer[outer]["name"] / "features.npy")
        return fit_rows(features_for, clips, grid, True, root.name, label=name)

    return cached_rows(rows, fit_now, grid.labels, grid.seed)
