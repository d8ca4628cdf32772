"""What every benchmark shares: the device, the matmul rate it is measured against, memory, the host line, tables."""
from __future__ import annotations

import contextlib
import re
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from elmarc.config import ExtractConfig
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.extract.loop import float32_math
from elmarc.extract.settings import Extraction
from elmarc.frontends import FrontendFactory, build_frontend
from elmarc.frontends.speed import native
from elmarc.frontends.speed.store import machine_id
from elmarc.resources import cpu_info, job_cores

US8K_FILES, US8K_BYTES = 8732, 6.6e9            # UrbanSound8K as published: 8732 WAV files, about 6.6 GB


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb(dev) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None


def run_context(dev, precision: str):
    """fp32 (TF32 off, as extraction runs it), TF32, or bf16 autocast: the precision a row was timed in."""
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
    gpu = int(cfg.gpu_batch_size[width])
    return [gpu] if gpu_batch_only else sorted({base, gpu})    # GPU: the CPU-sized batch and the GPU default


def example_batch(kind: str, batch: int, dev) -> torch.Tensor:
    """Random model inputs of 29-s clips at realistic scales: waveform or log-mel (dB)."""
    return (torch.randn(batch, 350000, device=dev) * 0.1 if kind == "waveform"
            else torch.randn(batch, 1376, 96, device=dev) * 10 - 40)


def host_description() -> str:
    """CPU model, ISA, threads, torch and oneDNN versions (and the GPU when there is one)."""
    model = cpu_info().get("model name", "unknown CPU")
    found = re.search(r"(?:MKL-DNN|oneDNN)\s*v?([0-9][0-9.]*)", torch.__config__.show())
    onednn = found.group(1) if found else "?"
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    kernel = (f"native kernel {Path(native.compiler()).name}, {native.vector_lanes()} fp32 lanes"
              if native.NativeKernels().library() is not None else "no native kernel (no C++ compiler)")
    return (f"{model}, ISA {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, oneDNN {onednn}, {kernel}{gpu} (conv-form store: {machine_id()})")


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(out)


def synth_files(folder: Path, n: int, seconds: float = 10.0, rate: int = 44100) -> Path:
    """n WAV files in two class folders (real decode + resample work)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / f"class{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        audio = 0.3 * np.sin(2 * np.pi * (200 + 100 * (i % 2)) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(d / f"clip{i:04d}.wav", audio.astype(np.float32), rate)
    return folder


def in_memory_rate(cfg_name: str, width: str, n: int, dev, batch: int) -> float:
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


def extraction_for(frontend_cfg, width: str, workers: int | None, batch: int) -> Extraction:
    """The extraction settings a sweep's job would use for this front-end (extract.* defaults), at this batch."""
    factory = FrontendFactory.of(frontend_cfg, "small" if width == "any" else width, 0, {})
    opts = ExtractConfig(batch_size=batch, num_workers=workers, progress=False)
    return Extraction.resolve(opts, factory, job_cores(), None)


def table_lines(out: Path, name: str, title: str, df: pd.DataFrame) -> list[str]:
    """Write a section's table to out/<name>.csv; its lines in bench.md."""
    df.to_csv(out / f"{name}.csv", index=False)
    return [f"## {title}", "", markdown_table(df), ""]
