"""make bench, section decode: decode once: seconds of the decode pass against all small front-ends x 3 seeds"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from elmarc.config import InputConfig
from elmarc.datasets import build_dataset
from elmarc.describe import conv_macs, paper_example
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.extract.audio_cache import decoded_source
from elmarc.extract.feature_cache import FeatureEntry
from elmarc.extract.loop import run_extraction
from elmarc.frontends import build_frontend

from .common import extraction_for, in_memory_rate, synth_files, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("decode: one decode pass vs all small front-ends x 3 seeds", flush=True)
    return table_lines(args.out, "decode", "Decode once",
                       bench_decode(args.decode_clips, mm, dev, root=args.decode_root, workers=args.workers))


def bench_decode(n: int, mm: float, dev, seeds=(0, 1, 2), root: Path | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """One decode pass vs every small front-end x seeds extracted from the decoded-audio cache, with what
    the networks alone need for those clips: measured on in-memory inputs, and at the matmul rate."""
    gpu = dev.type == "cuda"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # a real folder of class folders (e.g. ESC-10's compressed OGG files) or n generated WAV files
        source = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root or synth_files(tmp / "audio", n, seconds=5.0)), "n_folds": 2})
        n = len(source)
        inputs = InputConfig()
        t0 = time.perf_counter()
        cached, _ = decoded_source(source, inputs, extraction_for(next(iter(frontend_configs().values())), "small", workers, 1),
                                   tmp / "cache")
        decode = time.perf_counter() - t0
        rows.append({"step": "decode + resample every file once", "jobs": 1, "seconds": round(decode, 2)})
        total = in_memory = floor = 0.0
        jobs = 0
        for name, cfg in frontend_configs().items():
            batch = int((cfg.gpu_batch_size if gpu else cfg.batch_size)["small"])
            job_seeds = seeds if cfg.get("widths") else (0,)
            for seed in job_seeds:
                model = build_frontend(cfg, "small", seed)
                entry = FeatureEntry.for_spec(tmp / "cache", {"bench": name, "seed": seed}, name)
                t0 = time.perf_counter()
                run_extraction(entry, cached, model, inputs, extraction_for(cfg, "small", workers, batch))
                total += time.perf_counter() - t0
                jobs += 1
            if model.input_kind != "audio":                # the MFCC baseline has no network; every seed costs the same
                in_memory += len(job_seeds) * n / in_memory_rate(name, "small", n, dev, batch)
                macs = conv_macs(model.to("meta"), paper_example(model.input_kind))
                floor += len(job_seeds) * 2 * n * macs / (mm * 1e9)
        rows += [{"step": "all small front-ends x 3 seeds from the audio cache", "jobs": jobs, "seconds": round(total, 2)},
                 {"step": "  their networks alone, on in-memory inputs", "jobs": jobs, "seconds": round(in_memory, 2)},
                 {"step": "  their networks at the fp32 matmul rate (direct MAC count)", "jobs": jobs, "seconds": round(floor, 2)}]
        print(f"  {n} clips{'' if root else ' of 5 s'}: decode pass {decode:.1f} s; {jobs} small extractions from the cache "
              f"{total:.1f} s ({total / jobs:.2f} s each); the networks alone {in_memory:.1f} s in memory, "
              f"{floor:.1f} s at the matmul rate", flush=True)
    return pd.DataFrame(rows)
