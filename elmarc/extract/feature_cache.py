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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..storage import (
    CacheError,
    atomic_write_bytes,
    atomic_write_text,
    file_lock,
    make_dirs,
    manifest,
    move_aside,
    npy_bytes,
    npz_bytes,
    stable_hash,
    verify,
)

log = logging.getLogger(__name__)
SHARD_RE = re.compile(r"^b(\d+)-(\d+)\.npz$")
PAYLOAD = ["features.npy", "clips.csv"]


@dataclass
class FeatureEntry:
    """One cache entry, addressed by the spec that made it."""

    root: Path
    spec: dict
    _clean_at: int | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_spec(cls, cache_dir: str | Path, spec: dict, readable: str) -> FeatureEntry:
        key = stable_hash(spec)[:16]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", readable)
        return cls(Path(cache_dir) / "features" / f"{safe}-{key}", spec)

    @property
    def key(self) -> str:
        return self.root.name

    @property
    def shard_dir(self) -> Path:
        return self.root / "shards"

    def is_complete(self) -> bool:
        """Finished (its marker is written); whether it is intact is problems()' answer."""
        return (self.root / "done.json").is_file()

    def problems(self) -> list[str]:
        """What is wrong with a finished entry's payload ([] when it is whole and unchanged).

        A clean result holds for this object while the marker is the one checked: the extract and
        classify stages of a job both ask, and the payload is hashed once."""
        marker = self.root / "done.json"
        stamp = marker.stat().st_mtime_ns if marker.is_file() else None
        if stamp is not None and stamp == self._clean_at:
            return []
        problems = self._check()
        self._clean_at = stamp if not problems else None
        return problems

    def _check(self) -> list[str]:
        try:
            info = self.info()
        except (OSError, ValueError) as exc:
            return [f"done.json is unreadable ({exc})"]
        if "files" not in info:             # finished before entries carried checksums: check it can be read
            try:
                np.load(self.root / "features.npy", mmap_mode="r")
                self.clip_table()
            except Exception as exc:
                return [f"features.npy or clips.csv is unreadable ({type(exc).__name__}: {exc})"]
            info["files"] = manifest(self.root, PAYLOAD)
            atomic_write_text(self.root / "done.json", json.dumps(info, indent=2))
            return []
        return verify(self.root, info["files"])

    def set_aside_if_damaged(self) -> list[str]:
        """If the finished entry fails its check: say so, move its payload and marker aside (the shards stay,
        so extraction rebuilds it from the intact ones) and return the problems."""
        if not self.is_complete():
            return []
        problems = self.problems()
        if problems:
            aside = move_aside([self.root / n for n in (*PAYLOAD, "done.json")], self.root)
            log.warning("cache entry %s is damaged (%s); moved to %s and recomputed", self.root, "; ".join(problems), aside)
        return problems

    def lock(self):
        return file_lock(self.root / ".lock")

    def begin(self) -> None:
        """Create the entry (idempotent); refuse to mix with an entry made by another spec."""
        spec_path = self.root / "spec.json"
        if spec_path.is_file():
            if json.loads(spec_path.read_text()) != json.loads(json.dumps(self.spec, default=str)):
                raise CacheError(f"cache entry {self.root} was made by a different spec; delete it to recompute")
        else:
            atomic_write_text(spec_path, json.dumps(self.spec, indent=2, sort_keys=True, default=str))
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
        path = self.shard_dir / name
        atomic_write_bytes(path, npz_bytes(
            index=np.asarray(index, dtype=np.int64),
            features=np.asarray(features, dtype=np.float32),
            skipped_index=np.asarray(skipped_index, dtype=np.int64),
            skipped_reason=np.asarray(skipped_reason, dtype=str),
        ))
        return path

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
        atomic_write_bytes(self.root / "features.npy", npy_bytes(feats))
        atomic_write_text(self.root / "clips.csv", table.to_csv(index=False))
        info = {"n_clips": n, "dim": dim, "n_skipped": int((~table["ok"]).sum()), **(extra or {}),
                "files": manifest(self.root, PAYLOAD)}
        atomic_write_text(self.root / "done.json", json.dumps(info, indent=2))

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

    def info(self) -> dict:
        return json.loads((self.root / "done.json").read_text())
