"""make bench, section e2e: extraction from audio files (decode + resample + model inputs, as extraction makes
them, the real Lightning path) against the same model on in-memory inputs; peak memory for N and 2N clips (it
must not grow with the number of clips)"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from elmarc.config import InputConfig
from elmarc.datasets import build_dataset
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.extract.audio_cache import decoded_source
from elmarc.extract.feature_cache import FeatureEntry
from elmarc.extract.loop import run_extraction
from elmarc.frontends import build_frontend

from .common import extraction_for, in_memory_rate, peak_rss_mb, reset_peak_rss, synth_files, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("e2e: extraction from files vs in memory", flush=True)
    return table_lines(args.out, "e2e", "End to end: from 44.1 kHz WAV files (decode + resample + model inputs, as extraction makes them) "
           "and from the decoded-audio cache",
                       bench_e2e(args.e2e_clips, dev, [("vgg", "large"), ("7x86", "large"), ("vgg", "small")], args.workers,
                   gpu_batches=dev.type == "cuda"))


def _extract_from_files(root: Path, cfg_name: str, width: str, cache: Path, workers: int | None, batch: int,
                        audio_cache: bool = False) -> float:
    """Seconds of the real extraction path from files: decode + resample + model inputs in DataLoader
    workers, or (audio_cache) model inputs from the decoded-audio cache, which is filled untimed first
    (a sweep decodes once per dataset; every later job reads the cache)."""
    cfg = frontend_configs()[cfg_name]
    source = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root), "n_folds": 2})
    inputs = InputConfig()
    extraction = extraction_for(cfg, width, workers, batch)
    if audio_cache:
        source, _ = decoded_source(source, inputs, extraction, cache)
    model = build_frontend(cfg, width, 0)
    entry = FeatureEntry.for_spec(cache, {"bench": cfg_name, "width": width, "n": len(source), "t": time.time()}, cfg_name)
    t0 = time.perf_counter()
    run_extraction(entry, source, model, inputs, extraction)
    return time.perf_counter() - t0


def bench_e2e(n: int, dev, pairs, workers: int | None, gpu_batches: bool) -> pd.DataFrame:
    """Files -> features through the real Lightning path vs the same model on in-memory inputs.

    Steady rate = n / (time for 2n clips - time for n clips): fixed start-up costs cancel. One small
    untimed run first loads what a process loads once (CUDA context, cuDNN, worker imports).
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = synth_files(tmp / "audio", 2 * n)
        half = synth_files(tmp / "audio_half", n)
        warm = synth_files(tmp / "audio_warm", 4)
        for name, width in pairs:
            cfg = frontend_configs()[name]
            batch = int((cfg.gpu_batch_size if gpu_batches else cfg.batch_size)[width])
            mem = in_memory_rate(name, width, n, dev, batch)
            _extract_from_files(warm, name, width, tmp / f"w{name}", workers, batch)
            for cached in (False, True):
                where = "decoded-audio cache" if cached else "44.1 kHz WAV files"
                reset_peak_rss()
                t_n = _extract_from_files(half, name, width, tmp / f"c1{name}{cached}", workers, batch, cached)
                rss_n = peak_rss_mb()
                reset_peak_rss()
                t_2n = _extract_from_files(root, name, width, tmp / f"c2{name}{cached}", workers, batch, cached)
                rss_2n = peak_rss_mb()
                steady = n / max(t_2n - t_n, 1e-9)     # the extra n clips of the 2n run: start-up cost cancels
                used = extraction_for(cfg, width, workers, batch).num_workers
                rows.append({"frontend": name, "width": width, "from": where, "batch": batch, "workers": used,
                             "in_memory_clips_per_s": round(mem, 2),
                             f"clips_per_s_{n}": round(n / t_n, 2), f"clips_per_s_{2 * n}": round(2 * n / t_2n, 2),
                             "steady_clips_per_s": round(steady, 2), "steady_ratio": round(steady / mem, 3),
                             "startup_s": round(t_n - n / steady, 2),
                             f"peak_rss_mb_{n}": round(rss_n), f"peak_rss_mb_{2 * n}": round(rss_2n)})
                print(f"  {name:<10} {width:<5} in memory {mem:7.2f} clips/s; from the {where}: {n / t_n:6.2f} "
                      f"({n} clips), {2 * n / t_2n:6.2f} ({2 * n} clips), steady {steady:6.2f} ({100 * steady / mem:5.1f}% of in "
                      f"memory), start-up {t_n - n / steady:.1f} s; peak RSS {rss_n:.0f} MB / {rss_2n:.0f} MB", flush=True)
    return pd.DataFrame(rows)
