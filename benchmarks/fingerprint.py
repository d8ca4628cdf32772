"""make bench, section fingerprint: what keying a dataset by its content costs: every file hashed (XXH3-128), and
a job that finds the digests remembered (a stat per file); ESC-10 measured (--decode-root, else synthetic
files of its size), UrbanSound8K projected from the measured rates"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from elmarc.datasets.fingerprint import content_digests

from .common import US8K_BYTES, US8K_FILES, synth_files, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    md: list[str] = []
    print("fingerprint: keying a dataset by its content", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        df = bench_fingerprint(args.decode_root, Path(tmp))
    md += table_lines(args.out, "fingerprint", "Content keys: every file hashed against digests remembered (per job)", df)
    return md


def bench_fingerprint(root: Path | None, tmp: Path) -> pd.DataFrame:
    """Keying a dataset by content: hashing every file (page cache warm: the hash's own cost; a first read
    from disk adds the disk's time) against a job that finds every digest remembered."""
    if root is None:
        root = synth_files(tmp / "audio", 400, seconds=5.0)        # ESC-10's count and length
    paths = sorted(str(p) for p in Path(root).rglob("*") if p.suffix in (".ogg", ".wav", ".flac"))
    total = sum(Path(p).stat().st_size for p in paths)
    hashed, remembered = [], []
    for k in range(3):
        store = tmp / f"store{k}"
        t0 = time.perf_counter()
        content_digests(paths, str(root), store)                  # every file hashed, the digests remembered
        hashed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        content_digests(paths, str(root), store)                  # a later job: one stat per file
        remembered.append(time.perf_counter() - t0)
    hash_s, memo_s = min(hashed), min(remembered)
    rate = total / hash_s
    rows = [{"dataset": f"{Path(root).name} (measured)", "files": len(paths), "MB": round(total / 1e6, 1),
             "hash_all_s": round(hash_s, 3), "hash_MB_per_s": round(rate / 1e6), "remembered_s": round(memo_s, 4)},
            {"dataset": "UrbanSound8K (projected)", "files": US8K_FILES, "MB": round(US8K_BYTES / 1e6),
             "hash_all_s": round(US8K_BYTES / rate, 1), "hash_MB_per_s": round(rate / 1e6),
             "remembered_s": round(memo_s / len(paths) * US8K_FILES, 3)}]
    for r in rows:
        print(f"  {r['dataset']}: {r['files']} files, {r['MB']} MB: hashed in {r['hash_all_s']} s "
              f"({r['hash_MB_per_s']} MB/s, page cache warm), remembered digests in {r['remembered_s']} s", flush=True)
    return pd.DataFrame(rows)
