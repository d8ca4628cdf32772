"""Musically motivated front-ends (Pons et al.): timbral, temporal and their combinations.

timbral: vertical filters (7/3/1 frames x 86/38 bands) max-pooled over frequency.
temporal: 1-D filters over the band-averaged log-mel envelope.
Input: (batch, n_frames, n_mels) log-mel.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Frontend, FrontendConfigError, same_padding
from .speed import ops

TIMBRAL_ROWS = (7, 3, 1)          # kernel heights (frames), widths nf, 2nf, 4nf
TIMBRAL_BANDS = (0.9, 0.4)        # kernel widths as fractions of n_mels: 86 and 38 of 96
TEMPORAL_MUSIC = (165, 128, 64, 32)
TEMPORAL_SHORT = (64, 32, 16, 8)  # "timbral_time": short cues for environmental sounds


def temporal_reduction(nf: int) -> int:
    """r of SPEC's temporal row (64, 32, ..., 1 for nf 256, 128, ..., 4): nf / 4, at least 1."""
    return max(nf // 4, 1)


class TimbralBlock(nn.Module):
    """Six vertical convs (valid in frequency, zero-padded in time), each max-pooled over frequency."""

    def __init__(self, nf: int, n_mels: int = 96):
        super().__init__()
        self.convs = nn.ModuleList()
        for frac in TIMBRAL_BANDS:
            bands = int(frac * n_mels)
            for rows, mult in zip(TIMBRAL_ROWS, (1, 2, 4)):
                self.convs.append(nn.Conv2d(1, mult * nf, (rows, bands), bias=False))
        self.out_dim = 2 * 7 * nf

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        x = mel.unsqueeze(1)
        feats = []
        for conv in self.convs:
            pad = conv.kernel_size[0] // 2                    # 3/3 rows for 7, 1/1 for 3, none for 1
            feats.append(ops.conv2d_max_freq_relu_mean(x, conv.weight, (pad, pad)))   # max over all remaining frequency
        return feats


class TemporalBlock(nn.Module):
    """1-D 'same' convs over the band-averaged envelope: filters k*nf - r for k = 1, 2, 4, 8."""

    def __init__(self, nf: int, kernels: tuple[int, ...] = TEMPORAL_MUSIC):
        super().__init__()
        r = temporal_reduction(nf)
        widths = [m * nf - r for m in (1, 2, 4, 8)[: len(kernels)]]
        self.convs = nn.ModuleList(nn.Conv1d(1, w, k, bias=False) for w, k in zip(widths, kernels))
        self.out_dim = sum(widths)

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        envelope = mel.mean(dim=2).unsqueeze(1)               # (B, 1, T)
        return [ops.conv1d_relu_mean(envelope, conv.weight, same_padding(conv.kernel_size[0], 1, envelope.shape[2]))
                for conv in self.convs]


class Musical(Frontend):
    """Timbral and/or temporal blocks side by side in one wide layer."""

    input_kind = "logmel"

    def __init__(self, nf: int, timbral: bool = True, temporal: bool = True,
                 temporal_kernels: tuple[int, ...] = TEMPORAL_MUSIC, n_mels: int = 96):
        super().__init__()
        if not (timbral or temporal):
            raise FrontendConfigError("frontend.model: Musical needs timbral and/or temporal blocks (both are false)")
        self.timbral = TimbralBlock(nf, n_mels) if timbral else None
        self.temporal = TemporalBlock(nf, tuple(temporal_kernels)) if temporal else None
        self.feature_dim = sum(b.out_dim for b in (self.timbral, self.temporal) if b is not None)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        feats = []
        if self.timbral is not None:
            feats += self.timbral(mel)
        if self.temporal is not None:
            feats += self.temporal(mel)
        return torch.cat(feats, dim=1)
