"""The cache folder as a whole: check every entry (python -m elmarc.cache --verify [CACHE_DIR]).

Lists each entry that fails its check (a payload file truncated, changed or missing, a shard that
does not read back whole) and what the next run would recompute; nothing is moved or deleted
unless --move-aside is given (the next run moves damaged files aside by itself anyway).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .storage import move_aside, verify


def check_features(entry: Path) -> list[str]:
    problems = []
    if (entry / "done.json").is_file():
        try:
            files = json.loads((entry / "done.json").read_text()).get("files")
        except ValueError as exc:
            return [f"done.json is unreadable ({exc}): the entry is rebuilt from its shards"]
        if files is None:
            return []                       # made before manifests: the next run checks it can be read and records them
        problems += [f"{p}: rebuilt from its shards" for p in verify(entry, files)]
    for shard in sorted((entry / "shards").glob("b*.npz")):
        try:
            with np.load(shard) as z:
                for k in z.files:
                    z[k]
        except Exception as exc:
            problems.append(f"shards/{shard.name} does not read back ({type(exc).__name__}): its clips are extracted again")
    return problems


def check_audio(folder: Path) -> list[str]:
    if not (folder / "done.json").is_file():
        return []
    try:
        files = json.loads((folder / "done.json").read_text()).get("files") or {}
    except ValueError as exc:
        return [f"done.json is unreadable ({exc}): every chunk is checked and the damaged ones decoded again"]
    return [f"{p}: that chunk is decoded again" for p in verify(folder, files)]


def check_results(folder: Path) -> list[str]:
    problems = []
    for csv in sorted(p for p in folder.glob("*.csv") if not p.name.endswith(".predictions.csv")):   # in the rows' manifest
        marker = csv.with_name(csv.stem + ".done.json")
        try:
            bad = verify(folder, json.loads(marker.read_text())["files"])
        except (OSError, ValueError, KeyError):
            bad = [f"{csv.name} has no completion marker (its writing was interrupted)"]
        problems += [f"{p}: fitted again" for p in bad]
    return problems


def verify_cache(cache_dir: Path) -> dict[Path, list[str]]:
    """{entry folder: problems} for every entry of a cache folder that fails its check."""
    report: dict[Path, list[str]] = {}
    kinds = (("features", check_features), ("audio", check_audio), ("results", check_results))
    for kind, check in kinds:
        base = cache_dir / kind
        for entry in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            problems = check(entry)
            if problems:
                report[entry] = problems
    return report


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
    report = verify_cache(root)
    n = sum(1 for kind in ("features", "audio", "results") if (root / kind).is_dir() for p in (root / kind).iterdir() if p.is_dir())
    if not report:
        print(f"{root}: {n} entries checked, all intact")
        return 0
    print(f"{root}: {len(report)} of {n} entries would be recomputed in part by the next run:")
    for entry, problems in report.items():
        print(f"  {entry.relative_to(root)}")
        for p in problems:
            print(f"    - {p}")
        if args.move_aside:
            names = [p.split(" ", 1)[0] for p in problems]
            print(f"    moved to {move_aside([entry / n for n in names if (entry / n).exists()], entry)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
