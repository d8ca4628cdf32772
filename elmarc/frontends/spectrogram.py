"""Single-layer log-mel front-ends (7x96, 7x86) and the VGG stack.

Input: (batch, n_frames, n_mels) log-mel, time first. Convs see it as a
one-channel image (batch, 1, time, freq).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Frontend, FrontendConfigError, time_mean
from .speed import ops


class Conv7xN(Frontend):
    """conv2d 7 x n_bands valid, max-pooled over the remaining frequency, averaged over time.

    7x96 spans all bands (output 1370 x 1, no pooling); 7x86 leaves 11 frequency
    positions, max-pooled (1 x 11), which buys invariance to small pitch shifts.
    """

    input_kind = "logmel"

    def __init__(self, nf: int, kernel_time: int = 7, kernel_freq: int = 96, n_mels: int = 96):
        super().__init__()
        if kernel_freq > n_mels:
            raise FrontendConfigError(f"frontend.model.kernel_freq={kernel_freq} exceeds n_mels={n_mels}")
        self.conv = nn.Conv2d(1, nf, (kernel_time, kernel_freq), bias=False)
        self.feature_dim = nf

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # (B, nf, T-6, 1) maps, ReLU after the pool (fewer values), averaged: fused where that pays
        return ops.conv2d_max_freq_relu_mean(mel.unsqueeze(1), self.conv.weight)


class VGG(Frontend):
    """5 x [conv2d 3x3 same, ELU, maxpool]; pools (4,2) (4,3) (5,2) (4,2) (4,4); averaged after each pool.

    1376x96 -> 344x48 -> 86x16 -> 17x8 -> 4x4 -> 1x1. The pool runs before the ELU
    (ELU is monotonic, so the values are the same) to shrink the activation's work.
    """

    input_kind = "logmel"
    pools = ((4, 2), (4, 3), (5, 2), (4, 2), (4, 4))

    def __init__(self, nf: int, channels_last: bool = True):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(1 if i == 0 else nf, nf, 3, padding=1, bias=False) for i in range(len(self.pools))
        )
        self.channels_last = channels_last
        self.feature_dim = nf * len(self.pools)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = mel.unsqueeze(1)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        feats = []
        for conv, pool in zip(self.convs, self.pools):
            h = ops.conv2d_same_maxpool(h, conv.weight, pool, then_elu=True)
            feats.append(time_mean(h))
        return torch.cat(feats, dim=1)
