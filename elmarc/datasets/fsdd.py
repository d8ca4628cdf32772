"""Free Spoken Digit Dataset (Jakobovski et al.; CC BY-SA 4.0): spoken digits 0-9, 8 kHz WAV, 50 takes of each
digit by each speaker (6 speakers, 3000 clips in release v1.0.10).

Layout read (the repository as cloned):  recordings/{digit}_{speaker}_{take}.wav
Folds: one per speaker (leave-one-speaker-out: a model never hears the test speaker's voice), in the speakers'
sorted order. takes_per_digit keeps takes 0..n-1 of each (speaker, digit): a balanced subset for costly studies.
"""
from __future__ import annotations

import re

import pandas as pd

from .base import ClipSource, DatasetError, require_root

LAYOUT = "    recordings/{digit}_{speaker}_{take}.wav    e.g. recordings/7_jackson_32.wav"
NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


def build(*, name: str, root: str | None, takes_per_digit: int | None, protocol: str) -> ClipSource:
    base = require_root(name, root, LAYOUT)
    folder = base / "recordings" if (base / "recordings").is_dir() else base
    rows = []
    for f in sorted(folder.glob("*.wav")):
        m = NAME.match(f.stem)
        if not m:
            raise DatasetError(f"dataset {name!r}: {f} is not named {{digit}}_{{speaker}}_{{take}}.wav.\n"
                               f"  Fix: move it out of {folder}, or use dataset=folder with a list")
        rows.append({"clip_id": f.stem, "path": str(f), "label": m.group(1), "speaker": m.group(2), "take": int(m.group(3))})
    if not rows:
        raise DatasetError(f"dataset {name!r}: no recordings under {str(folder)!r}.\n"
                           f"  Expected layout under the root:\n{LAYOUT}\n  Fix: dataset.root=/path/to/free-spoken-digit-dataset")
    table = pd.DataFrame(rows)
    if takes_per_digit is not None:
        if takes_per_digit < 1:
            raise DatasetError(f"dataset.takes_per_digit={takes_per_digit}: use a positive number (or null: all)")
        table = table[table["take"] < int(takes_per_digit)]
    speakers = sorted(table["speaker"].unique())
    if len(speakers) < 2:
        raise DatasetError(f"dataset {name!r}: one speaker ({speakers[0]}) under {str(folder)!r}; leave-one-speaker-out "
                           f"folds need two or more.\n  Fix: point dataset.root at the whole recordings folder")
    table["fold"] = table["speaker"].map({s: i for i, s in enumerate(speakers)}).astype(int)
    table["split"] = ""
    table = table[["clip_id", "path", "label", "fold", "split"]].sort_values("clip_id").reset_index(drop=True)
    return ClipSource(name, table, "folds", str(base), {"takes_per_digit": takes_per_digit, "speakers": speakers},
                      protocol=protocol)
