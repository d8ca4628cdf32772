"""Waveform front-ends: sample-level and frame-level (single and many filter lengths).

Input: (batch, n_samples) audio at 12 kHz. Max-pooling is applied before the ReLU
wherever both follow a conv: ReLU is monotonic, so max(relu(x)) == relu(max(x))
exactly, and the activation then runs on the pooled (smaller) tensor.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Frontend, same_padding
from .speed import ops


class SampleLevel(Frontend):
    """conv1d k3 s3 valid; then 6 x [conv1d k3 s1 same + maxpool 3]; averaged at conv0 and each pool."""

    input_kind = "waveform"

    def __init__(self, nf: int, n_blocks: int = 6):
        super().__init__()
        self.conv0 = nn.Conv1d(1, nf, 3, stride=3, bias=False)
        self.blocks = nn.ModuleList(nn.Conv1d(nf, nf, 3, padding=1, bias=False) for _ in range(n_blocks))
        self.feature_dim = nf * (n_blocks + 1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.cat(ops.sample_level_stack(wave, self.conv0.weight, [c.weight for c in self.blocks]), dim=1)


class FrameBackend(nn.Module):
    """Reference back-end (Figure 2): conv 7 valid -> conv 7 same + residual -> pool 2 -> conv 7 same + residual.

    Returns the three outputs, each with nf maps. The first conv spans all input maps
    (a kernel of 7 x in_maps in the reference's 2-D view, i.e. a 1-D conv over in_maps channels).
    """

    def __init__(self, in_maps: int, nf: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_maps, nf, 7, bias=False)
        self.conv2 = nn.Conv1d(nf, nf, 7, padding=3, bias=False)
        self.conv3 = nn.Conv1d(nf, nf, 7, padding=3, bias=False)

    @property
    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.conv1.weight, self.conv2.weight, self.conv3.weight

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        return ops.frame_backend(h, *self.weights)


class FrameLevel(Frontend):
    """conv1d k512 s32 valid (nf maps), then the back-end; averaged at the front conv and 3 back-end outputs.

    SPEC Decision: each of the nf maps of each back-end output is averaged (4 nf values).
    """

    input_kind = "waveform"

    def __init__(self, nf: int, kernel: int = 512, stride: int = 32):
        super().__init__()
        self.front = nn.Conv1d(1, nf, kernel, stride=stride, bias=False)
        self.backend = FrameBackend(nf, nf)
        self.feature_dim = 4 * nf

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.cat(ops.frame_level_stack(wave, [(self.front.weight, (0, 0))], self.front.stride[0],
                                               self.backend.weights), dim=1)


class FrameLevelMany(Frontend):
    """5 parallel conv1d (k 512/256/128/64/32, s32, same), concatenated (5 nf maps), then the back-end."""

    input_kind = "waveform"

    def __init__(self, nf: int, kernels: tuple[int, ...] = (512, 256, 128, 64, 32), stride: int = 32):
        super().__init__()
        self.fronts = nn.ModuleList(nn.Conv1d(1, nf, k, stride=stride, bias=False) for k in kernels)
        self.backend = FrameBackend(nf * len(kernels), nf)
        self.feature_dim = nf * (len(kernels) + 3)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        fronts = [(conv.weight, same_padding(conv.kernel_size[0], conv.stride[0], wave.shape[1])) for conv in self.fronts]
        return torch.cat(ops.frame_level_stack(wave, fronts, self.fronts[0].stride[0], self.backend.weights), dim=1)
