"""What the predict loop reads: each clip's model input, in fixed batches, made where it pays.

Batches are fixed ranges of clip indices, so an interrupted run resumes with exactly
the batches it had not written, and its features equal an uninterrupted run's.
"""
from __future__ import annotations

import multiprocessing

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..audio import logmel_input, mel_filterbank, waveform_input
from ..config import InputConfig
from ..datasets.base import ClipSource


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


def uses_gpu(accelerator: str) -> bool:
    """Whether Lightning will run on a CUDA GPU for this extract.accelerator."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def default_workers(gpu: bool, cores: int, decode_pass: bool = False) -> int:
    """DataLoader workers when extract.num_workers is null, for a job given `cores` cores.

    With a GPU: up to 8 (the model is fast; decoding and log-mel are the work). On a CPU the
    decode-once pass, with nothing else running, takes one worker per core, and extraction none:
    a worker beside the model competes for the same cores and passes each input through shared
    memory, which costs more than it overlaps (make bench, section e2e).
    """
    if gpu:
        return min(8, max(1, cores - 1))
    return cores if decode_pass else 0


def worker_context(num_workers: int):
    """The start method of DataLoader workers: fork where the platform has it, named explicitly, since a job
    run inside another pool's worker (joblib's loky under the local_parallel launcher) inherits that pool's
    default context, whose processes DataLoader cannot start."""
    if num_workers <= 0:
        return None

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


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
