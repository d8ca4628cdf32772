"""Extended Ballroom: 4180 clips in 13 class folders; 10 stratified folds (SPEC 4 Decision).

Folds are drawn with a fixed seed over the sorted file list and written to every run
folder (clips.csv), so runs are comparable.
"""
from __future__ import annotations

import pandas as pd

from .base import ClipSource, DatasetError, require_root, stratified_folds
from .layout import audio_files

CLASSES = ("Chacha", "Foxtrot", "Jive", "Pasodoble", "Quickstep", "Rumba", "Salsa", "Samba",
           "Slowwaltz", "Tango", "Viennesewaltz", "Waltz", "Wcswing")


def layout(classes) -> str:
    return ("    <Class>/<track>.mp3  one folder per class (the class is the parent folder):\n    "
            + " ".join(classes))


def build(*, name: str, root: str | None, classes: list[str], n_folds: int, fold_seed: int, protocol: str) -> ClipSource:
    base = require_root("ballroom", root, layout(classes))
    rows = []
    dirs = {p.name: p for p in base.rglob("*") if p.is_dir() and p.name in set(classes)}
    absent = [c for c in classes if c not in dirs]
    if absent:
        raise DatasetError(
            f"dataset 'ballroom': {len(absent)} of {len(classes)} class folders are missing under root "
            f"{str(base)!r}: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}\n"
            f"  Expected layout under the root:\n{layout(classes)}\n"
            f"  Fix: point dataset.root=... at your Extended Ballroom copy, or list the classes you have "
            f"with dataset.classes=[...].")
    for c in classes:
        files = audio_files(dirs[c])
        if not files:
            raise DatasetError(f"dataset 'ballroom': class folder {dirs[c]} has no audio files")
        rows += [{"clip_id": str(p.relative_to(base).with_suffix("")), "path": str(p), "label": c} for p in files]
    table = pd.DataFrame(rows).sort_values("clip_id").reset_index(drop=True)
    table["fold"] = stratified_folds(table["label"].to_numpy(), n_folds, fold_seed)
    table["split"] = ""
    return ClipSource(name, table, "folds", str(base), {"n_folds": n_folds, "fold_seed": fold_seed}, protocol)
