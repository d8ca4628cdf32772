"""The cache folder as a whole: check every entry of every kind (python -m elmarc.cache --verify [CACHE_DIR]).

Every entry (decoded audio, features, result rows and predictions, training runs and their folds) is an
elmarc.entry folder with a completion marker, checked the same way; a features entry's batch shards are
also read back. Temporaries left by a killed writer are listed (the next job that locks the entry removes
them). Nothing is moved or deleted unless --move-aside is given (the next run moves damaged files aside
by itself anyway).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .entry import MARKER, CacheEntry, leftovers

KINDS = ("audio", "features", "results", "trained")
CONSEQUENCE = {"audio": "that chunk is decoded again", "features": "rebuilt from its shards",
               "results": "fitted again", "trained": "computed again"}


def entries(cache_dir: Path) -> list[tuple[str, CacheEntry]]:
    """(kind, entry) for every entry below the kinds' folders: a folder with a marker, or a top-level entry
    folder still being written."""
    found = []
    for kind in KINDS:
        base = cache_dir / kind
        if not base.is_dir():
            continue
        folders = {p.parent for p in base.rglob(MARKER) if not any(q.name.startswith("damaged-") for q in p.parents)}
        if kind != "results":
            folders |= {p for p in base.iterdir() if p.is_dir()}
        else:                                       # results/<features key>/<rows entry>/
            folders |= {p for d in base.iterdir() if d.is_dir() for p in d.iterdir() if p.is_dir() and not p.name.startswith("damaged-")}
        found += [(kind, CacheEntry(f)) for f in sorted(folders)]
    return found


def unreadable_shards(entry: Path) -> list[str]:
    problems = []
    for shard in sorted((entry / "shards").glob("b*.npz")):
        try:
            with np.load(shard) as z:
                for k in z.files:
                    z[k]
        except Exception as exc:
            problems.append(f"shards/{shard.name} does not read back ({type(exc).__name__}): its clips are extracted again")
    return problems


def check(kind: str, entry: CacheEntry) -> list[str]:
    """What the next run would recompute in this entry, and what a killed writer left there."""
    problems = [f"{p}: {CONSEQUENCE[kind]}" for p in entry.damaged().values()] if entry.is_complete() else []
    if kind == "features":
        problems += unreadable_shards(entry.root)
    own = [p for p in leftovers(entry.root) if not any((q / MARKER).is_file() for q in p.parents
                                                       if q != entry.root and entry.root in q.parents)]
    problems += [f"{p.relative_to(entry.root)} was left by a stopped writer: removed when the entry is next used" for p in own]
    return problems


def verify_cache(cache_dir: Path) -> tuple[int, dict[Path, list[str]]]:
    """(entries checked, {entry folder: problems} for every entry that fails its check or holds leftovers)."""
    found = entries(cache_dir)
    report = {}
    for kind, entry in found:
        problems = check(kind, entry)
        if problems:
            report[entry.root] = problems
    return len(found), report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m elmarc.cache", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache_dir", nargs="?", default=os.environ.get("ELMARC_CACHE", "cache"))
    ap.add_argument("--verify", action="store_true", help="check every entry (the default action)")
    ap.add_argument("--move-aside", action="store_true", help="also move the damaged files aside now")
    args = ap.parse_args(argv)
    root = Path(args.cache_dir)
    if not root.is_dir():
        print(f"elmarc.cache: {root} is not a cache folder (set it as the runs do: cache_dir=... or ELMARC_CACHE)",
              file=sys.stderr)
        return 2
    n, report = verify_cache(root)
    if not report:
        print(f"{root}: {n} entries checked, all intact")
        return 0
    print(f"{root}: {len(report)} of {n} entries would be recomputed in part by the next run:")
    for folder, problems in report.items():
        print(f"  {folder.relative_to(root)}")
        for p in problems:
            print(f"    - {p}")
        if args.move_aside:
            entry = CacheEntry(folder)
            entry.set_aside_if_damaged()
    return 1


if __name__ == "__main__":
    sys.exit(main())
