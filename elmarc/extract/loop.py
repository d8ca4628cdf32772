"""The predict loop: every clip's features into the feature cache, in fixed batches, resumable (Lightning's predict).

Audio is decoded and resampled in DataLoader workers in parallel with the CNN when it runs on a GPU,
in the main process between batches on a CPU (see inputs.default_workers).
"""
from __future__ import annotations

import contextlib
import logging
import time

import torch
from torch.utils.data import DataLoader

from ..config import InputConfig
from ..datasets import ClipSource
from ..frontends import Frontend
from ..resources import cpu_info
from .feature_cache import FeatureEntry
from .inputs import ClipInputs, FixedBatches, collate, fixed_batches, single_threaded, worker_context
from .settings import Extraction

log = logging.getLogger(__name__)


class _CompiledForward:
    """torch.compile'd forward that falls back to eager once if compiling fails (e.g. no C++ compiler)."""

    def __init__(self, forward):
        self.eager, self.fast, self.failed, self.calls = forward, torch.compile(forward), False, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == 1:             # eager first: layers choose their forms by measuring, then the graph uses them
            return self.eager(x)
        if not self.failed:
            try:
                return self.fast(x)
            except Exception as exc:  # a compiler problem must not cost the extraction
                log.warning("torch.compile failed (%s: %s); running eager", type(exc).__name__, str(exc)[:200])
                self.failed = True
        return self.eager(x)


def compiled(frontend: Frontend) -> Frontend:
    """The front-end with its forward compiled by torch.compile (same values up to float rounding).

    It pays for some front-ends and devices and not others (make bench), hence the per-device
    ``compile`` flag of each front-end config. Whole-clip MFCC inputs vary in length and stay eager.
    """
    if frontend.input_kind != "audio":
        frontend.forward = _CompiledForward(frontend.forward)
    return frontend


@contextlib.contextmanager
def float32_math(tf32: bool):
    """Full fp32 arithmetic on NVIDIA GPUs unless TF32 is asked for.

    PyTorch lets cuDNN run fp32 convolutions in TF32 (10-bit mantissa) by default on Ampere and
    newer GPUs: features would then differ from the CPU's by more than fp32 rounding, and
    a GPU cache entry would not be comparable with a CPU one. The flags are restored afterwards.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def host(gpu: bool) -> str:
    """The machine that computed features, as entries and reports state it: device, ISA, torch (not the thread
    count, which changes no value)."""
    if gpu:
        device = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        device = f"{cpu_info().get('model name', 'CPU')}, {torch.backends.cpu.get_cpu_capability()}"
    return f"{device}, torch {torch.__version__}"


def run_extraction(entry: FeatureEntry, source: ClipSource, frontend: Frontend, input_cfg: InputConfig,
                   extraction: Extraction, plan: dict | None = None) -> dict:
    """Fill ``entry`` with the features of every clip of ``source``; resumes from written shards.

    plan: each layer's form (measured forms, recorded in the entry's key); None: the policy's forms (the
    rule's or the plain ones).
    """
    with entry.lock():                       # a concurrent job extracting the same key waits here
        entry.set_aside_if_damaged()
        if entry.is_complete():
            log.info("features cached at %s: nothing to extract", entry.root)
            return {"cached": True, "extracted": 0, "seconds": 0.0}
        entry.begin()
        done = entry.covered()
        batches = fixed_batches(len(source), extraction.batch_size, done)
        if done:
            log.info("resuming %s: %d of %d clips already in the cache", entry.key, len(done), len(source))
        t0 = time.perf_counter()
        n_todo = sum(len(b) for b in batches)
        if batches:
            import pytorch_lightning as pl  # seconds to import: only a job with clips to extract pays it

            from .predict import FrontendModule, ShardWriter, quiet_lightning

            quiet_lightning()
            data = ClipInputs(source, frontend.input_kind, input_cfg, extraction.on_error)
            loader = DataLoader(data, batch_sampler=FixedBatches(batches), collate_fn=collate,
                                num_workers=extraction.num_workers, persistent_workers=False,
                                prefetch_factor=2 if extraction.num_workers > 0 else None,
                                worker_init_fn=single_threaded, multiprocessing_context=worker_context(extraction.num_workers),
                                pin_memory=extraction.gpu)
            writer = ShardWriter(entry)
            trainer = pl.Trainer(
                accelerator=str(extraction.accelerator), devices=extraction.devices, precision=extraction.precision,
                logger=False, enable_checkpointing=False, enable_model_summary=False,
                enable_progress_bar=extraction.progress, callbacks=[writer], inference_mode=True,
            )
            speed = extraction.speed
            with float32_math(extraction.tf32), speed.frozen(plan) if plan is not None else speed.active():
                module = FrontendModule(compiled(frontend) if extraction.compile else frontend)
                trainer.predict(module, dataloaders=loader, return_predictions=False)
        seconds = time.perf_counter() - t0
        entry.finalize(source.clips, frontend.feature_dim,
                       {"extract_seconds": round(seconds, 3), "clips_per_second": round(n_todo / max(seconds, 1e-9), 3),
                        "host": host(extraction.gpu)})
        info = entry.info()
        log.info("extracted %d clips in %.1f s (%d skipped) -> %s", n_todo, seconds, info["n_skipped"], entry.root)
        return {"cached": False, "extracted": n_todo, "seconds": seconds}
