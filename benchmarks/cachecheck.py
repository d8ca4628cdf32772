"""make bench, section cachecheck: the cache integrity check (size + XXH3-128) against reading the payload"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from elmarc.storage import atomic_write_bytes, manifest, npy_bytes, verify

from .common import table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    md: list[str] = []
    print("cachecheck: the integrity check against reading the payload", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        df = bench_cachecheck(Path(tmp))
    md += table_lines(args.out, "cachecheck", "Cache integrity check against reading (warm page cache: the check's worst case)", df)
    return md


def bench_cachecheck(tmp: Path) -> pd.DataFrame:
    """The integrity check against reading the payload it guards, at UrbanSound8K sizes: a large-width
    feature entry (8732 x 3584 float32) and the decoded audio of the dataset (8732 x 4 s at 12 kHz)."""
    rng = np.random.default_rng(0)
    rows = []
    payloads = {"features.npy (8732 x 3584)": rng.standard_normal((8732, 3584), dtype=np.float32),
                "audio chunks (8732 x 4 s)": rng.standard_normal(8732 * 48000, dtype=np.float32)}
    for name, array in payloads.items():
        path = tmp / "payload.npy"
        atomic_write_bytes(path, npy_bytes(array))
        files = manifest(tmp, [path.name])
        reads, checks = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            np.load(path)
            reads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert not verify(tmp, files)
            checks.append(time.perf_counter() - t0)
        read, check = min(reads), min(checks)
        rows.append({"payload": name, "MB": round(path.stat().st_size / 1e6), "read_s": round(read, 3),
                     "check_s": round(check, 3), "check_over_read": round(check / read, 2)})
        print(f"  {name}: read {read:.3f} s, check (size + XXH3-128) {check:.3f} s", flush=True)
    return pd.DataFrame(rows)
