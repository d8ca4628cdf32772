"""Faster forms of the convolutions the paper's front-ends use a lot, shared by the Python and declared models.

They give the same values as the plain modules (``nn.Conv1d``/``nn.Conv2d``, ``F.elu``; up to float rounding) with the
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


def elu(x: torch.Tensor) -> torch.Tensor:
    """F.elu, on a CPU as max(x, exp(min(x, 0)) - 1) (exp(x) - 1 >= x, equal at 0): this build's
    expm1 is about 4x slower than exp, and one buffer beats two (vgg small, the first layer's 8.5M
    values: 51 -> 13 ms). Differs from F.elu by <= 6e-8 (float32 rounding of exp near 0)."""
    if not enabled(x, on_gpu=False) or (x.requires_grad and torch.is_grad_enabled()):
        return F.elu(x)                                      # (out= is not differentiable)
    out = x.clamp(max=0).exp_().sub_(1)
    return torch.maximum(out, x, out=out)


def conv2d_max_freq(h: torch.Tensor, weight: torch.Tensor, time_pad: tuple[int, int] = (0, 0),
                    filter_block: int = 512) -> torch.Tensor:
    """A one-channel conv2d, valid in frequency, followed by a max over every frequency offset.

    h (B, 1, T, F), weight (O, 1, kt, kf), time_pad (top, bottom) zero rows -> (B, O, T', 1) with
    T' = T + top + bottom - kt + 1. With kf = F (one offset) this is the conv itself.

    On a CPU each frequency offset is a conv1d with the kf bands as input channels (oneDNN runs
    it at 115-185% of the fp32 matmul rate by the direct count, the one-channel conv2d at
    38-113%), max-accumulated in place, so the (T' x offsets x O) map is never written; at most
    filter_block filters at a time, so the running maximum stays in the last-level cache. On a
    GPU only the one-offset case takes that form (the measured one, 7x96); the others keep the
    forms measured there (cuDNN's conv2d, the blocked one-row product below).
    """
    B, _, T, Fq = h.shape
    O, _, kt, kf = weight.shape
    offsets = Fq - kf + 1
    if offsets == 1 and not any(time_pad):                  # 7x96: the conv itself, all filters at once
        # on the strided views as they are: torch.compile then runs it at 154% of the matmul rate,
        # against 114% with contiguous copies (eager: the same either way)
        return F.conv1d(h[:, 0].transpose(1, 2), weight[:, 0].permute(0, 2, 1)).unsqueeze(-1)
    if h.is_cuda and offsets > 1:
        if kt == 1 and not any(time_pad):
            return conv2d_1row_max_freq(h, weight)
        return F.conv2d(F.pad(h, (0, 0, *time_pad)) if any(time_pad) else h, weight).amax(dim=3, keepdim=True)
    bands = h[:, 0].transpose(1, 2)                          # (B, F, T): the bands as channels
    bands = F.pad(bands, time_pad) if any(time_pad) else bands.contiguous()
    w = weight[:, 0].permute(0, 2, 1).contiguous()           # (O, kf, kt)
    blocks = []
    for o in range(0, O, filter_block):                      # 7x86 large (3585 filters): 1.13 -> 0.71 s a batch
        out = F.conv1d(bands[:, :kf], w[o:o + filter_block])
        for f0 in range(1, offsets):
            torch.maximum(out, F.conv1d(bands[:, f0:f0 + kf], w[o:o + filter_block]), out=out)
        blocks.append(out)
    return (blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)).unsqueeze(-1)


def conv2d_1row_max_freq(h: torch.Tensor, weight: torch.Tensor, block: int = 32) -> torch.Tensor:
    """A one-channel, one-row conv2d followed by a max over every frequency offset, fused (GPU form).

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
        blk = (patches[:, s:e, :Fo * pf].reshape(-1, kh * kw) @ wt).view(B, (e - s) // pt, pt, Fo, pf, O)
        if out is None:
            out = blk.new_empty(B, To, Fo, O)                 # blk's dtype: bf16 under autocast
        # the max over frequency as elementwise maxima of slices, then over time: one amax over both
        # axes runs 3-5x slower (vgg's first layer: 164 -> 45 ms small, 401 -> 78 ms large a batch)
        freq_max = blk[:, :, :, :, 0]
        for j in range(1, pf):
            freq_max = torch.maximum(freq_max, blk[:, :, :, :, j])
        torch.amax(freq_max, dim=2, out=out[:, s // pt:e // pt])
    return out.permute(0, 3, 1, 2)


def conv1d_time_major(h: torch.Tensor, weight: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """conv1d of a time-major signal: h (B, T, C), weight (O, C, k), symmetric zero padding -> (B, T', O).

    Run as oneDNN's channels-last conv2d over (B, C, T, 1): for few channels (sample_level's 23-512)
    that is 3-4x faster than conv1d's (B, C, T) layout. The view must carry the stride oneDNN
    expects on the size-1 axis (C, from a permute), or it silently reorders the whole input
    (measured: 151 vs 32 ms for one 23-channel layer).
    """
    y = F.conv2d(h.unsqueeze(2).permute(0, 3, 1, 2), weight.unsqueeze(-1), padding=(padding, 0))
    return y.permute(0, 2, 3, 1).squeeze(2)


def conv1d_relu_mean(x: torch.Tensor, weight: torch.Tensor, pad: tuple[int, int] = (0, 0), block: int = 256,
                     plain_up_to: int = 2 ** 21) -> torch.Tensor:
    """The time average of relu(conv1d) of a one-channel signal, fused: x (B, 1, T), weight (O, 1, k) -> (B, O).

    Each block of output frames is one matrix product of the signal's k-sample windows, rectified
    and summed while in cache, so the (O x T) map is never written (temporal large: 60 -> 12 ms
    a batch of 4 for its four convs). Sums in fp32 whatever the autocast dtype. A map of up to
    plain_up_to values (2M: 8 MB) is cheaper written: there the plain conv1d runs 2-4x faster
    (temporal small). On a GPU the plain conv1d, the form measured there.
    """
    xp = F.pad(x[:, 0], pad) if any(pad) else x[:, 0]
    k = weight.shape[2]
    windows = xp.unfold(1, k, 1)                               # (B, T', k), a view
    wt = weight[:, 0].t()
    n = windows.shape[1]
    if x.is_cuda or x.shape[0] * weight.shape[0] * n <= plain_up_to:
        return F.relu(F.conv1d(xp.unsqueeze(1), weight)).mean(dim=2)
    total = None
    for s in range(0, n, block):
        part = (windows[:, s:s + block] @ wt).clamp_(min=0).sum(dim=1, dtype=torch.float32)
        total = part if total is None else total.add_(part)
    return total / n
