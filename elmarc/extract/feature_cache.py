"""Keyed, on-disk feature cache: what made an entry is in its key, and entries are written atomically.

Layout of one entry (``<cache_dir>/features/<readable-name>-<hash>/``):
    spec.json       everything that determines the features (the key is its hash)
    shards/         one .npz per extraction batch, written as the batch finishes:
                    b<first>-<last>.npz with arrays index, features, skipped_index, skipped_reason
    features.npy    (n_clips, dim) float32, NaN rows for skipped clips   } written when every
    clips.csv       clip_id, label, fold, split, ok, reason              } shard is there
    done.json       the completeness marker, written last: with the size and checksum (XXH3-128) of
                    features.npy and clips.csv, checked before they are used
    .lock           held (flock) by the process that extracts, so concurrent jobs wait, not clash
    damaged-<time>/ files that failed a check, moved aside (never read again)
A shard that cannot be read whole (a zip CRC error, a truncated file) is moved aside and its
clips are extracted again; a finished entry that fails its check is rebuilt from its shards.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..entry import CacheEntry, safe_name
from ..storage import CacheError, make_dirs, move_aside, npy_bytes, npz_bytes

log = logging.getLogger(__name__)
SHARD_RE = re.compile(r"^b(\d+)-(\d+)\.npz$")
PAYLOAD = ["features.npy", "clips.csv"]


_noted: set[Path] = set()          # cache folders whose older entries were named once in this process


def note_older_formats(base: Path, readable: str, current: int) -> None:
    """Say once per cache folder that entries an older elmarc wrote (a lower format) are not read, and are
    computed again: their keys no longer match any job's."""
    if base in _noted:
        return
    for spec_file in sorted(base.glob(f"{safe_name(readable)}-*/spec.json")):
        try:
            older = int(json.loads(spec_file.read_text()).get("format", 0)) < current
        except (OSError, ValueError, TypeError):
            continue
        if older:
            _noted.add(base)
            log.info("%s holds features entries of an older format (e.g. %s): this version does not read them and "
                     "computes its own (remove them to free the space)", base, spec_file.parent.name)
            return


class FeatureEntry(CacheEntry):
    """One features entry, addressed by the spec that made it (elmarc.entry: lock, marker, check, set aside)."""

    @classmethod
    def for_spec(cls, cache_dir: str | Path, spec: dict, readable: str) -> FeatureEntry:
        entry = cls.keyed(Path(cache_dir) / "features", readable, spec)
        if "format" in spec and not entry.is_complete():
            note_older_formats(entry.root.parent, readable, int(spec["format"]))
        return entry

    @property
    def shard_dir(self) -> Path:
        return self.root / "shards"

    def companions(self, name: str) -> list[str]:
        return PAYLOAD                      # both are rebuilt from the shards together

    def begin(self) -> None:
        super().begin()
        make_dirs(self.shard_dir)

    # -- shards ---------------------------------------------------------------------------
    def shards(self) -> list[dict]:
        """Every shard that reads back whole (a zip member's CRC is checked as it is read); one that
        does not is moved aside, so its clips count as not extracted."""
        out = []
        for p in sorted(self.shard_dir.iterdir()) if self.shard_dir.is_dir() else []:
            if not SHARD_RE.match(p.name):
                continue
            try:
                with np.load(p) as z:
                    out.append({k: z[k] for k in ("index", "features", "skipped_index", "skipped_reason")})
            except Exception as exc:
                aside = move_aside([p], self.root)
                log.warning("shard %s is damaged (%s: %s); moved to %s, its clips are extracted again",
                            p, type(exc).__name__, exc, aside)
        return out

    def covered(self) -> set[int]:
        """Clip indices already written by intact shards (read from the shards: a resumed batch can have gaps)."""
        done: set[int] = set()
        for z in self.shards():
            done.update(int(i) for i in z["index"])
            done.update(int(i) for i in z["skipped_index"])
        return done

    def write_shard(self, index: np.ndarray, features: np.ndarray,
                    skipped_index: np.ndarray, skipped_reason: list[str]) -> Path:
        all_idx = np.concatenate([np.asarray(index, int), np.asarray(skipped_index, int)])
        name = f"b{all_idx.min():07d}-{all_idx.max():07d}.npz"
        return self.write_bytes(f"shards/{name}", npz_bytes(
            index=np.asarray(index, dtype=np.int64),
            features=np.asarray(features, dtype=np.float32),
            skipped_index=np.asarray(skipped_index, dtype=np.int64),
            skipped_reason=np.asarray(skipped_reason, dtype=str),
        ))

    def finalize(self, clips: pd.DataFrame, dim: int, extra: dict | None = None) -> None:
        """Gather every shard into features.npy + clips.csv, then write done.json last."""
        n = len(clips)
        feats = np.full((n, dim), np.nan, dtype=np.float32)
        seen = np.zeros(n, dtype=bool)
        reasons = [""] * n
        for z in self.shards():
            idx = z["index"]
            if len(idx):
                feats[idx] = z["features"]
            seen[idx] = True
            for i, r in zip(z["skipped_index"], z["skipped_reason"]):
                seen[int(i)] = True
                reasons[int(i)] = str(r)
        if not seen.all():
            missing = np.flatnonzero(~seen)
            raise CacheError(f"{self.root}: {len(missing)} clips have no shard (first {missing[:5].tolist()})")
        table = clips[["clip_id", "label", "fold", "split"]].copy()
        table["ok"] = [r == "" for r in reasons]
        table["reason"] = reasons
        self.write_bytes("features.npy", npy_bytes(feats))
        self.write_text("clips.csv", table.to_csv(index=False))
        self.finish(PAYLOAD, n_clips=n, dim=dim, n_skipped=int((~table["ok"]).sum()), **(extra or {}))

    # -- reading --------------------------------------------------------------------------
    def load(self) -> tuple[np.ndarray, pd.DataFrame]:
        """(features (n, dim) float32, clip table with ok/reason) of a complete, intact entry."""
        if not self.is_complete():
            raise CacheError(
                f"no complete features at {self.root}.\n  Fix: run the extract stage first "
                f"(stage=all or stage=extract with the same dataset/frontend/features/seed/input settings)."
            )
        problems = self.problems()
        if problems:
            raise CacheError(f"cache entry {self.root} is damaged: {'; '.join(problems)}.\n"
                             f"  Fix: run the extract stage (stage=all or stage=extract): it moves the damaged files "
                             f"aside and rebuilds the entry from its intact shards.")
        return np.load(self.root / "features.npy"), self.clip_table()

    def clip_table(self) -> pd.DataFrame:
        """clip_id, label, fold, split, ok, reason of a complete entry (without reading the features)."""
        return pd.read_csv(self.root / "clips.csv", keep_default_na=False,
                           dtype={"clip_id": str, "label": str, "split": str, "reason": str})

    def extraction_seconds(self) -> float:
        """Seconds to extract every clip of the entry, from its measured rate (a resumed extraction timed only
        its last part); NaN when no rate was measured (nothing extracted in the run that finished it)."""
        if not self.is_complete():
            return float("nan")
        info = self.info()
        rate = float(info["clips_per_second"])
        return round(info["n_clips"] / rate, 3) if rate > 0 else float("nan")
