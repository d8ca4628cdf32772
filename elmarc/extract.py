"""Extraction stage: a Lightning predict loop that streams each batch's features into the cache.

Batches are fixed ranges of clip indices, so an interrupted run resumes with exactly
the batches it had not written, and its features equal an uninterrupted run's.
Audio is decoded and resampled in DataLoader workers in parallel with the CNN when it runs on a GPU,
in the main process between batches on a CPU (see default_workers).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .audio import InputConfig, logmel_input, mel_filterbank, waveform_input
from .cache import FeatureEntry
from .datasets.base import ClipSource
from .frontends.base import Frontend

log = logging.getLogger(__name__)


class ClipInputs(Dataset):
    """Model inputs of the clips of ``source``: item -> (clip index, input tensor or None, skip reason)."""

    def __init__(self, source: ClipSource, kind: str, cfg: InputConfig, on_error: str = "skip"):
        self.source, self.kind, self.cfg, self.on_error = source, kind, cfg, on_error
        # built once here (DataLoader workers inherit it), not again in each worker of every job
        self._fbank = mel_filterbank(cfg) if kind == "logmel" else None

    def __len__(self) -> int:
        return len(self.source)

    def make_input(self, audio: np.ndarray) -> torch.Tensor:
        if self.kind == "waveform":
            return waveform_input(audio, self.cfg)
        if self.kind == "logmel":
            return logmel_input(audio, self.cfg, self._fbank)
        if self.kind == "audio":
            return torch.from_numpy(audio)
        raise ValueError(f"unknown input kind {self.kind!r}")

    def __getitem__(self, i: int):
        try:
            return int(i), self.make_input(self.source.load(int(i), self.cfg)), ""
        except Exception as exc:  # one bad clip must not kill a sweep: record it, go on
            if self.on_error == "raise":
                raise
            return int(i), None, self.source.failure_reason(int(i), exc)


def collate(items):
    """Split a batch into good inputs and skipped clips; stack fixed-size inputs."""
    ok = [(i, x) for i, x, r in items if r == ""]
    skipped = [(i, r) for i, x, r in items if r != ""]
    index = torch.tensor([i for i, _ in ok], dtype=torch.long)
    xs = [x for _, x in ok]
    # fixed-size inputs stack; whole clips of different lengths (mfcc) stay a list
    inputs = torch.stack(xs) if xs and len({tuple(x.shape) for x in xs}) == 1 else xs
    return {"index": index, "inputs": inputs, "skipped": skipped}


class FixedBatches(Sampler):
    """A batch sampler over precomputed index lists (Lightning needs a Sampler object, not a list)."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _CompiledForward:
    """torch.compile'd forward that falls back to eager once if compiling fails (e.g. no C++ compiler)."""

    def __init__(self, forward):
        self.eager, self.fast, self.failed = forward, torch.compile(forward), False

    def __call__(self, x):
        if not self.failed:
            try:
                return self.fast(x)
            except Exception as exc:  # a compiler problem must not cost the extraction
                log.warning("torch.compile failed (%s: %s); running eager", type(exc).__name__, str(exc)[:200])
                self.failed = True
        return self.eager(x)


def compiled(frontend: Frontend) -> Frontend:
    """The front-end with its forward compiled by torch.compile (same values up to float rounding).

    Measured (make bench, large width, with the fused forms of frontends/ops.py): CPU, 2 threads:
    7x96 +30%; sample_level, vgg, frame_level(_many), 7x86 and the timbral family gain nothing or lose;
    H100: 7x96 +50%, timbral +31%, vgg +1%. Hence a per-front-end flag (``compile`` in
    conf/frontend/*.yaml, per device where they disagree). Whole-clip MFCC inputs vary in length
    and stay eager.
    """
    if frontend.input_kind != "audio":
        frontend.forward = _CompiledForward(frontend.forward)
    return frontend


def uses_gpu(accelerator: str) -> bool:
    """Whether Lightning will run on a CUDA GPU for this extract.accelerator."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def default_workers(gpu: bool, decode_pass: bool = False) -> int:
    """DataLoader workers when extract.num_workers is null.

    With a GPU: up to 8 (the model is fast; decoding and log-mel are the work). On a CPU the
    decode-once pass, with nothing else running, takes one worker per core (ESC-10: 2.3 -> 1.4 s on
    2 cores), and extraction none: the main process decodes and makes the inputs between batches.
    A worker beside the 2-thread model competes for the same cores and passes each 528 KB input
    through shared memory, which cost more than it overlapped (vgg small from WAV files: 62-63% of
    the in-memory rate with none, 45-57% with one; from the audio cache 71-82% vs 59-66%; 7x86
    large: the same either way).
    """
    cores = os.cpu_count() or 2
    if gpu:
        return min(8, max(1, cores - 1))
    return cores if decode_pass else 0


def resolve_workers(requested: int | None, gpu: bool, decode_pass: bool = False) -> int:
    """extract.num_workers as given, or default_workers when it is null."""
    return default_workers(gpu, decode_pass) if requested is None else int(requested)


def frontend_batch_size(frontend_cfg, width: str, gpu: bool) -> int:
    """The front-end config's batch size for the width: gpu_batch_size on a GPU, else batch_size."""
    sizes = (frontend_cfg.get("gpu_batch_size") if gpu else None) or frontend_cfg.batch_size
    return int(sizes[width])


def single_threaded(_worker_id: int) -> None:
    """DataLoader workers make one clip's input at a time: torch's own thread pool in each of them
    would put workers x cores threads on the cores."""
    torch.set_num_threads(1)


def fixed_batches(n: int, batch_size: int, done: set[int]) -> list[list[int]]:
    """Fixed index ranges [k*bs, (k+1)*bs), minus clips already in the cache."""
    batches = []
    for start in range(0, n, batch_size):
        todo = [i for i in range(start, min(start + batch_size, n)) if i not in done]
        if todo:
            batches.append(todo)
    return batches


def _lightning():
    import warnings

    import pytorch_lightning as pl

    # our batch sampler returns every index by construction; Lightning's tips are noise in a sweep log
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")   # extract.num_workers says
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
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
            # lightning issue 19398: CPU memory can creep in long predicts. A full collection costs
            # ~0.25 s with torch loaded (every 16 batches it was 37% of a small ESC-10 job), so
            # collect by the clock instead: at most 0.5% of a long run.
            if time.monotonic() - self.last_gc >= self.gc_every_s:
                gc.collect()
                self.last_gc = time.monotonic()

    return pl, FrontendModule, ShardWriter


@dataclass
class ExtractOptions:
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32-true"
    batch_size: int = 8
    num_workers: int = 1
    progress: bool = True
    on_error: str = "skip"          # 'raise': any bad clip stops the run
    tf32: bool = False              # GPU: let cuDNN/cuBLAS round fp32 convolutions to TF32 (faster, other numbers)
    compile: bool = False           # torch.compile the front-end (start-up seconds; pays on long extractions)


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


def run_extraction(entry: FeatureEntry, source: ClipSource, frontend: Frontend, input_cfg: InputConfig,
                   opts: ExtractOptions) -> dict:
    """Fill ``entry`` with the features of every clip of ``source``; resumes from written shards."""
    with entry.lock():                       # a concurrent job extracting the same key waits here
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
            data = ClipInputs(source, frontend.input_kind, input_cfg, opts.on_error)
            loader = DataLoader(data, batch_sampler=FixedBatches(batches), collate_fn=collate,
                                num_workers=opts.num_workers, persistent_workers=False,
                                prefetch_factor=2 if opts.num_workers > 0 else None,
                                worker_init_fn=single_threaded, pin_memory=uses_gpu(opts.accelerator))
            writer = ShardWriter(entry)
            trainer = pl.Trainer(
                accelerator=opts.accelerator, devices=opts.devices, precision=opts.precision,
                logger=False, enable_checkpointing=False, enable_model_summary=False,
                enable_progress_bar=opts.progress, callbacks=[writer], inference_mode=True,
            )
            with float32_math(opts.tf32):
                module = FrontendModule(compiled(frontend) if opts.compile else frontend)
                trainer.predict(module, dataloaders=loader, return_predictions=False)
        seconds = time.perf_counter() - t0
        entry.finalize(source.clips, frontend.feature_dim,
                       {"extract_seconds": round(seconds, 3), "clips_per_second": round(n_todo / max(seconds, 1e-9), 3)})
        info = entry.info()
        log.info("extracted %d clips in %.1f s (%d skipped) -> %s", n_todo, seconds, info["n_skipped"], entry.root)
        return {"cached": False, "extracted": n_todo, "seconds": seconds}
