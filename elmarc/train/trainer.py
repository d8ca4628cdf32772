"""Training one front-end end to end on each outer split of the random protocol (Lightning's Trainer.fit).

For each outer split and each learning rate of the recipe, the model trains on the training part, stops
early on the validation part's loss, and checkpoints every epoch, so a killed run resumes from its last
epoch. The learning rate with the lowest validation loss is scored on the held-out clips; the same runs
give the one-epoch proxy. Each run and each fold is a cache entry of its own (elmarc.entry).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from ..classify.protocols import plan_splits
from ..config import RecipeConfig
from ..entry import CacheEntry
from ..extract.inputs import ClipInputs, uses_gpu
from ..extract.predict import quiet_lightning
from ..frontends.speed import current as speed_policy
from ..storage import make_dirs, move_aside, npy_bytes, stable_hash
from .data import EpochShuffle, KeptInputs, TrainingInputs, crop_length
from .history import History
from .model import EVALUATION_FORMS, EndToEnd

log = logging.getLogger(__name__)
TRAINED, PROXY = "trained", "trained@1epoch"


def recipe_key(recipe: RecipeConfig) -> dict:
    """What in the recipe changes the weights (not the device or the progress bar)."""
    d = OmegaConf.to_container(OmegaConf.structured(recipe), resolve=True)
    for k in ("accelerator", "progress", "name", "input_memory_mib"):
        d.pop(k, None)
    return {k: (str(v) if hasattr(v, "value") else v) for k, v in d.items()}


def outer_splits(protocol: str, clips: pd.DataFrame, recipe: RecipeConfig) -> list[dict]:
    """The random protocol's outer splits (row indices into clips), each with a validation part:
    k folds: a stratified val_fraction of the training folds (recipe.split_seed); predefined: the valid split."""
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
        return EndToEnd(self.make_frontend(), len(self.classes), self.recipe, lr, self.seed,
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
            frontend = self.make_frontend().to(self.device)
            with torch.no_grad(), speed_policy().using(EVALUATION_FORMS):
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

    # -------------------------------------------------------------------------------- proxies
    def proxy_batch(self, split: dict, size: int) -> np.ndarray:
        """Rows of the minibatch the proxies score: drawn from the split's training part by (seed, split)."""
        train = split["train"]
        rng = np.random.default_rng([self.seed, int(split["outer"]) + 1, 31])
        return np.sort(rng.choice(train, size=min(int(size), len(train)), replace=False))

    def proxies(self, split: dict, names: list[str], size: int) -> dict:
        """name -> {value, seconds} of the model at initialisation on the split's minibatch (whole inputs).
        A data-dependent proxy's seconds include the training part's statistics pass its network needs."""
        from .proxies import DATA_FREE, ProxyNet, score

        t0 = time.perf_counter()
        model = self.model(float(self.recipe.lrs[0]), split["train"]).to(self.device).eval()
        stats_seconds = time.perf_counter() - t0
        rows = self.proxy_batch(split, size)
        xs, ys = zip(*[(x, y) for x, y in self.loader(rows, False)])
        x, y = torch.cat(xs).to(self.device), torch.cat(ys).to(self.device)
        mean, std = float(model.input_stats[0]), float(model.input_stats[1])
        net = ProxyNet(model.frontend, model.head, before=lambda v: (v - mean) / std, after=model.norm)
        out = score(net, x, y, names)
        for name, rec in out.items():
            if name not in DATA_FREE:
                rec["seconds"] = round(rec["seconds"] + stats_seconds, 4)
        return out

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
            table = pd.DataFrame({"clip_id": self.clips["clip_id"].to_numpy()[test], "fold": fold_label(split),
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


def fold_label(split: dict) -> str:
    return "test" if split["outer"] == -1 else str(split["outer"])


def _runs_on(frontend, kind: str, length: int, n_mels: int) -> bool:
    x = torch.zeros(1, length) if kind == "waveform" else torch.zeros(1, length, n_mels)
    try:
        with torch.no_grad():
            frontend(x)
        return True
    except RuntimeError:
        return False


