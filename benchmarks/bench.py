"""python -m benchmarks.bench (make bench): how close extraction and classification come to what the machine allows.

Sections (``--only`` picks some):
  extract   every front-end x width on 29-s inputs: clips/s, MACs/clip (from the model), GFLOP/s,
            fraction of the fp32 matmul rate measured in the same run, peak resident memory
  e2e       extraction from audio files (decode + resample + model inputs, as extraction makes them,
            the real Lightning path) against the same model on in-memory inputs; peak memory
            for N and 2N clips (it must not grow with the number of clips)
  decode    decode once: seconds of the decode pass against all small front-ends x 3 seeds
  svmgrid   our 32-setting SVM grid against GridSearchCV(SVC) on the same folds (same selection?)
  svmconv   every SVM setting on one split, before (libsvm to convergence) and after (SMO budget + exact
            solve): seconds, and the same decisions? Per front-end on cached features (--svmconv-features;
            make bench passes ESC-10's) and on the synthetic tasks, as extracted and standardised
  cachecheck the cache integrity check (size + XXH3-128) against reading the payload
  fingerprint what keying a dataset by its content costs: every file hashed (XXH3-128), and a job
            that finds the digests remembered (a stat per file); ESC-10 measured (--decode-root, else
            synthetic files of its size), UrbanSound8K projected from the measured rates
  classify  the classifier stage at the paper's largest scale (UrbanSound8K: 8732 x 3584, 10 folds),
            timed on a subset of folds and projected
  ceiling   each front-end's GEMM ceiling: torch.mm timed at every convolution's im2col shape (the
            batch extraction uses), as a fraction of the matmul rate, as one product with a fresh
            output and in blocks of 1024 rows into a reused buffer (how the blocked forms run them):
            what a convolution form built on matrix products can reach on this host; and for the
            layers max-pooled over frequency (7x96, 7x86, timbral branches) their products alone,
            with the running maximum over the offsets, and as extracted
Writes bench/<section>.csv and bench/bench.md and prints them.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from elmarc.describe import conv_macs, paper_example
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.extract.inputs import frontend_batch_size, resolve_workers
from elmarc.frontends import build_frontend

SECTIONS = ("extract", "ceiling", "e2e", "decode", "svmgrid", "svmconv", "cachecheck", "fingerprint", "classify")
US8K_FILES, US8K_BYTES = 8732, 6.6e9            # UrbanSound8K as published: 8732 WAV files, about 6.6 GB


# ----------------------------------------------------------------------------- machine facts
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(dev: torch.device, seconds: float = 1.5) -> float:
    """Best fp32 GEMM rate (GFLOP/s) over a few square sizes, on this device and thread count."""
    best = 0.0
    for n in ((2048, 4096) if dev.type == "cpu" else (8192,)):
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        a @ b
        sync(dev)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            a @ b
            reps += 1
        sync(dev)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")    # Linux: resets VmHWM to the current RSS


def peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb(dev) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None


# ----------------------------------------------------------------------------- sections
def run_context(dev, precision: str):
    """fp32 (TF32 off, as extraction runs it), TF32, or bf16 autocast: the precision a row was timed in."""
    from elmarc.extract.loop import float32_math

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(float32_math(precision == "tf32"))
    if precision == "bf16-mixed":
        stack.enter_context(torch.autocast(dev.type, dtype=torch.bfloat16))
    return stack


def batch_sizes(cfg, width: str, dev, gpu_batch_only: bool) -> list[int]:
    base = int(cfg.batch_size[width])
    if dev.type == "cpu":
        return [min(base, 4 if width == "large" else 64)]
    gpu = frontend_batch_size(cfg, width, True)
    return [gpu] if gpu_batch_only else sorted({base, gpu})    # GPU: the CPU-sized batch and the GPU default


def example_batch(kind: str, batch: int, dev) -> torch.Tensor:
    """Random model inputs of 29-s clips at realistic scales: waveform or log-mel (dB)."""
    return (torch.randn(batch, 350000, device=dev) * 0.1 if kind == "waveform"
            else torch.randn(batch, 1376, 96, device=dev) * 10 - 40)


def bench_extract(widths, names, min_seconds: float, mm: float, dev, precision: str = "32-true",
                  gpu_batch_only: bool = False, compile_model: bool = False,
                  modes: tuple[str, ...] = ("plain", "fused", "auto")) -> pd.DataFrame:
    """Every front-end with each way of choosing its layers' forms (elmarc.frontends.forms): plain, the
    layers' own rules (fused), and measured here (auto; the choices and their timings are printed)."""
    from elmarc.frontends import forms

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
                forms.configure(mode)
                x = example_batch(model.input_kind, batch, dev)
                reset_peak_rss()
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                try:
                    with run_context(dev, precision):
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
                chosen = {k.split("|")[0] + "[" + "|".join(k.split("|")[3:]) + "]": v for k, v in forms.choices().items()
                          if k in forms.timings()} if mode == "auto" else {}
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
                if mode == "auto" and forms.timings():
                    print(f"      first call {first_call:.2f} s (measuring {len(forms.timings())} layer shapes; once per machine "
                          f"and shape) vs {batch / rate:.2f} s a batch after", flush=True)
                for key, secs in (forms.timings().items() if mode == "auto" else ()):
                    print(f"      chose {forms.choices()[key]:<10} for {key}: "
                          + ", ".join(f"{f} {t * 1e3:.2f} ms" for f, t in secs.items()), flush=True)
                forms.reset()
    return pd.DataFrame(rows)


def conv_gemm_shapes(model: torch.nn.Module, example: torch.Tensor) -> list[tuple[int, int, int]]:
    """(M, K, N) of each convolution's im2col matrix product, from a plain forward on meta tensors:
    M output positions x batch, K input channels x kernel size (per group), N output channels (per group);
    a grouped convolution counts as that many products."""
    import math

    from torch.utils._python_dispatch import TorchDispatchMode

    from elmarc.frontends.ops import direct_convolution

    calls = []

    class Convolutions(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.convolution.default:
                weight, groups = args[1], int(args[8])
                m, k, n = out.shape[0] * math.prod(out.shape[2:]), math.prod(weight.shape[1:]), weight.shape[0] // groups
                calls.extend([(m, k, n)] * groups)
            return out

    with direct_convolution(), torch.no_grad(), Convolutions():
        model(example)
    return calls


def matmul_seconds(m: int, k: int, n: int, dev, min_seconds: float = 0.2, rows: int | None = None) -> float:
    """Seconds of an (m x k) @ (k x n) product: one torch.mm with a fresh output (rows=None), or, with
    rows, blocks of that many rows into one reused output buffer (as the blocked forms run them)."""
    block = m if rows is None else min(rows, m)
    a, b = torch.randn(block, k, device=dev), torch.randn(k, n, device=dev)
    out = None if rows is None else torch.empty(block, n, device=dev)
    run = (lambda: torch.mm(a, b)) if out is None else (lambda: torch.mm(a, b, out=out))
    run()
    sync(dev)
    count, t0 = 0, time.perf_counter()
    while True:
        run()
        sync(dev)
        count += 1
        if time.perf_counter() - t0 >= min_seconds:
            return (time.perf_counter() - t0) / count * m / block


def bench_ceiling(widths, names, mm: float, dev, rows: int = 1024) -> pd.DataFrame:
    """Per front-end x width: the rate torch.mm reaches on its convolutions' im2col shapes, one batch:
    as one product with a fresh output, and in blocks of `rows` rows into a reused buffer."""
    rows_out = []
    for name, cfg in frontend_configs().items():
        if (names and name not in names) or not cfg.get("widths"):
            continue
        for width in widths:
            model = build_frontend(cfg, width, seed=0).to("meta")
            batch = frontend_batch_size(cfg, width, dev.type == "cuda")
            example = paper_example(model.input_kind)
            shapes = conv_gemm_shapes(model, example.expand(batch, *example.shape[1:]))
            macs = sum(m * k * n for m, k, n in shapes)
            row = {"frontend": name, "width": width, "batch": batch, "convolutions": len(shapes)}
            for label, block in (("one_product", None), ("blocks", rows)):
                timed = {s: matmul_seconds(*s, dev, rows=block) for s in set(shapes)}     # each distinct shape timed once
                gflops = 2 * macs / sum(timed[s] for s in shapes) / 1e9
                worst = min(timed, key=lambda s: s[0] * s[1] * s[2] / timed[s])
                row |= {f"{label}_fraction_of_matmul": round(gflops / mm, 3), f"{label}_slowest_MxKxN": "x".join(map(str, worst)),
                        f"{label}_slowest_fraction": round(2 * worst[0] * worst[1] * worst[2] / timed[worst] / 1e9 / mm, 3)}
            rows_out.append(row)
            print(f"  {name:<18} {width:<5} batch {batch:<3} {len(shapes):2d} convolutions, their im2col products: "
                  f"one product each {100 * row['one_product_fraction_of_matmul']:5.1f}% of matmul, in blocks of {rows} rows "
                  f"{100 * row['blocks_fraction_of_matmul']:5.1f}% (slowest {row['blocks_slowest_MxKxN']} at "
                  f"{100 * row['blocks_slowest_fraction']:.0f}%)", flush=True)
    return pd.DataFrame(rows_out)


def max_freq_layers(model: torch.nn.Module) -> list[tuple[int, int, int, int]]:
    """(kt, kf, filters, time padding) of each one-channel conv whose maps are max-pooled over all their
    frequency offsets (7x96, 7x86, the timbral branches), or [] for other front-ends."""
    from elmarc.frontends.musical import Musical
    from elmarc.frontends.spectrogram import Conv7xN

    if isinstance(model, Conv7xN):
        convs = [model.conv]
    elif isinstance(model, Musical) and model.timbral is not None:
        convs = list(model.timbral.convs)
    else:
        return []
    return [(c.kernel_size[0], c.kernel_size[1], c.out_channels, 0 if isinstance(model, Conv7xN) else c.kernel_size[0] // 2)
            for c in convs]


def _offset_products(patches: torch.Tensor, wt: torch.Tensor, kt: int, offsets: int, rows: int, maximum: bool) -> None:
    """One product per frequency offset and whole block of rows into a reused buffer, with or without the running maximum."""
    k = wt.shape[0]
    running, product = torch.empty(rows, wt.shape[1], device=wt.device), torch.empty(rows, wt.shape[1], device=wt.device)
    for s in range(0, patches.shape[0] - rows + 1, rows):
        torch.mm(patches[s:s + rows, :k], wt, out=running)
        for f in range(1, offsets):
            torch.mm(patches[s:s + rows, f * kt:f * kt + k], wt, out=product)
            if maximum:
                torch.maximum(running, product, out=running)


def bench_max_freq(widths, names, mm: float, dev, rows: int = 512) -> pd.DataFrame:
    """For the layers max-pooled over frequency: their products alone (one per offset and block of rows,
    into a reused buffer, on the strided patch matrix), the same with the running maximum, the native
    kernel (the maximum kept in registers; where a compiler built it), and the layer as extraction runs
    it (conv2d_max_freq_relu_mean, its measured form): where the time goes."""
    from elmarc.frontends import forms, native, ops

    def best(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    out_rows = []
    for name, cfg in frontend_configs().items():
        if (names and name not in names) or not cfg.get("widths"):
            continue
        for width in widths:
            layers = max_freq_layers(build_frontend(cfg, width, seed=0))
            if not layers:
                continue
            batch = frontend_batch_size(cfg, width, dev.type == "cuda")
            h = (torch.randn(batch, 1, 1376, 96, device=dev) * 10 - 40)
            totals = {"macs": 0, "products": 0.0, "with_maximum": 0.0, "native": 0.0, "layer": 0.0}
            kernel = dev.type == "cpu" and native.library() is not None
            forms.configure("auto")
            for kt, kf, n_filters, pad in layers:
                w = torch.randn(n_filters, 1, kt, kf, device=dev) * 0.05
                offsets = 96 - kf + 1
                patches = ops.patch_rows(h, kt, (pad, pad), h.dtype)
                wt = ops.band_major_weights(w, h.dtype)
                n, k = patches.shape[0], kf * kt
                share = (n // rows * rows) / n                       # whole blocks timed: scale to all rows
                totals["macs"] += n * offsets * n_filters * k
                for key, maximum in (("products", False), ("with_maximum", True)):
                    totals[key] += best(functools.partial(_offset_products, patches, wt, kt, offsets, rows, maximum)) / share
                if kernel:
                    totals["native"] += best(functools.partial(ops._native_patch_max, h, w, (pad, pad), relu_mean=True))
                totals["layer"] += best(functools.partial(ops.conv2d_max_freq_relu_mean, h, w, (pad, pad)))
            forms.reset()
            forms.configure("fused")
            frac = {key: 2 * totals["macs"] / totals[key] / 1e9 / mm if totals[key] else float("nan")
                    for key in ("products", "with_maximum", "native", "layer")}
            out_rows.append({"frontend": name, "width": width, "batch": batch, "layers": len(layers),
                             **{f"{key}_fraction_of_matmul": round(v, 3) for key, v in frac.items()}})
            print(f"  {name:<18} {width:<5} batch {batch:<3} {len(layers)} layers max-pooled over frequency: products "
                  f"{100 * frac['products']:5.1f}% of matmul, with the running maximum {100 * frac['with_maximum']:5.1f}%, "
                  f"native kernel {100 * frac['native']:5.1f}%, the layers as extracted {100 * frac['layer']:5.1f}%", flush=True)
    return pd.DataFrame(out_rows)


def synth_files(folder: Path, n: int, seconds: float = 10.0, rate: int = 44100) -> Path:
    """n WAV files in two class folders (real decode + resample work)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / f"class{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        audio = 0.3 * np.sin(2 * np.pi * (200 + 100 * (i % 2)) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(d / f"clip{i:04d}.wav", audio.astype(np.float32), rate)
    return folder


def _extract_from_files(root: Path, cfg_name: str, width: str, cache: Path, workers: int | None, batch: int,
                        audio_cache: bool = False) -> float:
    """Seconds of the real extraction path from files: decode + resample + model inputs in DataLoader
    workers, or (audio_cache) model inputs from the decoded-audio cache, which is filled untimed first
    (a sweep decodes once per dataset; every later job reads the cache)."""
    from elmarc.config import ExtractConfig, InputConfig
    from elmarc.datasets import build_dataset
    from elmarc.extract.audio_cache import AudioCache, CachedSource
    from elmarc.extract.feature_cache import FeatureEntry
    from elmarc.extract.loop import run_extraction

    cfg = frontend_configs()[cfg_name]
    source = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root), "n_folds": 2})
    inputs = InputConfig()
    gpu = torch.cuda.is_available()
    if audio_cache:
        audio = AudioCache(cache / "audio", source, inputs)
        audio.ensure(num_workers=resolve_workers(workers, gpu, decode_pass=True))
        source = CachedSource(source, audio)
    model = build_frontend(cfg, width, 0)
    entry = FeatureEntry.for_spec(cache, {"bench": cfg_name, "width": width, "n": len(source), "t": time.time()}, cfg_name)
    opts = ExtractConfig(batch_size=batch, progress=False,
                          num_workers=resolve_workers(workers, gpu))
    t0 = time.perf_counter()
    run_extraction(entry, source, model, inputs, opts)
    return time.perf_counter() - t0


def _in_memory_rate(cfg_name: str, width: str, n: int, dev, batch: int) -> float:
    cfg = frontend_configs()[cfg_name]
    model = build_frontend(cfg, width, 0).to(dev)
    x = example_batch(model.input_kind, batch, dev)
    with run_context(dev, "32-true"):
        model(x)                                           # warm-up at the timed batch size
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(-(-n // batch)):
            model(x)
        sync(dev)
    return (-(-n // batch) * batch) / (time.perf_counter() - t0)


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
            batch = frontend_batch_size(cfg, width, gpu_batches)
            mem = _in_memory_rate(name, width, n, dev, batch)
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
                used = resolve_workers(workers, dev.type == "cuda")
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


def bench_decode(n: int, mm: float, dev, seeds=(0, 1, 2), root: Path | None = None,
                 workers: int | None = None) -> pd.DataFrame:
    """One decode pass vs every small front-end x seeds extracted from the decoded-audio cache, with what
    the networks alone need for those clips: measured on in-memory inputs, and at the matmul rate."""
    from elmarc.config import ExtractConfig, InputConfig
    from elmarc.datasets import build_dataset
    from elmarc.extract.audio_cache import AudioCache, CachedSource
    from elmarc.extract.feature_cache import FeatureEntry
    from elmarc.extract.loop import run_extraction

    gpu = dev.type == "cuda"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # a real folder of class folders (e.g. ESC-10's compressed OGG files) or n generated WAV files
        source = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root or synth_files(tmp / "audio", n, seconds=5.0)), "n_folds": 2})
        n = len(source)
        inputs = InputConfig()
        ac = AudioCache(tmp / "cache", source, inputs)
        t0 = time.perf_counter()
        ac.ensure(num_workers=resolve_workers(workers, gpu, decode_pass=True))
        decode = time.perf_counter() - t0
        rows.append({"step": "decode + resample every file once", "jobs": 1, "seconds": round(decode, 2)})
        cached = CachedSource(source, ac)
        total = in_memory = floor = 0.0
        jobs = 0
        for name, cfg in frontend_configs().items():
            batch = frontend_batch_size(cfg, "small", gpu)
            job_seeds = seeds if cfg.get("widths") else (0,)
            for seed in job_seeds:
                model = build_frontend(cfg, "small", seed)
                entry = FeatureEntry.for_spec(tmp / "cache", {"bench": name, "seed": seed}, name)
                opts = ExtractConfig(batch_size=batch, num_workers=resolve_workers(workers, gpu), progress=False)
                t0 = time.perf_counter()
                run_extraction(entry, cached, model, inputs, opts)
                total += time.perf_counter() - t0
                jobs += 1
            if model.input_kind != "audio":                # the MFCC baseline has no network; every seed costs the same
                in_memory += len(job_seeds) * n / _in_memory_rate(name, "small", n, dev, batch)
                macs = conv_macs(model.to("meta"), paper_example(model.input_kind))
                floor += len(job_seeds) * 2 * n * macs / (mm * 1e9)
        rows += [{"step": "all small front-ends x 3 seeds from the audio cache", "jobs": jobs, "seconds": round(total, 2)},
                 {"step": "  their networks alone, on in-memory inputs", "jobs": jobs, "seconds": round(in_memory, 2)},
                 {"step": "  their networks at the fp32 matmul rate (direct MAC count)", "jobs": jobs, "seconds": round(floor, 2)}]
        print(f"  {n} clips{'' if root else ' of 5 s'}: decode pass {decode:.1f} s; {jobs} small extractions from the cache "
              f"{total:.1f} s ({total / jobs:.2f} s each); the networks alone {in_memory:.1f} s in memory, "
              f"{floor:.1f} s at the matmul rate", flush=True)
    return pd.DataFrame(rows)


def random_cnn_like_features(n: int, dim: int, n_classes: int, seed: int = 0):
    """Non-negative, unscaled, class-structured features like averaged ReLU maps of a random CNN."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.standard_normal((n_classes, 64))
    z = centres[y] + 1.5 * rng.standard_normal((n, 64))
    proj = rng.standard_normal((64, dim)) * rng.lognormal(0, 1.0, dim)      # widely varying scales
    return np.maximum(z @ proj, 0).astype(np.float32) * 0.1, y.astype(str)


def temporal_like_features(n: int, dim: int, n_classes: int, seed: int = 0):
    """A shared, large per-clip level in every column (as the temporal front-end's averaged envelopes
    have) with a weak class signal on top: the features that make libsvm's linear SMO crawl."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    level = 20.0 * (1 + 0.1 * rng.standard_normal(n)) + 0.3 * (y % 4)
    signal = rng.standard_normal((n_classes, 16))[y] * 0.5 + rng.standard_normal((n, 16)) * 0.8
    X = level[:, None] * rng.uniform(0.95, 1.05, dim) + signal @ rng.standard_normal((16, dim)) * 0.3
    return X.astype(np.float32), np.array([f"c{k}" for k in y])


def bench_svmgrid(n: int, dim: int, folds: int) -> pd.DataFrame:
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    from elmarc.classify.protocols import best_index
    from elmarc.classify.splits import Split
    from elmarc.classify.svm import SVMGrid

    X, y = random_cnn_like_features(n, dim, 10)
    fold = np.random.default_rng(0).permutation(n) % folds      # every class in every fold
    splits = [Split(f"f{k}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), k, "outer") for k in range(folds)]
    grid = SVMGrid(n_jobs=1)
    t0 = time.perf_counter()
    scores = grid.scores(X, y, splits).accuracy
    ours = time.perf_counter() - t0
    best = best_index(scores.mean(axis=0))
    gammas = [g if g != "auto" else 1.0 / dim for g in grid.gammas]
    param_grid = [{"kernel": ["rbf"], "gamma": gammas, "C": grid.Cs}, {"kernel": ["linear"], "C": grid.Cs}]
    cv = [(s.train, s.eval) for s in splits]
    t0 = time.perf_counter()
    search = GridSearchCV(SVC(), param_grid, cv=cv, refit=False, n_jobs=1).fit(X, y)
    theirs = time.perf_counter() - t0
    theirs_best = search.cv_results_["mean_test_score"][search.best_index_]
    p = search.best_params_
    ours_setting = grid.settings[best]
    same_setting = (p["kernel"] == ours_setting["kernel"] and p["C"] == ours_setting["C"]
                    and (p["kernel"] == "linear" or np.isclose(p["gamma"], 1.0 / dim if ours_setting["gamma"] == "auto" else ours_setting["gamma"])))
    # every setting's mean accuracy, matched by parameters
    ours_by = {(s["kernel"], s["C"], None if s["kernel"] == "linear" else (1.0 / dim if s["gamma"] == "auto" else s["gamma"])): m
               for s, m in zip(grid.settings, scores.mean(axis=0))}
    diffs = [abs(ours_by[(pp["kernel"], pp["C"], pp.get("gamma"))] - m)
             for pp, m in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    row = {"n": n, "dim": dim, "folds": folds, "settings": len(grid.settings), "elmarc_s": round(ours, 2),
           "gridsearchcv_s": round(theirs, 2), "speedup": round(theirs / ours, 1),
           "elmarc_best": ours_setting, "gridsearchcv_best": p, "same_setting": bool(same_setting),
           "elmarc_best_accuracy": round(float(scores.mean(axis=0)[best]), 4),
           "gridsearchcv_best_accuracy": round(float(theirs_best), 4),
           "max_abs_diff_any_setting": float(max(diffs))}
    print(f"  {n} x {dim}, {folds} folds, 32 settings: elmarc {ours:.1f} s, GridSearchCV {theirs:.1f} s "
          f"({theirs / ours:.1f}x); best {ours_setting} vs {p}; accuracy {row['elmarc_best_accuracy']} vs "
          f"{row['gridsearchcv_best_accuracy']}; largest difference over all 32 settings {row['max_abs_diff_any_setting']:.4f}", flush=True)
    return pd.DataFrame([row])


def synthetic_task_features(tmp: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Features of every front-end at the small width on both embedded synthetic tasks (as make run extracts them)."""
    from elmarc.config import compose
    from elmarc.datasets import build_dataset
    from elmarc.extract import FeatureEntry, extract_stage, feature_spec
    from elmarc.frontends import build_frontend

    sets = []
    for task in ("rhythm", "timbre"):
        for name in frontend_configs():
            if name == "custom":
                continue
            cfg = compose([f"dataset.task={task}", f"frontend={name}", "extract.progress=false", f"cache_dir={tmp}"])
            frontend = build_frontend(cfg.frontend, "small", 0)
            source = build_dataset(cfg.dataset)
            entry = FeatureEntry.for_spec(tmp, *feature_spec(cfg, source, frontend))
            extract_stage(cfg, source, frontend, entry, tmp)
            X, clips = entry.load()
            sets.append((f"synthetic_{task}-{name}", X, clips["label"].astype(str).to_numpy()))
    return sets


def bench_svmconv(feature_dirs: list[Path], synthetic: bool = True) -> pd.DataFrame:
    """Every SVM setting on one 80/20 split, before (libsvm run to convergence) and after (the classifier
    stage's route: an SMO budget per pair, then the exact interior-point solve): seconds, and whether the
    test decisions are the same."""
    from sklearn.svm import SVC

    from elmarc.classify.ovo import fit_predict
    from elmarc.classify.splits import standardise
    from elmarc.classify.svm import SVMGrid, squared_distances
    from elmarc.extract.feature_cache import FeatureEntry

    sets = []
    for d in feature_dirs:
        X, clips = FeatureEntry(Path(d), {}).load()            # a complete entry, or an error saying what to run
        y = clips["label"].astype(str).to_numpy()
        ok = np.isfinite(X).all(axis=1)
        sets.append((d.name.rsplit("-", 1)[0], X[ok], y[ok]))
    if synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            sets += synthetic_task_features(Path(tmp))
    rows = []
    for name, X, y in sets:
        for scaling in ("as extracted", "standardised"):
            train = np.random.default_rng(0).permutation(len(y)) % 5 != 0
            Zt, Ze = X[train].astype(np.float64), X[~train].astype(np.float64)
            if scaling == "standardised":
                Zt, Ze = standardise(Zt, Ze)                   # training statistics, as the classifier stage
            D, De = squared_distances(Zt, Zt), squared_distances(Ze, Zt)
            G, Ge = Zt @ Zt.T, Ze @ Zt.T
            for st in SVMGrid().settings:
                gamma = None if st["kernel"] == "linear" else (1.0 / Zt.shape[1] if st["gamma"] == "auto" else st["gamma"])
                K, Ke = (G, Ge) if gamma is None else (np.exp(-gamma * D), np.exp(-gamma * De))
                t0 = time.perf_counter()
                before = SVC(kernel="precomputed", C=st["C"]).fit(K, y[train])
                before_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                after = fit_predict(K, y[train], Ke, st["C"])
                after_s = time.perf_counter() - t0
                rows.append({"features": name, "scaling": scaling, "n_train": int(train.sum()), "kernel": st["kernel"],
                             "gamma": st["gamma"], "C": st["C"], "before_s": round(before_s, 4),
                             "iterations": int(np.max(before.n_iter_)), "after_s": round(after_s, 4),
                             "exact_pairs": after.exact_pairs, "same_decisions": bool((after.predictions == before.predict(Ke)).all())})
            grid = pd.DataFrame(rows[-len(SVMGrid().settings):])
            print(f"  {name} ({scaling}): grid {grid.before_s.sum():.2f} s -> {grid.after_s.sum():.2f} s; slowest setting "
                  f"{grid.before_s.max():.3f} s -> {grid.after_s.max():.3f} s; exact solves {int((grid.exact_pairs > 0).sum())}; "
                  f"same decisions {int(grid.same_decisions.sum())}/{len(grid)}", flush=True)
    return pd.DataFrame(rows)


def svmconv_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per feature set and scaling: the whole grid's and the slowest setting's seconds, before and after."""
    g = df.groupby(["features", "scaling"], sort=False)
    return pd.DataFrame({
        "grid_before_s": g.before_s.sum().round(2), "grid_after_s": g.after_s.sum().round(2),
        "slowest_before_s": g.before_s.max().round(3), "slowest_after_s": g.after_s.max().round(3),
        "max_iterations_per_pair": g.iterations.max(), "settings_solved_exactly": g.exact_pairs.apply(lambda e: int((e > 0).sum())),
        "same_decisions": g.same_decisions.sum().astype(str) + "/" + g.size().astype(str),
    }).reset_index()


def bench_cachecheck(tmp: Path) -> pd.DataFrame:
    """The integrity check against reading the payload it guards, at UrbanSound8K sizes: a large-width
    feature entry (8732 x 3584 float32) and the decoded audio of the dataset (8732 x 4 s at 12 kHz)."""
    from elmarc.storage import atomic_write_bytes, manifest, npy_bytes, verify

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


def bench_fingerprint(root: Path | None, tmp: Path) -> pd.DataFrame:
    """Keying a dataset by content: hashing every file (page cache warm: the hash's own cost; a first read
    from disk adds the disk's time) against a job that finds every digest remembered."""
    from elmarc.datasets.fingerprint import content_digests

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


def bench_classify(n: int, dim: int, folds: int, timed_folds: int, n_jobs: int, max_iter: int) -> pd.DataFrame:
    """Paper protocol at UrbanSound8K scale; times `timed_folds` of the folds and projects."""
    from elmarc.classify.elm import ELMGrid
    from elmarc.classify.splits import Split
    from elmarc.classify.svm import SVMGrid

    fold = np.random.default_rng(1).permutation(n) % folds
    splits = [Split(f"f{k}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), k, "outer") for k in range(timed_folds)]
    rows = []
    cnn_like, temporal_like = random_cnn_like_features(n, dim, 10, seed=1), temporal_like_features(n, dim, 10, seed=1)
    for name, (X, y), grid in (("svm", cnn_like, SVMGrid(n_jobs=n_jobs, max_iter=max_iter)), ("elm", cnn_like, ELMGrid(seed=0)),
                               ("svm, temporal-like features", temporal_like, SVMGrid(n_jobs=n_jobs, max_iter=max_iter))):
        t0 = time.perf_counter()
        res = grid.scores(X, y, splits)
        capped = res.capped
        seconds = time.perf_counter() - t0
        per_fold = seconds / timed_folds
        # the paper sweep's classifier stage on UrbanSound8K at the large width: 9 front-ends x 3 seeds
        # x 2 feature scalings; the paper protocol fits 10 splits, nested 10 + 10 x 9 (upper bound:
        # inner splits train on 8/10 of the data)
        jobs = 9 * 3 * 2
        rows.append({"classifier": name, "n": n, "dim": dim, "timed_folds": timed_folds,
                     "seconds": round(seconds, 1), "projected_10_folds_s": round(per_fold * folds, 1),
                     "capped_fits": int(capped.sum()), "exact_fits": int(res.exact.sum()), "fits": int(capped.size), "n_jobs": n_jobs,
                     "max_iter": max_iter, "paper_sweep_paper_protocol_h": round(jobs * folds * per_fold / 3600, 1),
                     "paper_sweep_with_nested_h": round(jobs * (folds + folds * (folds - 1)) * per_fold / 3600, 1)})
        print(f"  {name}: {n} x {dim}, {timed_folds} of {folds} folds in {seconds:.1f} s -> {per_fold * folds:.0f} s "
              f"for {folds} folds; capped fits {int(capped.sum())}/{capped.size}, exact {int(res.exact.sum())}; projected US8K large-width sweep "
              f"({jobs} grids): {rows[-1]['paper_sweep_paper_protocol_h']} h with the paper protocol, "
              f"{rows[-1]['paper_sweep_with_nested_h']} h with nested too", flush=True)
    return pd.DataFrame(rows)


def host_description() -> str:
    """CPU model, ISA, threads, torch and oneDNN versions (and the GPU when there is one)."""
    from elmarc.frontends.forms import machine_id
    from elmarc.resources import cpu_info

    model = cpu_info().get("model name", "unknown CPU")
    found = re.search(r"(?:MKL-DNN|oneDNN)\s*v?([0-9][0-9.]*)", torch.__config__.show())
    onednn = found.group(1) if found else "?"
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    from elmarc.frontends import native

    kernel = (f"native kernel {Path(native.compiler()).name}, {native.vector_lanes()} fp32 lanes"
              if native.library() is not None else "no native kernel (no C++ compiler)")
    return (f"{model}, ISA {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, oneDNN {onednn}, {kernel}{gpu} (conv-form store: {machine_id()})")


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {list(SECTIONS)}")
    ap.add_argument("--widths", default="small,large")
    ap.add_argument("--frontends", default="", help="comma list (default: every config)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="per front-end timing")
    ap.add_argument("--e2e-clips", type=int, default=16)
    ap.add_argument("--decode-clips", type=int, default=64)
    ap.add_argument("--decode-root", type=Path, default=None,
                    help="folder of class folders for the decode section (e.g. an ESC-10 copy; make bench passes ESC10_ROOT)")
    ap.add_argument("--svmconv-features", default="", help="comma list of cached feature folders (cache/features/...)")
    ap.add_argument("--svmconv-no-synthetic", action="store_true", help="svmconv: skip the synthetic tasks' features")
    ap.add_argument("--classify-folds", type=int, default=1, help="folds actually timed at US8K scale")
    ap.add_argument("--classify-max-iter", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", default="32-true", choices=["32-true", "tf32", "bf16-mixed"],
                    help="extract section: 32-true is what extraction uses; the others are options, timed apart")
    ap.add_argument("--gpu-batch-only", action="store_true", help="extract section on a GPU: time gpu_batch_size only")
    ap.add_argument("--compile", action="store_true", help="extract section: torch.compile each front-end")
    ap.add_argument("--conv-forms", default="plain,fused,auto", help="extract section: the extract.conv_forms modes to time")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers in e2e/decode (default: as a sweep does, see extract.default_workers)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time algorithms per shape (GPU)")
    ap.add_argument("--out", type=Path, default=Path("bench"))
    args = ap.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    threads = torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {threads} threads"
    md = ["# elmarc benchmark", "", f"Device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}", "",
          f"Host: {host_description()}", ""]
    print(f"host: {host_description()}", flush=True)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
        md += ["cuDNN benchmark mode on (algorithm chosen by timing per shape)", ""]
    mm = matmul_rate(dev)
    print(f"device {name}: fp32 matmul {mm:.1f} GFLOP/s", flush=True)
    md += [f"fp32 matmul rate measured in this run: **{mm:.1f} GFLOP/s**", ""]
    if "extract" in sections:
        print("extract: every front-end on 29-s inputs", flush=True)
        df = bench_extract(args.widths.split(","), set(filter(None, args.frontends.split(","))), args.min_seconds, mm, dev,
                           args.precision, args.gpu_batch_only, args.compile, tuple(args.conv_forms.split(",")))
        df.to_csv(args.out / "extract.csv", index=False)
        md += ["## Front-ends on 29-s inputs (in memory)", "", markdown_table(df), ""]
    if "ceiling" in sections:
        print("ceiling: matrix products at each convolution's im2col shape", flush=True)
        names = set(filter(None, args.frontends.split(",")))
        df = bench_ceiling(args.widths.split(","), names, mm, dev)
        df.to_csv(args.out / "ceiling.csv", index=False)
        md += ["## GEMM ceiling: torch.mm at each convolution's im2col shape, one product with a fresh output and "
               "blocks of 1024 rows into a reused buffer (what a form built on matrix products can reach here)", "",
               markdown_table(df), ""]
        if dev.type == "cpu":                         # the patch products are a CPU form
            print("ceiling: the layers max-pooled over frequency, products / + running maximum / as extracted", flush=True)
            freq = bench_max_freq(args.widths.split(","), names, mm, dev)
            freq.to_csv(args.out / "ceiling_max_freq.csv", index=False)
            md += ["## Layers max-pooled over frequency: their products alone, with the running maximum, and as "
                   "extracted (fractions of matmul)", "", markdown_table(freq), ""]
    if "e2e" in sections:
        print("e2e: extraction from files vs in memory", flush=True)
        df = bench_e2e(args.e2e_clips, dev, [("vgg", "large"), ("7x86", "large"), ("vgg", "small")], args.workers,
                       gpu_batches=dev.type == "cuda")
        df.to_csv(args.out / "e2e.csv", index=False)
        md += ["## End to end: from 44.1 kHz WAV files (decode + resample + model inputs, as extraction makes them) "
               "and from the decoded-audio cache", "", markdown_table(df), ""]
    if "decode" in sections:
        print("decode: one decode pass vs all small front-ends x 3 seeds", flush=True)
        df = bench_decode(args.decode_clips, mm, dev, root=args.decode_root, workers=args.workers)
        df.to_csv(args.out / "decode.csv", index=False)
        md += ["## Decode once", "", markdown_table(df), ""]
    if "svmgrid" in sections:
        print("svmgrid: 32-setting grid vs GridSearchCV", flush=True)
        df = bench_svmgrid(1000, 3584, 5)
        df.to_csv(args.out / "svmgrid.csv", index=False)
        md += ["## SVM grid vs scikit-learn GridSearchCV (1000 x 3584, 5 folds, 32 settings)", "", markdown_table(df), ""]
    if "svmconv" in sections:
        print("svmconv: every SVM setting before (libsvm to convergence) and after (SMO budget + exact solve)", flush=True)
        dirs = [Path(d) for d in args.svmconv_features.split(",") if d]
        df = bench_svmconv(dirs, synthetic=not args.svmconv_no_synthetic)
        df.to_csv(args.out / "svmconv.csv", index=False)
        md += ["## The 32-setting SVM grid on one 80/20 split, before and after (seconds)", "",
               markdown_table(svmconv_summary(df)), ""]
    if "cachecheck" in sections:
        print("cachecheck: the integrity check against reading the payload", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            df = bench_cachecheck(Path(tmp))
        df.to_csv(args.out / "cachecheck.csv", index=False)
        md += ["## Cache integrity check against reading (warm page cache: the check's worst case)", "", markdown_table(df), ""]
    if "fingerprint" in sections:
        print("fingerprint: keying a dataset by its content", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            df = bench_fingerprint(args.decode_root, Path(tmp))
        df.to_csv(args.out / "fingerprint.csv", index=False)
        md += ["## Content keys: every file hashed against digests remembered (per job)", "", markdown_table(df), ""]
    if "classify" in sections:
        print("classify: UrbanSound8K scale", flush=True)
        df = bench_classify(8732, 3584, 10, args.classify_folds, n_jobs=max(1, os.cpu_count() or 1),
                            max_iter=args.classify_max_iter)
        df.to_csv(args.out / "classify.csv", index=False)
        md += ["## Classifier stage at UrbanSound8K scale (8732 x 3584, paper protocol)", "", markdown_table(df), ""]
    (args.out / "bench.md").write_text("\n".join(md) + "\n")
    print(f"\nwritten to {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
