"""ESC-10 and ESC-50 (Piczak 2015): 5 folds; clips of one source recording stay in one fold.

Layouts read:
  ESC-10 original release:  NNN - Class/F-ID-T.ogg     (fold = first character of the name)
  ESC-50 repository:        audio/F-ID-T-target.wav + meta/esc50.csv (columns filename, fold,
                            target, category, esc10, ...); dataset=esc10 takes its esc10 rows.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from .base import ClipSource, DatasetError, missing_files_error, require_root
from .layout import audio_files

LAYOUT_10 = ("    NNN - Class/F-ID-T.ogg    e.g. '001 - Dog bark/1-100032-A.ogg' (ESC-10 release), or\n"
             "    audio/*.wav + meta/esc50.csv (the ESC-50 repository; its esc10 rows)")
LAYOUT_50 = "    audio/F-ID-T-target.wav\n    meta/esc50.csv   (filename,fold,target,category,esc10,src_file,take)"
CLASS_DIR = re.compile(r"^\d{3} - (.+)$")


def _from_esc50_csv(name: str, base: Path, only_esc10: bool, layout: str) -> pd.DataFrame:
    meta = pd.read_csv(base / "meta" / "esc50.csv")
    if only_esc10:
        meta = meta[meta["esc10"].astype(str).str.lower() == "true"]
    paths = [base / "audio" / f for f in meta["filename"]]
    missing = [str(p.relative_to(base)) for p in paths if not os.path.lexists(p)]   # a broken link is skipped later, with its reason
    if missing:
        raise missing_files_error(name, base, missing, len(paths), layout)
    return pd.DataFrame({"clip_id": [Path(f).stem for f in meta["filename"]], "path": [str(p) for p in paths],
                         "label": meta["category"].astype(str), "fold": meta["fold"].astype(int) - 1, "split": ""})


def _from_class_folders(base: Path) -> pd.DataFrame:
    rows = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and CLASS_DIR.match(p.name)):
        label = CLASS_DIR.match(d.name).group(1)
        for f in audio_files(d):
            if not f.name[0].isdigit():
                raise DatasetError(f"dataset 'esc10': cannot read the fold of {f} (name must start with 1-5)")
            rows.append({"clip_id": f"{d.name}/{f.stem}", "path": str(f), "label": label,
                         "fold": int(f.name[0]) - 1, "split": ""})
    return pd.DataFrame(rows)


def build_esc10(*, name: str, root: str | None, protocol: str) -> ClipSource:
    base = require_root("esc10", root, LAYOUT_10)
    if (base / "meta" / "esc50.csv").is_file():
        table = _from_esc50_csv("esc10", base, True, LAYOUT_10)
    else:
        table = _from_class_folders(base)
    if table.empty:
        raise DatasetError(f"dataset 'esc10': no class folders like '001 - Dog bark' under {str(base)!r}.\n"
                           f"  Expected layout under the root:\n{LAYOUT_10}\n  Fix: dataset.root=/path/to/ESC-10")
    return ClipSource(name, table.sort_values("clip_id").reset_index(drop=True), "folds", str(base), protocol=protocol)


def build_esc50(*, name: str, root: str | None, protocol: str) -> ClipSource:
    base = require_root("esc50", root, LAYOUT_50)
    if not (base / "meta" / "esc50.csv").is_file():
        raise DatasetError(f"dataset 'esc50': metadata file {str(base / 'meta' / 'esc50.csv')!r} not found.\n"
                           f"  Expected layout under the root:\n{LAYOUT_50}\n  Fix: dataset.root=/path/to/ESC-50")
    table = _from_esc50_csv("esc50", base, False, LAYOUT_50)
    return ClipSource(name, table.sort_values("clip_id").reset_index(drop=True), "folds", str(base), protocol=protocol)
