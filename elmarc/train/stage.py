"""The train stage of one job: the front-end trained end to end on exactly the random protocol's splits.

For each outer split (each fold of a k-fold dataset; GTZAN's predefined train/valid/test) and each
learning rate of the recipe, Lightning's Trainer.fit trains the model on the training part, stops
early on the validation part's loss, and checkpoints every epoch, so a killed run resumes from its
last epoch. The learning rate with the lowest validation loss is scored on the held-out clips. The
same runs give a cheap proxy: the model after one epoch, its learning rate chosen by the one-epoch
validation loss (what the recipe with max_epochs=1 would give). The trained weights also make
features for every clip, and the job's SVM/ELM grid is fitted on them under the same protocol.

Cache layout, one folder per (feature spec, recipe, splits), shared by every job that asks:
    <cache>/trained/<features key>-<recipe>-<hash>/
        fold<k>/lr<lr>/   last.ckpt, best.ckpt, epoch1.pt, history.json, done.json
        fold<k>/          trained.csv, trained_1epoch.csv (per-clip test predictions), features.npy, done.json
        <classifier>-<protocol>-<hash>.csv   rows of the grid on the trained features
Result rows: classifier 'trained' (end to end), 'trained@1epoch' (the proxy), '<grid>@trained'.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from ..classify.protocols import plan_splits
from ..classify.stage import RESULT_COLUMNS, cached_rows, fit_rows
from ..config import RecipeConfig
from ..entry import CacheEntry
from ..errors import UserError
from ..storage import atomic_write_text, make_dirs, move_aside, npy_bytes, stable_hash
from .data import EpochShuffle, KeptInputs, TrainingInputs, crop_length
from .model import lightning_module

log = logging.getLogger(__name__)
TRAINED, PROXY = "trained", "trained@1epoch"
KEY_FORMAT = 5


def recipe_of(cfg: DictConfig) -> RecipeConfig:
    return OmegaConf.to_object(cfg.recipe)


def recipe_key(recipe: RecipeConfig) -> dict:
    """What in the recipe changes the weights (not the device or the progress bar)."""
    d = OmegaConf.to_container(OmegaConf.structured(recipe), resolve=True)
    for k in ("accelerator", "progress", "name", "input_memory_mib"):
        d.pop(k, None)
    return {k: (str(v) if hasattr(v, "value") else v) for k, v in d.items()}


def outer_splits(protocol: str, clips: pd.DataFrame, recipe: RecipeConfig) -> list[dict]:
    """The random protocol's outer splits (row indices into clips), each with a validation part:
    k folds: a stratified val_fraction of the training folds (recipe.split_seed); predefined: the valid split."""
    from sklearn.model_selection import train_test_split

    y = clips["label"].to_numpy()
    if protocol == "predefined":
        by = {s.role: s for s in plan_splits(protocol, clips)}
        return [{"outer": -1, "name": "test", "train": by["valid"].train, "val": by["valid"].eval, "test": by["test"].eval}]
    out = []
    for sp in (s for s in plan_splits("paper", clips) if s.role == "outer"):
        stratify = y[sp.train] if min(pd.Series(y[sp.train]).value_counts()) >= 2 else None
        train, val = train_test_split(sp.train, test_size=recipe.val_fraction, random_state=recipe.split_seed, stratify=stratify)
        out.append({"outer": sp.outer, "name": f"fold{sp.outer}", "train": np.sort(train), "val": np.sort(val), "test": sp.eval})
    return out


class Trainer:
    """Trains one front-end config (a factory for fresh, identically initialised copies) on one dataset."""

    def __init__(self, make_frontend, source, clips: pd.DataFrame, X0: np.ndarray, input_cfg, recipe: RecipeConfig,
                 seed: int, root: Path):
        from ..extract.inputs import ClipInputs

        self.make_frontend, self.source, self.recipe, self.seed, self.root = make_frontend, source, recipe, int(seed), root
        self.clips, self.X0, self._stats = clips, X0, {}
        self.classes = sorted(clips["label"].unique().tolist())
        self.y = clips["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(np.int64)
        probe = make_frontend()
        self.kind = probe.input_kind
        self.inputs = KeptInputs(ClipInputs(source, self.kind, input_cfg, "skip"), recipe.input_memory_mib)
        full = int(input_cfg.n_samples if self.kind == "waveform" else input_cfg.n_frames)
        self.crop_len = crop_length(full, recipe.crop, lambda n: _runs_on(probe, self.kind, n, input_cfg.n_mels))
        if recipe.crop is not None and self.crop_len == full:
            log.info("%s cannot take crops of %.0f%% of the input: it trains on the whole input", source.name, 100 * recipe.crop)
        from ..extract.inputs import uses_gpu

        self.gpu = uses_gpu(str(recipe.accelerator))
        self.device = torch.device("cuda") if self.gpu else torch.device("cpu")

    # -------------------------------------------------------------------------------- data
    def loader(self, rows: np.ndarray, train: bool, epoch_of=None) -> DataLoader:
        data = TrainingInputs(self.inputs, self.clips["index"].to_numpy()[rows], self.y[rows],
                              self.crop_len if train else None, self.seed)
        sampler = EpochShuffle(len(rows), self.seed, epoch_of) if train else None
        return DataLoader(data, batch_size=int(self.recipe.batch_size), sampler=sampler, shuffle=False,
                          num_workers=0, pin_memory=self.gpu)

    def model(self, lr: float, train_rows: np.ndarray):
        """The model at initialisation: the random front-end, read-out statistics of the training part."""
        stats = self.initial_statistics(train_rows)
        return lightning_module()(self.make_frontend(), len(self.classes), self.recipe, lr, self.seed,
                                  stats["mean"], stats["std"], stats["rms"], (stats["in_mean"], stats["in_std"]))

    def initial_statistics(self, train_rows: np.ndarray) -> dict:
        """Input mean and std (scalars) and the initial features' mean, std and rms over the training part.
        Without input normalisation these are the random features' (cached); with it, one pass computes them."""
        key = stable_hash(self.clips["clip_id"].to_numpy()[train_rows].tolist())[:16]
        if key in self._stats:
            return self._stats[key]
        if not self.recipe.input_norm:
            X, in_mean, in_std = self.X0[train_rows].astype(np.float64), 0.0, 1.0
        else:
            total, total_sq, count = 0.0, 0.0, 0
            for x, _ in self.loader(train_rows, False):
                x = x.double()
                total, total_sq, count = total + float(x.sum()), total_sq + float((x * x).sum()), count + x.numel()
            in_mean = total / count
            in_std = max(np.sqrt(max(total_sq / count - in_mean ** 2, 0.0)), 1e-8)
            from ..frontends import forms
            from .model import EVALUATION_FORMS

            frontend = self.make_frontend().to(self.device)
            with torch.no_grad(), forms.forced(EVALUATION_FORMS):
                X = np.concatenate([frontend((x.to(self.device) - in_mean) / in_std).double().cpu().numpy()
                                    for x, _ in self.loader(train_rows, False)])
        self._stats[key] = {"mean": X.mean(0), "std": X.std(0), "rms": np.sqrt((X ** 2).mean(0)),
                            "in_mean": float(in_mean), "in_std": float(in_std)}
        return self._stats[key]

    # -------------------------------------------------------------------------------- one run
    def fit(self, split: dict, lr: float) -> dict:
        """Train (or resume, or read) one (split, lr) run: its done.json summary."""
        run = CacheEntry(self.root / split["name"] / f"lr{lr:g}")
        run_dir = run.root
        done = run.read()
        if done is not None:
            return done
        import pytorch_lightning as pl
        from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

        from ..extract.loop import quiet_lightning

        quiet_lightning()

        make_dirs(run_dir)
        last = run_dir / "last.ckpt"
        resume = None
        if last.is_file():
            try:
                load_checkpoint(last)
                resume = str(last)
                log.info("resuming %s from %s", run_dir.name, last)
            except Exception as exc:                # a checkpoint cut short by a kill: start this run again
                aside = move_aside([p for p in run_dir.iterdir() if p.is_file()], run_dir)
                log.warning("checkpoint %s does not load (%s); moved to %s, training again", last, exc, aside)
        model = self.model(lr, split["train"])
        history = History(run_dir)
        checkpoint = ModelCheckpoint(dirpath=run_dir, filename="best", monitor="val_loss", mode="min",
                                     save_top_k=1, enable_version_counter=False)
        # every epoch's end, after its validation (Lightning's save_last follows the best only)
        latest = ModelCheckpoint(dirpath=run_dir, filename="last", monitor=None, save_top_k=1,
                                 save_on_train_epoch_end=True, enable_version_counter=False)
        trainer = pl.Trainer(
            max_epochs=int(self.recipe.max_epochs), accelerator=str(self.recipe.accelerator), devices=1,
            logger=False, enable_model_summary=False, num_sanity_val_steps=0,
            enable_progress_bar=bool(self.recipe.progress), deterministic=False,
            callbacks=[history, EarlyStopping(monitor="val_loss", mode="min", patience=int(self.recipe.patience)),
                       checkpoint, latest],
        )
        with torch.autograd.set_grad_enabled(True):
            trainer.fit(model, self.loader(split["train"], True, lambda: model.current_epoch), self.loader(split["val"], False),
                        ckpt_path=resume)
        records = history.records
        best = min(records, key=lambda r: r["val_loss"])
        summary = {"lr": lr, "epochs": len(records), "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
                   "epoch1_val_loss": records[0]["val_loss"], "epoch1_seconds": records[0]["seconds"],
                   "seconds": round(sum(r["seconds"] for r in records), 3), "history": records}
        best_path = Path(checkpoint.best_model_path)
        if best_path.name != "best.ckpt":
            best_path.replace(run_dir / "best.ckpt")
        return run.finish(["best.ckpt", "epoch1.pt"], **summary)

    def weights(self, split: dict, lr: float, which: str):
        """A model with the weights of a finished run: 'best' (lowest validation loss) or 'epoch1'."""
        run_dir = self.root / split["name"] / f"lr{lr:g}"
        model = self.model(lr, split["train"])
        if which == "best":
            state = load_checkpoint(run_dir / "best.ckpt")["state_dict"]
        else:
            state = load_checkpoint(run_dir / "epoch1.pt")
        model.load_state_dict(state)
        return model.eval()

    @torch.no_grad()
    def outputs(self, model, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class index, feature vectors) of the clips at rows, whole inputs, in batches."""
        device = self.device
        model = model.to(device)
        preds, feats = [], []
        for x, _ in self.loader(rows, False):
            f = model.features(x.to(device))
            feats.append(f.float().cpu().numpy())
            preds.append(model.head(model.norm(f)).argmax(1).cpu().numpy())
        return np.concatenate(preds), np.concatenate(feats)

    # -------------------------------------------------------------------------------- one fold
    def fold(self, split: dict) -> dict:
        """Every lr of one split, then the test predictions of the chosen run and of the proxy, and
        the trained features of every usable clip. Cached in the split's folder."""
        fold = CacheEntry(self.root / split["name"])
        done = fold.read()
        if done is not None:
            return done
        runs = [self.fit(split, float(lr)) for lr in self.recipe.lrs]
        chosen = min(runs, key=lambda r: r["best_val_loss"])
        proxy = min(runs, key=lambda r: r["epoch1_val_loss"])
        test = split["test"]
        files = []
        for name, run, which in ((TRAINED, chosen, "best"), (PROXY, proxy, "epoch1")):
            predicted, feats = self.outputs(self.weights(split, run["lr"], which), np.arange(len(self.clips)))
            table = pd.DataFrame({"clip_id": self.clips["clip_id"].to_numpy()[test], "fold": _fold_label(split),
                                  "label": self.clips["label"].to_numpy()[test],
                                  "predicted": np.asarray(self.classes, dtype=object)[predicted[test]]})
            fold.write_text(f"{name.replace('@', '_')}.csv", table.to_csv(index=False))
            files.append(f"{name.replace('@', '_')}.csv")
            if which == "best":
                fold.write_bytes("features.npy", npy_bytes(feats.astype(np.float32)))
                files.append("features.npy")
        summary = {"split": split["name"], "lr": chosen["lr"], "best_epoch": chosen["best_epoch"],
                   "epochs": chosen["epochs"], "best_val_loss": chosen["best_val_loss"],
                   "proxy_lr": proxy["lr"], "seconds": round(sum(r["seconds"] for r in runs), 3),
                   "proxy_seconds": round(sum(r["epoch1_seconds"] for r in runs), 3),
                   "n_train": len(split["train"]), "n_val": len(split["val"]), "n_test": len(test)}
        return fold.finish(files, **summary)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's tensors and plain values, never its pickled objects: a file in a shared cache can be
    anyone's, and a manifest (recomputable by anyone) detects damage, not tampering."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _fold_label(split: dict) -> str:
    return "test" if split["outer"] == -1 else str(split["outer"])


def _runs_on(frontend, kind: str, length: int, n_mels: int) -> bool:
    x = torch.zeros(1, length) if kind == "waveform" else torch.zeros(1, length, n_mels)
    try:
        with torch.no_grad():
            frontend(x)
        return True
    except RuntimeError:
        return False


def _history_callback():
    from pytorch_lightning.callbacks import Callback

    class History(Callback):
        """Per epoch: mean training loss, validation loss and accuracy, seconds; the first epoch's weights
        (the one-epoch proxy). Kept in the checkpoint, so a resumed run has the whole history."""

        def __init__(self, run_dir: Path):
            self.run_dir, self.records, self._t0, self._losses = run_dir, [], None, []

        def on_train_epoch_start(self, trainer, pl_module):
            self._t0, self._losses = time.perf_counter(), []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._losses.append(float(outputs["loss"]))

        def on_validation_epoch_end(self, trainer, pl_module):
            if trainer.sanity_checking or self._t0 is None:
                return
            m = trainer.callback_metrics
            self.records.append({"epoch": trainer.current_epoch, "train_loss": float(np.mean(self._losses)),
                                 "val_loss": float(m["val_loss"]), "val_acc": float(m["val_acc"]),
                                 "seconds": round(time.perf_counter() - self._t0, 3)})
            if trainer.current_epoch == 0:
                import io

                from ..storage import atomic_write_bytes

                buf = io.BytesIO()
                torch.save(pl_module.state_dict(), buf)
                atomic_write_bytes(self.run_dir / "epoch1.pt", buf.getvalue())
            atomic_write_text(self.run_dir / "history.json", json.dumps(self.records, indent=1))

        def state_dict(self):
            return {"records": self.records}

        def load_state_dict(self, state):
            self.records = list(state["records"])

    return History


def History(run_dir: Path):
    return _history_callback()(run_dir)


# ------------------------------------------------------------------------------------ the stage
def train_stage(cfg: DictConfig, source, make_frontend, entry, cache_dir: Path, labels_meta: dict,
                protocol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every outer split; rows (trained, trained@1epoch, <grid>@trained) and per-clip predictions."""
    from ..extract.stage import input_config
    from ..frontends import has_weights

    if not has_weights(make_frontend()):
        raise UserError(f"frontend={cfg.frontend.name} has no weights to train.\n"
                        f"  Fix: leave it out of the train stage (it stays in the random tables).")
    from ..classify.stage import with_splits
    from ..pipeline import split_assignment

    try:
        X, clips = entry.load()
    except UserError as exc:
        raise UserError(f"the train stage uses the random features' clip table and statistics: {exc}") from None
    clips = with_splits(clips, split_assignment(source))
    clips = clips.assign(index=np.arange(len(clips)))
    usable = clips["ok"].to_numpy(dtype=bool) & np.isfinite(X).all(axis=1)
    clips, X = clips[usable].reset_index(drop=True), X[usable]
    recipe = recipe_of(cfg)
    splits = outer_splits(protocol, clips, recipe)
    key = {"features": entry.key, "recipe": recipe_key(recipe), "format": KEY_FORMAT,
           "splits": {s["name"]: [stable_hash(clips["clip_id"].to_numpy()[s[p]].tolist())[:16] for p in ("train", "val", "test")]
                      for s in splits}}
    runs = CacheEntry.keyed(Path(cache_dir) / "trained", f"{entry.root.name}-{recipe.name}", key, digits=12)
    root = runs.root
    source = _audio_source(cfg, source, cache_dir)
    trainer = Trainer(make_frontend, source, clips, X, input_config(cfg), recipe, int(cfg.seed), root)
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
            rows.append({**labels_meta, "classifier": name, "protocol": protocol, "standardize": False,
                         "seed": int(cfg.seed), "seeded": True, "fold": _fold_label(split),
                         "setting": json.dumps({"lr": lr, "epochs": epochs}, sort_keys=True), "kernel": "", "C": "",
                         "gamma": "", "n_hidden": "", "on_grid_edge": False, "capped_fits": 0, "exact_fits": 0,
                         "accuracy": float((table["label"] == table["predicted"]).mean()),
                         "selection_score": -done["best_val_loss"] if name == TRAINED else "",
                         "n_train": done["n_train"], "n_test": done["n_test"], "n_skipped": int((~usable).sum()),
                         "grid_seconds": done["seconds"] if name == TRAINED else done["proxy_seconds"],
                         "feature_key": root.name})
            predictions.append(table.assign(classifier=name))
    e2e = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    preds = pd.concat(predictions, ignore_index=True)
    preds["seed"] = int(cfg.seed)
    for k in ("dataset", "frontend", "width"):
        preds[k] = labels_meta[k]
    preds["protocol"], preds["standardize"], preds["seeded"] = protocol, False, True

    grid_rows, grid_preds = trained_feature_rows(cfg, trainer, splits, root, protocol, labels_meta)
    return pd.concat([e2e, grid_rows], ignore_index=True), pd.concat([preds, grid_preds], ignore_index=True)


def trained_feature_rows(cfg, trainer: Trainer, splits: list[dict], root: Path, protocol: str, labels_meta: dict):
    """The job's SVM/ELM grid on the features of each fold's trained weights, under the same protocol."""
    classifier_cfg = OmegaConf.to_container(cfg.classifier, resolve=True)
    standardize, seed = bool(cfg.classify.standardize), int(cfg.seed)
    name = f"{classifier_cfg['name']}@trained"
    spec = {"trained": root.name, "classifier": classifier_cfg, "protocol": protocol, "standardize": standardize,
            "seed": seed, "format": 4}
    rows = CacheEntry.keyed(root / "rows", f"{classifier_cfg['name']}-{protocol}", spec, digits=12)
    by_outer = {s["outer"]: s for s in splits}
    clips = trainer.clips.assign(ok=True)

    def fit_now():
        def features_for(outer):
            return np.load(root / by_outer[outer]["name"] / "features.npy")
        return fit_rows(features_for, clips, classifier_cfg, protocol, standardize, seed, True,
                        labels_meta, root.name, cfg.classify.n_jobs, label=name)

    return cached_rows(rows, fit_now, labels_meta, seed)


def _audio_source(cfg: DictConfig, source, cache_dir: Path):
    """The clips read from the decode-once audio cache, as extraction reads them."""
    if not cfg.extract.audio_cache:
        return source
    from ..extract.audio_cache import AudioCache, CachedSource
    from ..extract.inputs import resolve_workers, uses_gpu
    from ..extract.stage import input_config

    audio = AudioCache(cache_dir, source, input_config(cfg))
    audio.ensure(num_workers=resolve_workers(cfg.extract.num_workers, uses_gpu(str(cfg.extract.accelerator)), decode_pass=True),
                 on_error=str(cfg.extract.on_error))
    return CachedSource(source, audio)
