"""The embedded dataset: clips generated from a seed, bit-for-bit reproducible, no files needed.

Two tasks, each with per-clip randomness (pitch, phase, onsets, loudness, noise):
  rhythm  classes differ only in tempo; every class draws from the same sounds, and
          the number of extra off-beat hits varies per clip so onset density alone
          does not give the class away;
  timbre  classes differ only in the spectrum of the notes (harmonic structure);
          every class draws tempo and onsets from the same distribution.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import butter, sosfilt

from ..audio import InputConfig, resample
from .base import ClipSource, DatasetError, stratified_folds

TEMPI = (60.0, 84.0, 112.0, 144.0, 176.0, 208.0)          # beats per minute, rhythm classes
TIMBRES = ("sine", "odd", "saw", "bell", "noise", "fifths")


def _percussive(rng: np.random.Generator, rate: int, kind: str, pitch: float) -> np.ndarray:
    """One hit of ~0.25 s: kick-like sweep, snare-like noise burst or plucked tone."""
    n = int(0.25 * rate)
    t = np.arange(n) / rate
    decay = np.exp(-t * rng.uniform(12, 30))
    if kind == "kick":
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 2 * np.exp(-t * 40))) / rate
        return np.sin(phase) * decay
    if kind == "snare":
        return rng.standard_normal(n) * decay
    return np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi)) * decay


def _note(rng: np.random.Generator, rate: int, timbre: str, pitch: float, dur: float) -> np.ndarray:
    """One sustained note with the class's spectrum and a random envelope."""
    n = int(dur * rate)
    t = np.arange(n) / rate
    env = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(2, 8))
    partials = {
        "sine": [(1, 1.0)],
        "odd": [(k, 1.0 / k) for k in range(1, 16, 2)],
        "saw": [(k, 1.0 / k) for k in range(1, 16)],
        "bell": [(r, a) for r, a in ((1.0, 1.0), (2.76, 0.6), (5.40, 0.4), (8.93, 0.25))],
        "fifths": [(r, 1.0 / (i + 1)) for i, r in enumerate((1.0, 1.5, 2.0, 3.0, 4.5))],
    }
    if timbre == "noise":

        sos = butter(2, [pitch * 0.8, min(pitch * 4, rate / 2 - 100)], btype="band", fs=rate, output="sos")
        return sosfilt(sos, rng.standard_normal(n)) * env * 3
    out = np.zeros(n)
    for ratio, amp in partials[timbre]:
        f = pitch * ratio
        if f < rate / 2:
            out += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out * env


def _mix(out: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += gain * sound[: end - start]


def generate_clip(task: str, label: int, clip_seed: int, duration: float, rate: int) -> np.ndarray:
    """Audio of one clip, (duration*rate,) float32 in [-1, 1]; a pure function of its arguments."""
    rng = np.random.default_rng(clip_seed)
    n = int(duration * rate)
    out = np.zeros(n)
    if task == "rhythm":
        beat = 60.0 / (TEMPI[label] * rng.uniform(0.97, 1.03))
        kinds = rng.choice(["kick", "snare", "tone"], size=2, replace=False)
        pitch = rng.uniform(60, 400)
        offbeat_prob = rng.uniform(0.0, 0.9)              # density varies within a class
        t = rng.uniform(0, beat)
        i = 0
        while t < duration:
            accent = 1.0 if i % 2 == 0 else rng.uniform(0.4, 0.8)
            _mix(out, _percussive(rng, rate, kinds[i % 2], pitch), int(t * rate), accent)
            if rng.random() < offbeat_prob:                 # off-beat ghost note
                ghost = t + beat * rng.uniform(0.3, 0.7)
                _mix(out, _percussive(rng, rate, "snare", pitch), int(ghost * rate), rng.uniform(0.1, 0.4))
            t += beat * rng.normal(1.0, 0.01)
            i += 1
    elif task == "timbre":
        timbre = TIMBRES[label]
        beat = 60.0 / rng.uniform(60, 200)
        pitch = 110.0 * 2 ** rng.uniform(0, 2.5)
        t = rng.uniform(0, beat)
        while t < duration:
            note_pitch = pitch * 2 ** (rng.integers(-5, 8) / 12)
            _mix(out, _note(rng, rate, timbre, note_pitch, beat * rng.uniform(0.5, 1.5)),
                 int(t * rate), rng.uniform(0.5, 1.0))
            t += beat * rng.choice([0.5, 1.0, 1.0, 2.0])
    else:
        raise ValueError(f"unknown synthetic task {task!r}; use 'rhythm' or 'timbre'")
    out += rng.standard_normal(n) * 10 ** rng.uniform(-3.0, -1.5)
    peak = np.abs(out).max()
    return (out / peak * rng.uniform(0.3, 0.9)).astype(np.float32)


class SyntheticSource(ClipSource):
    """A ClipSource whose audio is generated, not read."""

    def __init__(self, task: str, n_classes: int, n_per_class: int, duration: float,
                 sample_rate: int, data_seed: int, n_folds: int, name: str, protocol: str):
        classes = TEMPI if task == "rhythm" else TIMBRES
        if task not in ("rhythm", "timbre"):
            raise DatasetError(f"dataset.task={task!r} is not allowed; use 'rhythm' or 'timbre'")
        if not 2 <= n_classes <= len(classes):
            raise DatasetError(f"dataset.n_classes={n_classes} is not allowed; use 2..{len(classes)}")
        if n_per_class < n_folds:
            raise DatasetError(f"dataset.n_per_class={n_per_class} is smaller than dataset.n_folds={n_folds}: "
                             f"every fold needs a clip of every class")
        names = [f"{task}_{c:g}bpm" if task == "rhythm" else f"{task}_{c}" for c in classes[:n_classes]]
        rows = [
            {"clip_id": f"{names[c]}/{j:04d}", "path": "", "label": names[c], "fold": -1, "split": "",
             "class_index": c, "clip_seed": data_seed * 1_000_003 + c * 10_007 + j}
            for c in range(n_classes) for j in range(n_per_class)
        ]
        clips = pd.DataFrame(rows)
        clips["fold"] = stratified_folds(clips["label"].to_numpy(), n_folds, data_seed)
        self.task, self.duration, self.rate = task, float(duration), int(sample_rate)
        super().__init__(
            name=f"{name}_{task}", clips=clips, scheme="folds", protocol=protocol,
            extra_identity={"task": task, "duration": duration, "sample_rate": sample_rate,
                            "data_seed": data_seed, "generator": 1},
        )

    def load(self, index: int, cfg: InputConfig) -> np.ndarray:
        row = self.clips.iloc[index]
        audio = generate_clip(self.task, int(row.class_index), int(row.clip_seed), self.duration, self.rate)
        return resample(audio, self.rate, cfg.sample_rate, cfg.resampler)


def build(*, name: str, task: str, n_classes: int, n_per_class: int, duration: float, sample_rate: int,
          data_seed: int, n_folds: int, protocol: str) -> SyntheticSource:
    return SyntheticSource(task, n_classes, n_per_class, duration, sample_rate, data_seed, n_folds, name, protocol)
