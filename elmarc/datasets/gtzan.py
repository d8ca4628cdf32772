"""GTZAN with the fault-filtered split of Kereliuk, Sturm & Larsen (2015): 443 / 197 / 290 clips.

Protocol (SPEC 4): select hyper-parameters on valid (trained on train), refit on train, report test.
The split lists ship inside the package; files are matched by stem, so the Marsyas
download (genres/<genre>/<genre>.000NN.au) and .wav conversions both work.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from .base import ClipSource, DatasetError, missing_files_error, require_root
from .layout import audio_files, by_stem, package_data

log = logging.getLogger(__name__)

LAYOUT = ("    genres/<genre>/<genre>.000NN.au   (Marsyas download; .wav/.flac copies also work,\n"
          "                                      matched by file stem, e.g. blues.00029)\n"
          "    10 genres: blues classical country disco hiphop jazz metal pop reggae rock")
SPLITS = ("train", "valid", "test")


def read_split_lists() -> pd.DataFrame:
    rows = []
    for split in SPLITS:
        for line in package_data("gtzan", f"{split}_filtered.txt").read_text().split():
            stem = Path(line).stem
            rows.append({"clip_id": stem, "label": stem.split(".")[0], "split": split})
    return pd.DataFrame(rows)


def verify_checksums(clips: pd.DataFrame) -> list[str]:
    """Files whose md5 differs from the shipped index (only .wav files: the index is of wav copies)."""
    index = json.loads(package_data("gtzan", "gtzan_genre_index_1.0.json").read_text())["tracks"]
    bad = []
    for row in clips.itertuples():
        entry = index.get(row.clip_id)
        if entry is None or not row.path.endswith(".wav"):
            continue
        digest = hashlib.md5(Path(row.path).read_bytes()).hexdigest()
        if digest != entry["audio"][1]:
            bad.append(f"{row.path} (md5 {digest}, expected {entry['audio'][1]})")
    return bad


def build(*, name: str, root: str | None, verify_md5: bool, protocol: str) -> ClipSource:
    base = require_root("gtzan", root, LAYOUT)
    table = read_split_lists()
    found = by_stem(audio_files(base))
    missing = [f"{r.label}/{r.clip_id}.au" for r in table.itertuples() if r.clip_id not in found]
    if missing:
        raise missing_files_error("gtzan", base, missing, len(table), LAYOUT)
    table["path"] = [str(found[c]) for c in table.clip_id]
    table["fold"] = -1
    if verify_md5:
        bad = verify_checksums(table)
        if bad:
            shown = "\n".join(f"    {b}" for b in bad[:5])
            raise DatasetError(f"dataset 'gtzan': {len(bad)} files differ from the shipped md5 index:\n{shown}\n"
                               f"  Fix: replace them from a clean copy, or set dataset.verify_md5=false.")
        log.info("gtzan: md5 of every .wav file matches the shipped index")
    return ClipSource(name, table[["clip_id", "path", "label", "fold", "split"]], "predefined", str(base), protocol=protocol)
