"""Evaluation protocols (SPEC section 4): which splits are fitted and how a setting is chosen.

predefined  GTZAN: fit on train, select on valid, refit the best on train only, score test.
paper       k folds, as the reference reports: the best *mean* cross-validated accuracy over
            the grid (selection and scoring on the same folds: optimistic).
nested      k folds, honest: for each outer fold the setting is chosen by leave-one-fold-out
            inside the training folds, then refit on all training folds and scored on the
            outer fold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import ConfigError
from ..datasets import DatasetError
from .splits import Split

PROTOCOLS = ("predefined", "paper", "nested")


def resolve_protocol(name: str, scheme: str, default: str) -> str:
    """'auto' -> the dataset's natural protocol; and refuse a protocol the splits cannot serve."""
    if name == "auto":   # the dataset's natural protocol, or the one its splits allow
        chosen = "predefined" if scheme == "predefined" else (default if default != "predefined" else "paper")
    else:
        chosen = name
    if chosen not in PROTOCOLS:
        raise ConfigError(f"protocol={chosen!r} is not allowed; use one of {['auto', *PROTOCOLS]}")
    if scheme == "predefined" and chosen != "predefined":
        raise ConfigError(f"protocol={chosen} needs k folds, but this dataset has predefined train/valid/test splits; use protocol=predefined")
    if scheme == "folds" and chosen == "predefined":
        raise ConfigError("protocol=predefined needs train/valid/test splits, but this dataset has k folds; use protocol=paper or protocol=nested")
    return chosen


def plan_splits(protocol: str, clips: pd.DataFrame) -> list[Split]:
    """The splits a protocol fits, as row indices into ``clips`` (only usable clips)."""
    if protocol == "predefined":
        split = clips["split"].to_numpy()
        train, valid, test = (np.flatnonzero(split == s) for s in ("train", "valid", "test"))
        for name, idx in (("train", train), ("valid", valid), ("test", test)):
            if len(idx) == 0:
                raise ConfigError(f"predefined protocol: no usable clips in the {name} split")
        return [Split("valid", train, valid, -1, "valid"), Split("test", train, test, -1, "test")]
    fold = clips["fold"].to_numpy().astype(int)
    ids = sorted(set(fold.tolist()))
    if len(ids) < 2:
        raise ConfigError(f"{protocol} protocol needs at least 2 folds, found {ids}")
    splits = [Split(f"fold{k}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), k, "outer") for k in ids]
    if protocol == "nested":
        if len(ids) < 3:
            raise ConfigError("nested protocol needs at least 3 folds")
        for k in ids:
            for j in ids:
                if j != k:
                    train = np.flatnonzero((fold != k) & (fold != j))
                    splits.append(Split(f"fold{k}/inner{j}", train, np.flatnonzero(fold == j), k, "inner"))
    return splits


def best_index(mean_scores: np.ndarray) -> int:
    """Highest mean accuracy; ties go to the first setting in grid order (deterministic)."""
    return int(np.flatnonzero(mean_scores == np.nanmax(mean_scores))[0])


def select(protocol: str, splits: list[Split], scores: np.ndarray) -> list[dict]:
    """One record per reported fold: {fold, split_index, setting_index, accuracy, selection_score, n_train, n_test}."""
    records = []
    if protocol == "predefined":
        valid = next(i for i, s in enumerate(splits) if s.role == "valid")
        test = next(i for i, s in enumerate(splits) if s.role == "test")
        best = best_index(scores[valid])
        sp = splits[test]
        return [{"fold": "test", "split_index": test, "setting_index": best, "accuracy": scores[test, best],
                 "selection_score": scores[valid, best], "n_train": len(sp.train), "n_test": len(sp.eval)}]
    outer = [i for i, s in enumerate(splits) if s.role == "outer"]
    if protocol == "paper":
        best = best_index(scores[outer].mean(axis=0))
        for i in outer:
            sp = splits[i]
            records.append({"fold": str(sp.outer), "split_index": i, "setting_index": best, "accuracy": scores[i, best],
                            "selection_score": float(scores[outer, best].mean()),
                            "n_train": len(sp.train), "n_test": len(sp.eval)})
        return records
    for i in outer:
        sp = splits[i]
        inner = [j for j, s in enumerate(splits) if s.role == "inner" and s.outer == sp.outer]
        inner_mean = scores[inner].mean(axis=0)
        best = best_index(inner_mean)
        records.append({"fold": str(sp.outer), "split_index": i, "setting_index": best, "accuracy": scores[i, best],
                        "selection_score": float(inner_mean[best]), "n_train": len(sp.train), "n_test": len(sp.eval)})
    return records


def check_classes(clips: pd.DataFrame, protocol: str, dataset: str) -> None:
    """Before any work: two classes at least, and every class a test part holds is in its training part."""
    labels = clips["label"]
    if labels.nunique() < 2:
        raise DatasetError(f"dataset {dataset!r} has one class ({labels.iloc[0]!r}): a classifier needs two or more.\n"
                           f"  Fix: point dataset.root (or dataset.list) at a copy with two or more class folders or labels.")
    for split in plan_splits(protocol, clips.assign(ok=True)):
        unseen = sorted(set(labels.iloc[split.eval]) - set(labels.iloc[split.train]))
        if unseen:
            raise DatasetError(f"dataset {dataset!r}: the clips of {split.name} include classes never in its training "
                               f"part ({', '.join(map(repr, unseen[:5]))}): they could only be misclassified.\n"
                               f"  Fix: give those classes clips in the other folds/splits (dataset.list), or leave them out.")
