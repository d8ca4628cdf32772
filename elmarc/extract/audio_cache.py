"""Decode once: the 12 kHz audio of a dataset, cached in chunks and shared by every job.

A sweep over front-ends, widths and seeds reads, decodes and resamples each file once.
Layout (``<cache_dir>/audio/<dataset>-<hash>/``):
    spec.json               dataset identity + sample rate + resampler (the key is its hash)
    c<first>-<last>.npy     per chunk of clips: their audio, concatenated float32 (memory-mapped on read)
    c<first>-<last>.idx.npz the chunk's clip indices, lengths and skip reasons, written after the .npy
    done.json               written last, when every clip is in a chunk: with the size and checksum (XXH3-128) of
                            every chunk file, checked before a job uses the cache
Chunks are written atomically, so a killed decode pass resumes where it stopped; a clip
that cannot be decoded is stored with its reason (length 0) and skipped downstream. A chunk
that fails its check is moved aside (damaged-<time>/) and decoded again.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..audio import AudioError
from ..config import InputConfig
from ..datasets.base import ClipSource
from ..entry import CacheEntry
from ..storage import move_aside, npy_bytes, npz_bytes
from .inputs import single_threaded, worker_context

log = logging.getLogger(__name__)
CHUNK_RE = re.compile(r"^c(\d+)-(\d+)\.idx\.npz$")
FORMAT = 2                # what an audio entry holds and how it is keyed; older entries are decoded again


class _DecodeChunks(Dataset):
    """item k -> (first index, [audio or None], [reason]) for chunk k."""

    def __init__(self, source: ClipSource, cfg: InputConfig, chunks: list[list[int]], on_error: str):
        self.source, self.cfg, self.chunks, self.on_error = source, cfg, chunks, on_error

    def __len__(self):
        return len(self.chunks)

    def __getitem__(self, k):
        audios, reasons = [], []
        for i in self.chunks[k]:
            try:
                audios.append(self.source.load(i, self.cfg))
                reasons.append("")
            except Exception as exc:
                if self.on_error == "raise":
                    raise
                audios.append(None)
                reasons.append(self.source.failure_reason(i, exc))
        return self.chunks[k], audios, reasons


class AudioCache(CacheEntry):
    """The decoded audio of one dataset at one rate (elmarc.entry: lock, marker, check, set aside)."""

    def __init__(self, cache_dir: str | Path, source: ClipSource, cfg: InputConfig, chunk_size: int = 32):
        spec = {"dataset": source.identity(), "sample_rate": cfg.sample_rate, "resampler": str(cfg.resampler), "format": FORMAT}
        super().__init__(self.folder_for(Path(cache_dir) / "audio", source.name, spec), spec)
        self.source, self.cfg, self.chunk_size = source, cfg, chunk_size
        self._index: dict[int, tuple[Path, int, int, str]] | None = None

    def _chunk_files(self) -> list[Path]:
        return sorted(p for p in self.root.glob("c*.idx.npz") if CHUNK_RE.match(p.name)) if self.root.is_dir() else []

    @staticmethod
    def _pair(idx_file: Path) -> list[Path]:
        return [idx_file, idx_file.with_name(idx_file.name.replace(".idx.npz", ".npy"))]

    def companions(self, name: str) -> list[str]:
        stem = name.split(".")[0]
        return [f"{stem}.idx.npz", f"{stem}.npy"]       # the index marks its audio complete: both go, both come back

    def _intact(self, idx_file: Path) -> bool:
        """A chunk written before the cache finished: its index reads back whole and its audio has the declared length."""
        try:
            with np.load(idx_file) as z:
                total = int(z["lengths"].sum())
                n = len(z["index"])
            audio = np.load(self._pair(idx_file)[1], mmap_mode="r")
            return audio.shape == (total,) and n > 0
        except Exception:
            return False

    def _set_aside_damaged(self) -> None:
        """Damaged chunks (both files) and, for a finished cache that fails its check, its marker, moved aside."""
        if self.set_aside_if_damaged():
            return
        damaged = [p for p in self._chunk_files() if not self._intact(p)] if not self.is_complete() else []
        if damaged:
            aside = move_aside([f for d in damaged for f in self._pair(d)], self.root)
            log.warning("audio cache %s: %d partly written or damaged chunk(s) moved to %s and decoded again",
                        self.root.name, len(damaged), aside)

    def ensure(self, num_workers: int = 1, on_error: str = "skip") -> dict:
        """Decode every clip not yet cached (or whose chunk is damaged); concurrent callers wait on a lock."""
        with self.lock():
            self._set_aside_damaged()
            if self.is_complete():
                return {"cached": True, "decoded": 0}
            self.begin()
            done = set()
            for p in self._chunk_files():
                a, b = map(int, CHUNK_RE.match(p.name).groups())
                done.add(a)
            n = len(self.source)
            chunks = [list(range(s, min(s + self.chunk_size, n))) for s in range(0, n, self.chunk_size) if s not in done]
            t0 = time.perf_counter()
            if chunks:
                if done:
                    log.info("audio cache %s: resuming, %d of %d chunks to decode", self.root.name, len(chunks), -(-n // self.chunk_size))
                loader = DataLoader(_DecodeChunks(self.source, self.cfg, chunks, on_error), batch_size=None,
                                    shuffle=False, num_workers=num_workers, worker_init_fn=single_threaded,
                                    multiprocessing_context=worker_context(num_workers))
                for idx, audios, reasons in loader:
                    lengths = np.array([0 if a is None else len(a) for a in audios], dtype=np.int64)
                    flat = np.concatenate([a for a in audios if a is not None]) if lengths.sum() else np.zeros(0, np.float32)
                    stem = f"c{idx[0]:07d}-{idx[-1]:07d}"
                    self.write_bytes(f"{stem}.npy", npy_bytes(flat.astype(np.float32)))
                    self.write_bytes(f"{stem}.idx.npz",     # last: marks the chunk complete
                                     npz_bytes(index=np.array(idx), lengths=lengths, reasons=np.array(reasons, dtype=str)))
            seconds = time.perf_counter() - t0
            self.finish(sorted(f.name for p in self._chunk_files() for f in self._pair(p)),
                        n_clips=len(self.source), decode_seconds=round(seconds, 3))
            log.info("decoded and resampled %d clips in %.1f s -> %s", sum(map(len, chunks)), seconds, self.root)
            return {"cached": False, "decoded": sum(map(len, chunks)), "seconds": seconds}

    def _build_index(self) -> None:
        index = {}
        for p in self._chunk_files():
            with np.load(p) as z:
                offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
                for j, i in enumerate(z["index"]):
                    audio = p.with_name(p.name.replace(".idx.npz", ".npy"))
                    index[int(i)] = (audio, int(offsets[j]), int(offsets[j + 1]), str(z["reasons"][j]))
        self._index = index

    def load(self, i: int) -> np.ndarray:
        if self._index is None:
            self._build_index()
        path, start, end, reason = self._index[int(i)]
        if reason:
            raise AudioError(reason)
        return np.array(np.load(path, mmap_mode="r")[start:end], dtype=np.float32)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_index"] = None                       # rebuilt lazily in each DataLoader worker
        return state


class CachedSource(ClipSource):
    """The same clips, with audio read from the decoded-audio cache instead of the files."""

    def __init__(self, source: ClipSource, audio_cache: AudioCache):
        super().__init__(source.name, source.clips, source.scheme, source.root, source.extra_identity, source.protocol)
        self.audio_cache = audio_cache
        self._identity = source.identity()

    def load(self, index: int, cfg: InputConfig) -> np.ndarray:
        if cfg.sample_rate != self.audio_cache.cfg.sample_rate or cfg.resampler != self.audio_cache.cfg.resampler:
            raise ValueError("input config differs from the audio cache's")
        return self.audio_cache.load(index)


def decoded_source(source: ClipSource, inputs: InputConfig, extraction, cache_dir: Path) -> tuple[ClipSource, dict]:
    """The clips read from the decode-once audio cache (decoding what it lacks first), and what the decode pass
    did; the source itself where extract.audio_cache is off. extraction: the job's Extraction (workers, on_error)."""
    if not extraction.audio_cache:
        return source, {}
    audio = AudioCache(cache_dir, source, inputs)
    decode = audio.ensure(num_workers=extraction.decode_workers, on_error=extraction.on_error)
    return CachedSource(source, audio), decode
