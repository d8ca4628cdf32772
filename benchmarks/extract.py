"""make bench, section extract: every front-end x width on 29-s inputs: clips/s, MACs/clip (from the model),
GFLOP/s, fraction of the fp32 matmul rate measured in the same run, peak resident memory"""
from __future__ import annotations

import time

import pandas as pd
import torch

from elmarc.describe import conv_macs, paper_example
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.frontends import build_frontend
from elmarc.frontends.speed import SpeedPolicy

from .common import batch_sizes, example_batch, peak_gpu_mb, peak_rss_mb, reset_peak_rss, run_context, sync, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("extract: every front-end on 29-s inputs", flush=True)
    return table_lines(args.out, "extract", "Front-ends on 29-s inputs (in memory)",
                       bench_extract(args.widths.split(","), set(filter(None, args.frontends.split(","))), args.min_seconds, mm, dev,
                       args.precision, args.gpu_batch_only, args.compile, tuple(args.conv_forms.split(","))))


def bench_extract(widths, names, min_seconds: float, mm: float, dev, precision: str = "32-true",
                  gpu_batch_only: bool = False, compile_model: bool = False,
                  modes: tuple[str, ...] = ("plain", "rule", "auto")) -> pd.DataFrame:
    """Every front-end with each way of choosing its layers' forms (elmarc.frontends.speed): plain, the
    layers' own rules, and measured here (auto; the choices and their timings are printed)."""
    rows = []
    for name, cfg in frontend_configs().items():
        if names and name not in names:
            continue
        for width in widths if cfg.get("widths") else ["any"]:
            w = "small" if width == "any" else width
            model = build_frontend(cfg, w, seed=0)
            if model.input_kind == "audio":
                continue                                   # the MFCC baseline: see the e2e section
            macs = conv_macs(build_frontend(cfg, w, seed=0).to("meta"), paper_example(model.input_kind))
            model = model.to(dev)
            run = torch.compile(model) if compile_model else model
            for batch, mode in ((b, m) for b in batch_sizes(cfg, w, dev, gpu_batch_only) for m in modes):
                policy = SpeedPolicy(mode)
                x = example_batch(model.input_kind, batch, dev)
                reset_peak_rss()
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                try:
                    with run_context(dev, precision), policy.active():
                        t_first = time.perf_counter()
                        run(x)                             # warm-up at the timed shape (allocator, kernels, compile; auto: measuring)
                        sync(dev)
                        first_call = time.perf_counter() - t_first
                        clips, t0 = 0, time.perf_counter()
                        while True:
                            run(x)
                            sync(dev)
                            clips += batch
                            if time.perf_counter() - t0 >= min_seconds:
                                break
                        seconds = time.perf_counter() - t0
                except torch.OutOfMemoryError:
                    print(f"  {name:<18} {width:<5} batch {batch}: out of device memory", flush=True)
                    del x
                    torch.cuda.empty_cache()
                    continue
                del x
                rate = clips / seconds
                gflops = 2 * macs * rate / 1e9
                chosen = {k.split("|")[0] + "[" + "|".join(k.split("|")[3:]) + "]": v for k, v in policy.choices.items()
                          if k in policy.timings} if mode == "auto" else {}
                rows.append({"frontend": name, "width": width, "batch": batch, "precision": precision, "conv_forms": mode,
                             "compiled": compile_model, "clips_per_s": round(rate, 3),
                             "macs_per_clip": macs, "gflop_per_s": round(gflops, 1),
                             "fraction_of_matmul": round(gflops / mm, 3), "peak_rss_mb": round(peak_rss_mb()),
                             "peak_gpu_mb": None if dev.type == "cpu" else round(peak_gpu_mb(dev))})
                rows[-1]["chosen_forms"] = "; ".join(f"{k}: {v}" for k, v in chosen.items())
                rows[-1]["first_call_s"] = round(first_call, 2)
                print(f"  {name:<18} {width:<5} batch {batch:<4} {mode:<5} {rate:9.2f} clips/s {gflops:8.1f} GFLOP/s "
                      f"{100 * gflops / mm:6.1f}% of matmul  peak RSS {rows[-1]['peak_rss_mb']} MB"
                      + (f", GPU {rows[-1]['peak_gpu_mb']} MB" if dev.type == "cuda" else ""), flush=True)
                if mode == "auto" and policy.timings:
                    print(f"      first call {first_call:.2f} s (measuring {len(policy.timings)} layer shapes; once per machine "
                          f"and shape) vs {batch / rate:.2f} s a batch after", flush=True)
                for key, secs in (policy.timings.items() if mode == "auto" else ()):
                    print(f"      chose {policy.choices[key]:<10} for {key}: "
                          + ", ".join(f"{f} {t * 1e3:.2f} ms" for f, t in secs.items()), flush=True)
    return pd.DataFrame(rows)
