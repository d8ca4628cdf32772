"""Any folder of class folders (label = sub-folder name), or a user-given list of files.

Folds: stratified k-fold with a fixed seed over the sorted file list, unless the
list gives a 'fold' (k-fold) or 'split' (train/valid/test) column.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .base import ClipSource, DatasetError, missing_files_error, require_root, stratified_folds
from .layout import audio_files

LAYOUT = ("    <class>/<any sub-folders>/<clip>.wav|.flac|.ogg|.mp3|.au   (label = first-level folder), or\n"
          "    a CSV list (dataset.list=...) with columns path,label and optionally fold or split")


def _from_list(base: Path, list_path: Path) -> pd.DataFrame:
    if not list_path.is_file():
        raise DatasetError(f"dataset 'folder': list file {str(list_path)!r} not found.\n  Fix: dataset.list=/path/to/list.csv")
    table = pd.read_csv(list_path, keep_default_na=False)
    if not {"path", "label"} <= set(table.columns):
        raise DatasetError(f"dataset 'folder': {list_path} needs columns path,label (has {list(table.columns)})")
    paths = [Path(p) if Path(p).is_absolute() else base / p for p in table["path"]]
    missing = [str(p) for p in paths if not os.path.lexists(p)]   # a broken link is skipped later, with its reason
    if missing:
        raise missing_files_error("folder", base, missing, len(paths), LAYOUT)
    out = pd.DataFrame({"clip_id": [str(Path(p).with_suffix("")) for p in table["path"]],
                        "path": [str(p) for p in paths], "label": table["label"].astype(str)})
    out["fold"] = table["fold"].astype(int) if "fold" in table else -1
    out["split"] = table["split"].astype(str) if "split" in table else ""
    return out


def build(*, name: str, root: str | None, list: str | None, n_folds: int, fold_seed: int, protocol: str) -> ClipSource:
    base = require_root(name, root, LAYOUT)
    if list:
        table = _from_list(base, Path(list))
    else:
        rows = []
        for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            rows += [{"clip_id": str(f.relative_to(base).with_suffix("")), "path": str(f), "label": d.name}
                     for f in audio_files(d)]
        if not rows:
            raise DatasetError(f"dataset {name!r}: no audio files in class folders under {str(base)!r}.\n"
                               f"  Expected layout under the root:\n{LAYOUT}")
        table = pd.DataFrame(rows)
        table["fold"], table["split"] = -1, ""
    table = table.sort_values("clip_id").reset_index(drop=True)
    if (table["split"] != "").any():
        scheme = "predefined"
    else:
        scheme = "folds"
        if (table["fold"] < 0).all():
            counts = table["label"].value_counts()
            if counts.min() < n_folds:
                raise DatasetError(f"dataset {name!r}: class {counts.idxmin()!r} has {counts.min()} clips, fewer "
                                   f"than dataset.n_folds={n_folds}; lower n_folds or add clips")
            table["fold"] = stratified_folds(table["label"].to_numpy(), n_folds, fold_seed)
    return ClipSource(name, table, scheme, str(base), {"n_folds": n_folds, "fold_seed": fold_seed, "list": bool(list)},
                      "predefined" if scheme == "predefined" else protocol)
