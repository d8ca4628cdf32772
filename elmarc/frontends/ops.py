"""Faster forms of two convolutions the paper's front-ends use a lot, shared by the Python and declared models.

Both give the same values as the plain ``nn.Conv2d`` (up to float summation order) with the
same weights. ``direct_convolution()`` switches them off, e.g. to count the multiply-accumulates
of the direct convolution with forward hooks (the describe command does).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

_ENABLED = True


def enabled(x: torch.Tensor | None = None, on_gpu: bool = True) -> bool:
    """Whether to use the faster forms (for an input x on a GPU: only where on_gpu says they pay there)."""
    return _ENABLED and (x is None or not x.is_cuda or on_gpu)


@contextlib.contextmanager
def direct_convolution():
    """Within this block every front-end runs its plain nn.Conv modules."""
    global _ENABLED
    previous, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = previous


def conv2d_full_height(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A one-channel conv2d whose kernel spans every band, as a conv1d with the bands as channels.

    h (B, 1, T, F), weight (O, 1, kt, F) -> (B, O, T - kt + 1, 1). oneDNN runs this ~3x faster
    than the one-channel conv2d (measured by the benchmark).
    """
    return F.conv1d(h[:, 0].transpose(1, 2), weight[:, 0].permute(0, 2, 1)).unsqueeze(-1)


def conv2d_1row_max_freq(h: torch.Tensor, weight: torch.Tensor, block: int = 32) -> torch.Tensor:
    """A one-channel, one-row conv2d followed by a max over every frequency offset, fused.

    h (B, 1, T, F), weight (O, 1, 1, kf) -> (B, O, T, 1). Unfused, the (T x offsets x O) output is
    written to memory only to be max-pooled; here each block of frames is one matrix product
    whose maximum over frequency is taken while it is still in cache.
    """
    B, _, T, Fq = h.shape
    O, kf = weight.shape[0], weight.shape[3]
    fo = Fq - kf + 1
    patches = h[:, 0].unfold(2, kf, 1)                     # (B, T, fo, kf), a view
    wt = weight.reshape(O, kf).t()
    out = None
    for s in range(0, T, block):
        y = patches[:, s:s + block].reshape(-1, kf) @ wt
        if out is None:
            out = y.new_empty(B, T, O)                     # y's dtype: bf16 under autocast
        torch.amax(y.view(B, -1, fo, O), dim=2, out=out[:, s:s + block])
    return out.permute(0, 2, 1).contiguous().unsqueeze(-1)   # contiguous: every model averages it the same way


def conv2d_1ch_same_maxpool(h: torch.Tensor, weight: torch.Tensor, pool: tuple[int, int], rows: int = 8) -> torch.Tensor:
    """A one-channel conv2d with 'same' zero padding (odd kernel) followed by a max-pool, fused.

    h (B, 1, T, F), weight (O, 1, kh, kw), pool (pt, pf) -> (B, O, T // pt, F // pf) in channels_last
    layout. VGG's first layer writes O x T x F values per clip only for the pool to read them back;
    computed a few rows at a time, they are pooled while still in cache (about 2x for that layer).
    """
    B, _, T, Fq = h.shape
    O, _, kh, kw = weight.shape
    pt, pf = pool
    xp = F.pad(h[:, 0], (kw // 2, kw // 2, kh // 2, kh // 2))
    To, Fo = T // pt, Fq // pf
    wt = weight.reshape(O, kh * kw).t()
    patches = xp.unfold(1, kh, 1).unfold(2, kw, 1)          # (B, T, F, kh, kw), a view
    out = None
    rows = max(rows - rows % pt, pt)
    for s in range(0, To * pt, rows):
        e = min(s + rows, To * pt)
        blk = patches[:, s:e, :Fo * pf].reshape(-1, kh * kw) @ wt
        if out is None:
            out = blk.new_empty(B, To, Fo, O)                 # blk's dtype: bf16 under autocast
        out[:, s // pt:e // pt] = blk.view(B, (e - s) // pt, pt, Fo, pf, O).amax(dim=(2, 4))
    return out.permute(0, 3, 1, 2)
