"""The Lightning predict loop that streams each batch's features into the feature cache.

Audio is decoded and resampled in DataLoader workers in parallel with the CNN when it runs on a GPU,
in the main process between batches on a CPU (see inputs.default_workers).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ExtractConfig, InputConfig
from ..datasets.base import ClipSource
from ..frontends import forms
from ..frontends.base import Frontend
from .feature_cache import FeatureEntry
from .inputs import ClipInputs, FixedBatches, collate, fixed_batches, single_threaded, uses_gpu, worker_context

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


def quiet_lightning() -> None:
    """Lightning's tips (workers, samplers, loggers) are noise in a sweep log; our settings say why."""
    import warnings

    # our batch sampler returns every index by construction
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")   # extract.num_workers says
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


def _lightning():
    import pytorch_lightning as pl

    quiet_lightning()
    from pytorch_lightning.callbacks import BasePredictionWriter

    class FrontendModule(pl.LightningModule):
        def __init__(self, frontend: Frontend):
            super().__init__()
            self.frontend = frontend

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            inputs = batch["inputs"]
            if len(batch["index"]) == 0:
                feats = np.zeros((0, self.frontend.feature_dim), np.float32)
            else:
                feats = self.frontend(inputs).float().cpu().numpy()
            return {"index": batch["index"].numpy(), "features": feats, "skipped": batch["skipped"]}

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            inputs = batch["inputs"]
            if isinstance(inputs, torch.Tensor):
                batch["inputs"] = inputs.to(device, non_blocking=True)
            else:
                batch["inputs"] = [x.to(device) for x in inputs]
            return batch

    class ShardWriter(BasePredictionWriter):
        """Writes every batch's features to the cache as soon as the batch is done."""

        def __init__(self, entry: FeatureEntry, gc_every_s: float = 60.0):
            super().__init__(write_interval="batch")
            self.entry, self.n_written, self.skipped = entry, 0, []
            self.gc_every_s, self.last_gc = gc_every_s, time.monotonic()

        def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
            skipped = prediction["skipped"]
            self.entry.write_shard(prediction["index"], prediction["features"],
                                   np.array([i for i, _ in skipped], dtype=np.int64), [r for _, r in skipped])
            for i, r in skipped:
                log.warning("skipped clip %d: %s", i, r)
            self.skipped += skipped
            self.n_written += len(prediction["index"]) + len(skipped)
            # lightning issue 19398: CPU memory can creep in long predicts; a full collection is
            # costly with torch loaded, so collect by the clock rather than every few batches
            if time.monotonic() - self.last_gc >= self.gc_every_s:
                gc.collect()
                self.last_gc = time.monotonic()

    return pl, FrontendModule, ShardWriter


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


def host(accelerator: str) -> str:
    """The machine that computed features, as entries and reports state it: device, ISA, torch (not the thread
    count, which changes no value)."""
    from ..resources import cpu_info

    if uses_gpu(accelerator):
        device = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        device = f"{cpu_info().get('model name', 'CPU')}, {torch.backends.cpu.get_cpu_capability()}"
    return f"{device}, torch {torch.__version__}"


def run_extraction(entry: FeatureEntry, source: ClipSource, frontend: Frontend, input_cfg: InputConfig,
                   opts: ExtractConfig, compile: bool = False, plan: dict | None = None) -> dict:
    """Fill ``entry`` with the features of every clip of ``source``; resumes from written shards.

    opts: with batch_size and num_workers resolved (not null). plan: each layer's form (measured forms,
    recorded in the entry's key); None: the mode's forms (the rule's or the plain ones).
    """
    with entry.lock():                       # a concurrent job extracting the same key waits here
        entry.set_aside_if_damaged()
        if entry.is_complete():
            log.info("features cached at %s: nothing to extract", entry.root)
            return {"cached": True, "extracted": 0, "seconds": 0.0}
        entry.begin()
        done = entry.covered()
        batches = fixed_batches(len(source), opts.batch_size, done)
        if done:
            log.info("resuming %s: %d of %d clips already in the cache", entry.key, len(done), len(source))
        t0 = time.perf_counter()
        n_todo = sum(len(b) for b in batches)
        if batches:
            pl, FrontendModule, ShardWriter = _lightning()
            data = ClipInputs(source, frontend.input_kind, input_cfg, str(opts.on_error))
            loader = DataLoader(data, batch_sampler=FixedBatches(batches), collate_fn=collate,
                                num_workers=opts.num_workers, persistent_workers=False,
                                prefetch_factor=2 if opts.num_workers > 0 else None,
                                worker_init_fn=single_threaded, multiprocessing_context=worker_context(opts.num_workers),
                                pin_memory=uses_gpu(str(opts.accelerator)))
            writer = ShardWriter(entry)
            trainer = pl.Trainer(
                accelerator=str(opts.accelerator), devices=opts.devices, precision=opts.precision,
                logger=False, enable_checkpointing=False, enable_model_summary=False,
                enable_progress_bar=opts.progress, callbacks=[writer], inference_mode=True,
            )
            frozen = forms.frozen(plan) if plan is not None else contextlib.nullcontext()
            with float32_math(opts.tf32), frozen:
                module = FrontendModule(compiled(frontend) if compile else frontend)
                trainer.predict(module, dataloaders=loader, return_predictions=False)
        seconds = time.perf_counter() - t0
        entry.finalize(source.clips, frontend.feature_dim,
                       {"extract_seconds": round(seconds, 3), "clips_per_second": round(n_todo / max(seconds, 1e-9), 3),
                        "host": host(str(opts.accelerator))})
        info = entry.info()
        log.info("extracted %d clips in %.1f s (%d skipped) -> %s", n_todo, seconds, info["n_skipped"], entry.root)
        return {"cached": False, "extracted": n_todo, "seconds": seconds}
