"""UrbanSound8K: 8732 clips, 10 classes, the 10 official folds of metadata/UrbanSound8K.csv."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .base import ClipSource, DatasetError, missing_files_error, require_root
from .layout import package_data

LAYOUT = ("    metadata/UrbanSound8K.csv\n    audio/fold1/ ... audio/fold10/   (files named as slice_file_name)")
HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


def read_metadata(path: Path) -> pd.DataFrame:
    meta = pd.read_csv(path)
    if list(meta.columns[: len(HEADER)]) != HEADER:
        raise DatasetError(f"dataset 'urbansound8k': {path} does not have the official header {','.join(HEADER)}")
    return meta


def build(*, name: str, root: str | None, metadata: str | None, protocol: str) -> ClipSource:
    base = require_root("urbansound8k", root, LAYOUT)
    if metadata == "packaged":
        meta_path = package_data("urbansound8k", "UrbanSound8K.csv")
    else:
        meta_path = Path(metadata) if metadata else base / "metadata" / "UrbanSound8K.csv"
    if not meta_path.is_file():
        raise DatasetError(
            f"dataset 'urbansound8k': metadata file {str(meta_path)!r} not found.\n"
            f"  Expected layout under the root:\n{LAYOUT}\n"
            f"  Fix: point dataset.root=... at the UrbanSound8K folder, or use the copy shipped with "
            f"elmarc: dataset.metadata=packaged")
    meta = read_metadata(meta_path)
    paths = [base / "audio" / f"fold{f}" / name for f, name in zip(meta["fold"], meta["slice_file_name"])]
    missing = [str(p.relative_to(base)) for p in paths if not os.path.lexists(p)]   # a broken link is skipped later, with its reason
    if missing:
        raise missing_files_error("urbansound8k", base, missing, len(paths), LAYOUT)
    table = pd.DataFrame({
        "clip_id": [f"fold{f}/{Path(n).stem}" for f, n in zip(meta["fold"], meta["slice_file_name"])],
        "path": [str(p) for p in paths], "label": meta["class"].astype(str),
        "fold": meta["fold"].astype(int) - 1, "split": "",
    })
    return ClipSource(name, table, "folds", str(base), protocol=protocol)
