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
from ..config import InputConfig, ProxyConfig, RecipeConfig
from ..datasets import ClipSource
from ..entry import CacheEntry
from ..errors import UserError
from ..extract.feature_cache import FeatureEntry
from ..frontends import FrontendFactory, has_weights
from ..results import SCORE_COLUMNS, cached_rows, result_row, rows_table
from ..storage import stable_hash
from .trainer import PROXY, TRAINED, Trainer, fold_label, outer_splits, recipe_key

KEY_FORMAT = 5
PROXY_FORMAT = 2


def prepare(entry: FeatureEntry, source: ClipSource, frontend: FrontendFactory, inputs: InputConfig,
            recipe: RecipeConfig, grid: GridJob, cache_dir: Path):
    """(trainer, outer splits, the training runs' cache entry, clips left out) of one job: what training and the
    proxies share (the same usable clips, splits and initial model)."""
    if not has_weights(frontend.build()):
        raise UserError(f"frontend={frontend.name} has no weights to train or to score at initialisation.\n"
                        f"  Fix: leave it out of the train and proxies stages (it stays in the random tables).")
    try:
        X, clips = entry.load()
    except UserError as exc:
        raise UserError(f"the train stage uses the random features' clip table and statistics: {exc}") from None
    clips = with_splits(clips, grid.assignment).assign(index=np.arange(len(clips)))
    usable = clips["ok"].to_numpy(dtype=bool) & np.isfinite(X).all(axis=1)
    clips, X = clips[usable].reset_index(drop=True), X[usable]
    splits = outer_splits(grid.protocol, clips, recipe)
    key = {"features": entry.key, "recipe": recipe_key(recipe), "format": KEY_FORMAT,
           "splits": split_hashes(clips, splits)}
    runs = CacheEntry.keyed(Path(cache_dir) / "trained", f"{entry.root.name}-{recipe.name}", key, digits=12)
    trainer = Trainer(frontend.build, source, clips, X, inputs, recipe, grid.seed, runs.root)
    return trainer, splits, runs, int((~usable).sum())


def split_hashes(clips: pd.DataFrame, splits: list[dict]) -> dict:
    return {s["name"]: [stable_hash(clips["clip_id"].to_numpy()[s[p]].tolist())[:16] for p in ("train", "val", "test")]
            for s in splits}


def proxy_stage(entry: FeatureEntry, source: ClipSource, frontend: FrontendFactory, inputs: InputConfig,
                recipe: RecipeConfig, grid: GridJob, proxy_cfg: ProxyConfig, cache_dir: Path, prepared=None) -> pd.DataFrame:
    """The training-free proxies of the model the train stage would train, at its initial weights, on a minibatch
    of each outer split's training part: one row per (split, proxy) (results.SCORE_COLUMNS). Cached per entry."""
    trainer, splits, _, _ = prepared or prepare(entry, source, frontend, inputs, recipe, grid, cache_dir)
    names = list(proxy_cfg.names)
    init = {k: v for k, v in recipe_key(recipe).items() if k in ("input_norm", "readout_norm")}
    spec = {"features": entry.key, "init": init, "seed": grid.seed, "batch": int(proxy_cfg.batch_size),
            "splits": split_hashes(trainer.clips, splits), "format": PROXY_FORMAT}
    scores = CacheEntry.keyed(Path(cache_dir) / "proxies", entry.root.name, spec, digits=12)
    with scores.lock():
        done = scores.read()
        have = json.loads((scores.root / "scores.json").read_text()) if done is not None else {}
        missing = [n for n in names if any(n not in have.get(s["name"], {}) for s in splits)]
        if missing:
            for split in splits:
                have.setdefault(split["name"], {}).update(trainer.proxies(split, missing, int(proxy_cfg.batch_size)))
            scores.begin()
            scores.write_text("scores.json", json.dumps(have, indent=1, sort_keys=True))
            scores.finish(["scores.json"])
    rows = [{**{k: grid.labels[k] for k in ("dataset", "frontend", "width")}, "protocol": grid.protocol,
             "seed": grid.seed, "fold": fold_label(split), "predictor": name,
             "score": have[split["name"]][name]["value"], "seconds": have[split["name"]][name]["seconds"],
             "batch": int(proxy_cfg.batch_size), "feature_key": scores.key}
            for split in splits for name in names]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def train_stage(entry: FeatureEntry, source: ClipSource, frontend: FrontendFactory, inputs: InputConfig,
                recipe: RecipeConfig, grid: GridJob, cache_dir: Path, prepared=None,
                folds: tuple[int, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every outer split (or only those of ``folds``); rows (trained, trained@1epoch, and <grid>@trained
    where every split is trained) and per-clip predictions.
    source: the clips as extraction read them (from the decode-once audio cache where it is on)."""
    trainer, every, runs, n_skipped = prepared or prepare(entry, source, frontend, inputs, recipe, grid, cache_dir)
    # the runs' cache entry is keyed by every split, so the folds trained here are the same runs a full job trains
    splits = [s for s in every if not folds or s["outer"] in folds]
    root = runs.root
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
                n_train=done["n_train"], n_test=done["n_test"], n_skipped=n_skipped,
                grid_seconds=done["seconds"] if name == TRAINED else done["proxy_seconds"], feature_key=root.name))
            predictions.append(table.assign(classifier=name))
    e2e = rows_table(rows)
    preds = pd.concat(predictions, ignore_index=True)
    preds["seed"] = grid.seed
    for k in ("dataset", "frontend", "width"):
        preds[k] = grid.labels[k]
    preds["protocol"], preds["standardize"], preds["seeded"] = grid.protocol, False, True

    if len(splits) < len(every):        # the grid's protocol fits across every fold's trained features
        return e2e, preds
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
