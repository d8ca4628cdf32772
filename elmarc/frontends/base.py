"""What every random-weight front-end shares: the module contract and SPEC's initialisation.

A front-end maps a batch of model inputs to one feature vector per clip:
    waveform input  (batch, n_samples)        -> (batch, feature_dim)
    logmel input    (batch, n_frames, n_mels) -> (batch, feature_dim)
    audio input     list of (time,) tensors   -> (batch, feature_dim)   (the MFCC baseline)
Feature vectors are built by averaging feature maps over time (or time x frequency)
at fixed points of the network and concatenating them (SPEC section 2).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ConfigError

INPUT_KINDS = ("waveform", "logmel", "audio")


class FrontendConfigError(ConfigError):
    """A front-end config that cannot work; the message names the layer, the shapes and the key."""


class Frontend(nn.Module):
    """Base class: subclasses set ``input_kind`` and ``feature_dim`` and implement forward."""

    input_kind: str = "logmel"
    feature_dim: int

    def conv_layers(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]


def truncated_normal_(tensor: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Fill with N(0, std^2), redrawing values beyond 2 std (TensorFlow's truncated_normal)."""
    with torch.no_grad():
        out = torch.empty(tensor.shape, dtype=torch.float32)
        out.normal_(0.0, 1.0, generator=generator)
        bad = out.abs() > 2.0
        while bool(bad.any()):
            redraw = torch.empty(int(bad.sum()), dtype=torch.float32).normal_(0.0, 1.0, generator=generator)
            out[bad] = redraw
            bad = out.abs() > 2.0
        tensor.copy_(out * std)
    return tensor


def fan_in(conv: nn.Module) -> int:
    """kh * kw * in_channels (per group), as SPEC section 2 defines it."""
    w = conv.weight
    return int(w.shape[1] * math.prod(w.shape[2:]))


def init_random_(model: nn.Module, seed: int) -> nn.Module:
    """SPEC init: truncated normal, std = sqrt(1.3 * 2 / fan_in), zero biases.

    Layers are visited in ``named_modules`` order with one generator, so the same
    seed gives bit-identical weights and different seeds give different ones.
    """
    generator = torch.Generator().manual_seed(int(seed))
    for _, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            truncated_normal_(module.weight, math.sqrt(1.3 * 2.0 / fan_in(module)), generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def same_padding(kernel: int, stride: int, length: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (left, right) for one axis: output = ceil(length / stride)."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def time_mean(x: torch.Tensor) -> torch.Tensor:
    """Average every feature map: (batch, channels, *spatial) -> (batch, channels)."""
    return x.flatten(2).mean(dim=2)
