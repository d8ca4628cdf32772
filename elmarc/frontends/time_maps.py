"""A front-end's feature maps along time, before they are averaged: what timestamp embeddings pool.

Every front-end's feature vector is the concatenation of feature groups, each the time average of
a map (batch, channels, positions) (SPEC section 2; vgg's maps are averaged over frequency first,
which is the same mean). ``time_maps(frontend, x)`` returns those maps, in the order of the
vector, each with where its positions sit in the input: position i is centred on input unit
``first + step * i`` (log-mel frames or samples, as the front-end's input kind), from the kernel
sizes, paddings, strides and pools of the layers below it. Averaging every map over all its
positions gives the front-end's own output (tests check this for each front-end), so pooling a
map over the positions inside a window gives that window's share of the same features.

The MFCC baseline has two statistics per group: its maps say ``stat="std"`` where the group is a
standard deviation over frames. Declared (YAML) front-ends are not covered: ``time_maps`` returns
None for them, and callers fall back to running each window (elmarc.hear does).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import Frontend, same_padding
from .mfcc import MFCC
from .musical import Musical
from .spectrogram import VGG, Conv7xN
from .speed import ops
from .waveform import FrameLevel, FrameLevelMany, SampleLevel


@dataclass(frozen=True)
class TimeMap:
    """values (batch, channels, positions); position i centred on input unit first + step * i."""

    values: torch.Tensor
    first: float
    step: float
    stat: str = "mean"

    def centres(self) -> torch.Tensor:
        return self.first + self.step * torch.arange(self.values.shape[2], dtype=torch.float64)

    def pooled(self) -> torch.Tensor:
        """The map's statistic over all positions: (batch, channels), the front-end's feature group."""
        v = self.values.float()
        return v.std(dim=2, unbiased=False) if self.stat == "std" else v.mean(dim=2)


def covers(frontend: Frontend) -> bool:
    """Whether time_maps knows this front-end's maps (declared front-ends: no)."""
    return isinstance(frontend, tuple(_MAPS))


def time_maps(frontend: Frontend, x) -> list[TimeMap] | None:
    """The maps whose averages make frontend(x), in its vector's order; None where not covered."""
    for cls, maps in _MAPS.items():
        if isinstance(frontend, cls):
            with torch.no_grad():
                return maps(frontend, x)
    return None


def _conv7xn(m: Conv7xN, mel: torch.Tensor) -> list[TimeMap]:
    kt = m.conv.weight.shape[2]
    maps = F.relu(ops.conv2d_max_freq(mel.unsqueeze(1), m.conv.weight))[..., 0]
    return [TimeMap(maps, (kt - 1) / 2, 1.0)]


def _vgg(m: VGG, mel: torch.Tensor) -> list[TimeMap]:
    h, first, step, out = mel.unsqueeze(1), 0.0, 1.0, []
    for conv, pool in zip(m.convs, m.pools):
        h = ops.conv2d_same_maxpool(h, conv.weight, pool, then_elu=True)     # 'same' conv keeps the centres
        first, step = first + step * (pool[0] - 1) / 2, step * pool[0]       # a pool of pt positions, floor
        out.append(TimeMap(h.mean(dim=3), first, step))
    return out


def _musical(m: Musical, mel: torch.Tensor) -> list[TimeMap]:
    out = []
    if m.timbral is not None:
        x = mel.unsqueeze(1)
        for conv in m.timbral.convs:
            kt = conv.kernel_size[0]
            pad = kt // 2
            maps = F.relu(ops.conv2d_max_freq(x, conv.weight, (pad, pad)))[..., 0]
            out.append(TimeMap(maps, (kt - 1) / 2 - pad, 1.0))
    if m.temporal is not None:
        envelope = mel.mean(dim=2).unsqueeze(1)
        for conv in m.temporal.convs:
            k = conv.kernel_size[0]
            left, right = same_padding(k, 1, envelope.shape[2])
            maps = F.relu(F.conv1d(F.pad(envelope, (left, right)), conv.weight))
            out.append(TimeMap(maps, (k - 1) / 2 - left, 1.0))
    return out


def _sample_level(m: SampleLevel, wave: torch.Tensor) -> list[TimeMap]:
    """The stack's time-major maps as (batch, channels, positions) views."""
    maps = ops.sample_level_maps(wave, m.conv0.weight, [c.weight for c in m.blocks])
    k = m.conv0.weight.shape[2]
    first, step, out = (k - 1) / 2, float(k), []
    for i, h in enumerate(maps):
        if i:
            first, step = first + step, step * 3                  # a pool of 3, floor
        out.append(TimeMap(h.transpose(1, 2), first, step))
    return out


def _frame_level(m: FrameLevel | FrameLevelMany, wave: torch.Tensor) -> list[TimeMap]:
    convs = [m.front] if isinstance(m, FrameLevel) else list(m.fronts)
    pads = [(0, 0) if isinstance(m, FrameLevel) else same_padding(c.kernel_size[0], c.stride[0], wave.shape[1])
            for c in convs]
    stride = convs[0].stride[0]
    maps = ops.frame_level_maps(wave, [(c.weight, pad) for c, pad in zip(convs, pads)], stride, m.backend.weights)
    out = [TimeMap(v, (c.kernel_size[0] - 1) / 2 - pad[0], float(stride)) for v, c, pad in zip(maps, convs, pads)]
    # 'same' fronts of every length centre their frames alike (to half a sample); conv 7 valid moves the
    # back-end's centres by 3 frames, its 'same' convs keep them, its pool of 2 halves the rate
    first = out[0].first + (m.backend.conv1.kernel_size[0] // 2) * stride
    out1, out2, out3 = maps[len(convs):]
    return out + [TimeMap(out1, first, stride), TimeMap(out2, first, stride),
                  TimeMap(out3, first + stride / 2, 2.0 * stride)]


def _mfcc(m: MFCC, clips: list[torch.Tensor]) -> list[TimeMap]:
    """One clip at a time (clips differ in length): the coefficient maps of clip_features."""
    if len(clips) != 1:
        raise ValueError("MFCC time maps are made one clip at a time")
    out = []
    for values, first in zip(m.coefficients(clips[0]), (0.0, 0.5, 1.0)):     # a delta sits between its frames
        values = values.t().unsqueeze(0)                                        # (1, n_mfcc, frames)
        out += [TimeMap(values, first, 1.0), TimeMap(values, first, 1.0, "std")]
    return out


_MAPS = {Conv7xN: _conv7xn, VGG: _vgg, Musical: _musical, SampleLevel: _sample_level,
         FrameLevel: _frame_level, FrameLevelMany: _frame_level, MFCC: _mfcc}


def pool_windows(maps: list[TimeMap], lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Each map's statistic over the positions centred in [lo[w], hi[w]] (input units), concatenated:
    (batch, n_windows, sum of channels). A window holding no centre takes the position nearest its middle.
    Prefix sums in float64, so every window costs the same whatever its width."""
    parts = []
    for tm in maps:
        centres = tm.centres()
        start = torch.searchsorted(centres, lo.double(), side="left")
        stop = torch.searchsorted(centres, hi.double(), side="right")
        mid = (lo.double() + hi.double()) / 2
        nearest = torch.searchsorted(centres, mid).clamp(max=len(centres) - 1)
        before = (nearest - 1).clamp(min=0)
        nearest = torch.where((mid - centres[before]).abs() <= (centres[nearest] - mid).abs(), before, nearest)
        empty = stop <= start
        v = tm.values.contiguous()                                               # (B, C, L): sums along memory
        start = torch.where(empty, nearest, start).to(v.device)
        stop = torch.where(empty, nearest + 1, stop).to(v.device)
        count = (stop - start).double()
        mean = _window_sums(v, start, stop) / count
        if tm.stat == "std":
            mean = (_window_sums(v.double().square(), start, stop) / count - mean * mean).clamp(min=0).sqrt()
        parts.append(mean.float().transpose(1, 2).cpu())
    return torch.cat(parts, dim=2)


def _window_sums(v: torch.Tensor, start: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """Sums of v (B, C, L) over positions [start, stop) per window, (B, C, n_windows), from one float64 prefix sum."""
    prefix = torch.empty(v.shape[0], v.shape[1], v.shape[2] + 1, dtype=torch.float64, device=v.device)
    prefix[:, :, 0] = 0.0
    prefix[:, :, 1:] = v
    prefix[:, :, 1:] = prefix[:, :, 1:].cumsum(dim=2)
    return prefix[:, :, stop] - prefix[:, :, start]
