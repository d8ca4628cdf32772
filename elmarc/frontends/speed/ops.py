"""The layers the paper's front-ends use a lot, each with its plain form and its faster forms.

Every function here offers its forms to the active speed policy (policy.py), which picks one (by the layer's own rule
for the device and sizes, or by measuring them where they run: extract.conv_forms); every
form gives the plain form's values (``F.conv1d``/``F.conv2d``, ``F.elu``; up to float
rounding) with the same weights, so the models call them without asking. The plain form is
the reference in the tests; ``direct_convolution()`` forces it, e.g. to count the
multiply-accumulates of the direct convolution (the describe command does).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base import time_mean
from .policy import current, shape_key


def direct_convolution():
    """Within this block every layer runs its plain form."""
    return current().using("plain")


def _grad(x: torch.Tensor) -> bool:
    return x.requires_grad and torch.is_grad_enabled()


def relu_fresh(x: torch.Tensor) -> torch.Tensor:
    """ReLU of a freshly computed map: in place when no gradient flows (saves a buffer); out of place
    when training, since the op that made the map (a max) keeps its output for the backward pass."""
    return F.relu(x) if _grad(x) else x.relu_()


def elu_fresh(x: torch.Tensor) -> torch.Tensor:
    """ELU of a freshly computed map: in place when no gradient flows (a fresh output buffer costs
    more than the ELU itself: its pages are faulted in and zeroed), else F.elu."""
    return F.elu(x) if _grad(x) else F.elu_(x)


def elu(x: torch.Tensor) -> torch.Tensor:
    """F.elu; on a CPU also as max(x, exp(min(x, 0)) - 1) (exp(x) - 1 >= x, equal at 0) in one buffer,
    since expm1 is much slower than exp in some builds. Differs from F.elu by <= 6e-8."""
    if _grad(x):
        return F.elu(x)                                      # (out= is not differentiable)

    def exp_form():
        out = x.clamp(max=0).exp_().sub_(1)
        return torch.maximum(out, x, out=out)

    candidates = {"plain": lambda: F.elu(x)} if x.is_cuda else {"plain": lambda: F.elu(x), "exp": exp_form}
    return current().run("elu", shape_key("elu", x), candidates, "plain" if x.is_cuda else "exp", x.device)


def max_over(x: torch.Tensor, dim: int, out: torch.Tensor) -> torch.Tensor:
    """x.amax(dim) written to out, as elementwise maxima of the slices along dim: torch.amax with
    out= first fills out with -inf, a pass as long as the maxima themselves over a small axis."""
    first, *rest = x.unbind(dim)
    if not rest:
        return out.copy_(first)
    torch.maximum(first, rest[0], out=out)
    for part in rest[1:]:
        torch.maximum(out, part, out=out)
    return out


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a CPU form computes in: the autocast dtype inside torch.autocast("cpu"), else x's.
    (The forms' out= products are not autocast by torch, so they cast their operands themselves.)"""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def tap_weights(weight: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
    """A conv1d's weight (O, C, k) as k matrices (C, O), one per tap, for products of shifted rows."""
    return [weight[:, :, r].t().contiguous().to(dtype) for r in range(weight.shape[2])]


def shifted_rows_product(acc: torch.Tensor, x: torch.Tensor, start: int, taps: list[torch.Tensor],
                         shifts: list[int] | None = None) -> torch.Tensor:
    """acc = sum over taps r of x[start + shift_r : start + shift_r + len(acc)] @ taps[r], into acc
    (shifts: 0, 1, ... by default): a convolution over the rows of a time-major x, one block."""
    n = acc.shape[0]
    for r, (shift, w) in enumerate(zip(shifts or range(len(taps)), taps)):
        rows = x[start + shift:start + shift + n]
        torch.mm(rows, w, out=acc) if r == 0 else acc.addmm_(rows, w)
    return acc


def patch_rows(h: torch.Tensor, kt: int, time_pad: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """h (B, 1, T, F) copied as (B T', F kt) rows, row (b, t) the kt frames from t of each band,
    band-major: the patch of kf bands at frequency offset f is the slice [f kt, (f + kf) kt) of
    every row, a matrix the GEMM library reads in place."""
    x = F.pad(h[:, 0], (0, 0, *time_pad)) if any(time_pad) else h[:, 0]
    frames = x.unfold(1, kt, 1)                               # (B, T', F, kt), a view
    return frames.reshape(-1, h.shape[3] * kt).to(dtype)


def band_major_weights(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """weight (O, 1, kt, kf) as the (kf kt, O) matrix whose rows follow patch_rows' order."""
    O, _, kt, kf = weight.shape
    return weight[:, 0].transpose(1, 2).reshape(O, kf * kt).t().contiguous().to(dtype)


def conv2d_max_freq(h: torch.Tensor, weight: torch.Tensor, time_pad: tuple[int, int] = (0, 0),
                    filter_block: int = 512) -> torch.Tensor:
    """A one-channel conv2d, valid in frequency, followed by a max over every frequency offset.

    h (B, 1, T, F), weight (O, 1, kt, kf), time_pad (top, bottom) zero rows -> (B, O, T', 1) with
    T' = T + top + bottom - kt + 1. With kf = F (one offset) this is the conv itself.

    Plain form: the conv2d, then the max. Faster forms: on a CPU, by default, one matrix product
    per frequency offset on a strided view of the input's patches, a block of output rows at a
    time, max-accumulated while the block is in cache (_patch_products_max; the GEMM library
    runs these shapes near its square rate, oneDNN's convolutions do not); each offset as a
    conv1d with the kf bands as input channels (offsets); the one-offset case as that conv1d
    (conv1d). On a GPU the one-offset case takes the conv1d form and the others the forms that
    pay there (cuDNN's conv2d, the blocked one-row product below).
    """
    _, _, T, Fq = h.shape
    O, _, kt, kf = weight.shape
    offsets = Fq - kf + 1
    candidates = {"plain": lambda: _conv2d_then_max(h, weight, time_pad)}
    if offsets == 1 and not any(time_pad):                  # 7x96: the conv itself, all filters at once
        # on the strided views as they are: torch.compile runs that faster than on contiguous copies
        candidates["conv1d"] = lambda: F.conv1d(h[:, 0].transpose(1, 2), weight[:, 0].permute(0, 2, 1)).unsqueeze(-1)
        default = "conv1d"
    else:
        candidates["offsets"] = lambda: _conv1d_per_offset_max(h, weight, time_pad, filter_block)
        if kt == 1 and not any(time_pad):
            candidates["onerow"] = lambda: conv2d_1row_max_freq(h, weight)
        default = ("onerow" if kt == 1 and not any(time_pad) else "plain") if h.is_cuda else "offsets"
    if not h.is_cuda and not torch.compiler.is_compiling():  # its out= products are opaque to a graph
        candidates["patches"] = lambda: _patch_products_max(h, weight, time_pad)
        default = "patches" if offsets > 1 else default
    if _native_ready(h, weight):
        candidates["native"] = lambda: _native_patch_max(h, weight, time_pad)
        default = "native" if offsets > 1 and _fills_native_tiles(O) else default
    key = shape_key("conv2d_max_freq", h, weight, extra=time_pad)
    return current().run("conv2d_max_freq", key, candidates, default, h.device)


def _conv1d_per_offset_max(h, weight, time_pad, filter_block):
    O, _, kt, kf = weight.shape
    offsets = h.shape[3] - kf + 1
    bands = h[:, 0].transpose(1, 2)                          # (B, F, T): the bands as channels
    bands = F.pad(bands, time_pad) if any(time_pad) else bands.contiguous()
    w = weight[:, 0].permute(0, 2, 1).contiguous()           # (O, kf, kt)
    blocks = []
    for o in range(0, O, filter_block):
        out = F.conv1d(bands[:, :kf], w[o:o + filter_block])
        for f0 in range(1, offsets):
            torch.maximum(out, F.conv1d(bands[:, f0:f0 + kf], w[o:o + filter_block]), out=out)
        blocks.append(out)
    return (blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)).unsqueeze(-1)


def conv2d_max_freq_relu_mean(h: torch.Tensor, weight: torch.Tensor, time_pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The time average of relu(conv2d_max_freq(h, weight, time_pad)): h (B, 1, T, F) -> (B, O).

    Where a layer's maps are only averaged (7x96, 7x86, every timbral branch), the fused form
    never writes them: the patch products' running maximum is rectified and summed block by
    block while in cache (fp32 sums whatever the autocast dtype). Other forms: the maps from
    conv2d_max_freq (its own forms), then ReLU and mean.
    """
    candidates = {"plain": lambda: time_mean(F.relu(_conv2d_then_max(h, weight, time_pad))),
                  "maps": lambda: time_mean(relu_fresh(conv2d_max_freq(h, weight, time_pad)))}
    if not h.is_cuda and not torch.compiler.is_compiling():  # its out= products are opaque to a graph
        candidates["patches"] = lambda: _patch_products_max(h, weight, time_pad, relu_mean=True)
    if _native_ready(h, weight):
        candidates["native"] = lambda: _native_patch_max(h, weight, time_pad, relu_mean=True)
    # one offset: the maps' conv1d reads the input in place, where the patch forms first copy it kt times
    one_offset = h.shape[3] == weight.shape[3]
    default = ("maps" if one_offset else "native" if "native" in candidates and _fills_native_tiles(weight.shape[0])
               else "patches" if "patches" in candidates else "maps")
    key = shape_key("conv2d_max_freq_relu_mean", h, weight, extra=time_pad)
    return current().run("conv2d_max_freq_relu_mean", key, candidates, default, h.device)


def _conv2d_then_max(h, weight, time_pad):
    padded = F.pad(h, (0, 0, *time_pad)) if any(time_pad) else h
    return F.conv2d(padded, weight).amax(dim=3, keepdim=True)


def _patch_products_max(h: torch.Tensor, weight: torch.Tensor, time_pad: tuple[int, int], rows: int = 512,
                        relu_mean: bool = False) -> torch.Tensor:
    """conv2d_max_freq as matrix products: h (B, 1, T, F), weight (O, 1, kt, kf) -> (B, O, T', 1),
    or with relu_mean the time average of its ReLU, (B, O) in fp32, without writing the maps.

    The input is copied once (patch_rows), so each frequency offset's patches are a strided
    matrix. Per block of `rows` output rows, one product per offset into a buffer and a running
    maximum, both small enough to stay in cache (writing each offset's whole map, or allocating a
    fresh one per product, costs a quarter of the time or more).
    """
    B, _, T, Fq = h.shape
    O, _, kt, kf = weight.shape
    offsets = Fq - kf + 1
    dtype = compute_dtype(h)
    patches = patch_rows(h, kt, time_pad, dtype)             # the one copy
    n = patches.shape[0]
    per_clip = n // B
    k = kf * kt
    wt = band_major_weights(weight, dtype)
    new = {"dtype": dtype, "device": h.device}
    buffer = torch.empty(min(rows, n), O, **new)
    if relu_mean:                                            # blocks within one clip, summed into its row
        total = torch.zeros(B, O, dtype=torch.float32, device=h.device)
        running_buffer = torch.empty_like(buffer)
        blocks = [(s, min(s + rows, (b + 1) * per_clip), b) for b in range(B) for s in range(b * per_clip, (b + 1) * per_clip, rows)]
    else:
        out = torch.empty(n, O, **new)
        blocks = [(s, min(s + rows, n), None) for s in range(0, n, rows)]
    for s, e, clip in blocks:
        running, product = (running_buffer if relu_mean else out[s:e])[:e - s], buffer[:e - s]
        torch.mm(patches[s:e, :k], wt, out=running)
        for f in range(1, offsets):
            torch.mm(patches[s:e, f * kt:f * kt + k], wt, out=product)
            torch.maximum(running, product, out=running)
        if relu_mean:
            total[clip] += running.relu_().sum(dim=0, dtype=torch.float32)
    if relu_mean:
        return total / per_clip
    return out.view(B, -1, O).permute(0, 2, 1).unsqueeze(-1)


def _native_ready(h: torch.Tensor, weight: torch.Tensor) -> bool:
    """The native kernel can run this layer: fp32 on a CPU, no gradient to carry (it is opaque to
    autograd), outside a traced graph, and compiled here."""
    return (h.device.type == "cpu" and not torch.compiler.is_compiling() and compute_dtype(h) == torch.float32
            and not _grad(h) and not _grad(weight) and current().native.library() is not None)


def _fills_native_tiles(filters: int) -> bool:
    """At least one full column tile of the kernel: with fewer filters most of its lanes idle."""
    return filters >= current().native.tile_columns()


def _native_patch_max(h: torch.Tensor, weight: torch.Tensor, time_pad: tuple[int, int],
                      relu_mean: bool = False) -> torch.Tensor:
    """conv2d_max_freq by the native kernel (native.py): the patch rows and band-major weights of
    _patch_products_max, each offset's product computed in registers and max-accumulated there.
    h (B, 1, T, F), weight (O, 1, kt, kf) -> (B, O, T', 1), or with relu_mean the time average of
    its ReLU, (B, O), without writing the maps."""
    B, _, _, Fq = h.shape
    O, _, kt, kf = weight.shape
    patches = patch_rows(h, kt, time_pad, torch.float32).contiguous()   # (a view of h where it can be)
    per_clip = patches.shape[0] // B
    kernels = current().native
    packed = kernels.pack_columns(band_major_weights(weight, torch.float32))
    if relu_mean:
        return kernels.patch_max(patches, kt, kf * kt, Fq - kf + 1, packed, O, per_clip=per_clip) / per_clip
    out = kernels.patch_max(patches, kt, kf * kt, Fq - kf + 1, packed, O)
    return out.view(B, per_clip, O).permute(0, 2, 1).unsqueeze(-1)


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


def conv2d_1ch_same_maxpool(h: torch.Tensor, weight: torch.Tensor, pool: tuple[int, int], rows: int = 8,
                            then_elu: bool = False) -> torch.Tensor:
    """A one-channel conv2d with 'same' zero padding (odd kernel) followed by a max-pool, fused.

    h (B, 1, T, F), weight (O, 1, kh, kw), pool (pt, pf) -> (B, O, T // pt, F // pf) in channels_last
    layout. VGG's first layer writes O x T x F values per clip only for the pool to read them back;
    computed a few rows at a time, they are pooled while still in cache (about 2x for that layer),
    and with then_elu rectified by an ELU there too.
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
        # the max over frequency as elementwise maxima of slices, then over time: one amax over
        # both axes runs several times slower
        freq_max = blk[:, :, :, :, 0]
        for j in range(1, pf):
            freq_max = torch.maximum(freq_max, blk[:, :, :, :, j])
        pooled = max_over(freq_max, 2, out[:, s // pt:e // pt])
        if then_elu:
            F.elu_(pooled)
    return out.permute(0, 3, 1, 2)


def conv2d_same_maxpool(h: torch.Tensor, weight: torch.Tensor, pool: tuple[int, int], then_elu: bool = False) -> torch.Tensor:
    """conv2d with 'same' zero padding (odd kernel) followed by a max-pool (and with then_elu an ELU):
    h (B, C, T, F) -> (B, O, T // pt, F // pf).

    Plain form: the conv, then the pool. On a CPU a one-channel input (vgg's first layer) takes
    the fused form above, whose maps never leave the cache; elsewhere the plain form (cuDNN's
    conv + pool is the faster on a GPU, oneDNN's conv on a CPU where it is measured here).
    """
    def plain():
        pooled = F.max_pool2d(F.conv2d(h, weight, padding=(weight.shape[2] // 2, weight.shape[3] // 2)), pool)
        return elu_fresh(pooled) if then_elu else pooled

    candidates = {"plain": plain}
    if h.shape[1] == 1:
        candidates["one_channel"] = lambda: conv2d_1ch_same_maxpool(h, weight, pool, then_elu=then_elu)
        if _native_ready(h, weight):
            candidates["native"] = lambda: _native_1ch_same_maxpool(h, weight, pool, then_elu=then_elu)
    elif not h.is_cuda:
        def shifted():
            pooled = _shifted_products_same_maxpool(h, weight, pool)
            return F.elu_(pooled) if then_elu else pooled
        candidates["shifted"] = shifted
    # the native rows copy pt pf kh kw inputs per pooled position: worth it where its outputs outnumber them
    row_length = pool[0] * pool[1] * weight.shape[2] * weight.shape[3]
    native_pays = "native" in candidates and weight.shape[0] >= row_length and _fills_native_tiles(weight.shape[0])
    default = ("native" if native_pays else "one_channel") if h.shape[1] == 1 and not h.is_cuda else "plain"
    key = shape_key("conv2d_same_maxpool", h, weight, extra=(*pool, then_elu))
    return current().run("conv2d_same_maxpool", key, candidates, default, h.device)


def _native_1ch_same_maxpool(h: torch.Tensor, weight: torch.Tensor, pool: tuple[int, int],
                             then_elu: bool = False) -> torch.Tensor:
    """conv2d_1ch_same_maxpool by the native kernel (native.py): the row of each pooled position
    holds the kh kw patches of the pt pf positions of its window, so the pool is the kernel's
    maximum over offsets, taken in registers. h (B, 1, T, F), weight (O, 1, kh, kw) ->
    (B, O, T // pt, F // pf) in channels_last layout."""
    B, _, T, Fq = h.shape
    O, _, kh, kw = weight.shape
    pt, pf = pool
    To, Fo, k = T // pt, Fq // pf, kh * kw
    xp = F.pad(h[:, 0], (kw // 2, kw // 2, kh // 2, kh // 2))
    patches = xp.unfold(1, kh, 1).unfold(2, kw, 1)[:, :To * pt, :Fo * pf]          # (B, T, F, kh, kw), a view
    windows = patches.reshape(B, To, pt, Fo, pf, kh, kw).permute(0, 1, 3, 2, 4, 5, 6)
    rows = windows.reshape(B * To * Fo, pt * pf * k).contiguous()                  # the one copy
    kernels = current().native
    out = kernels.patch_max(rows, k, k, pt * pf, kernels.pack_columns(weight.reshape(O, k).t()), O)
    maps = out.view(B, To, Fo, O).permute(0, 3, 1, 2)
    return elu_fresh(maps) if then_elu else maps


def _shifted_products_same_maxpool(h: torch.Tensor, weight: torch.Tensor, pool: tuple[int, int],
                                   pooled_rows: int | None = None) -> torch.Tensor:
    """conv2d_same_maxpool as shifted matrix products: h (B, C, T, F) -> (B, O, T // pt, F // pf), channels_last.

    The input is copied once, zero-padded, channels last, and read as rows of C values indexed by
    q = t (F + kw - 1) + f; the output at q is the sum over kernel taps (i, j) of row q + i (F + kw - 1)
    + j times that tap's (C, O) weights: kh kw products of contiguous row ranges (each row's last
    kw - 1 positions are computed and dropped: the padding's columns). A few pooled rows at a time
    the sum stays in cache and is max-pooled there, so the conv's maps are never written.
    """
    B, C, T, Fq = h.shape
    O, _, kh, kw = weight.shape
    pt, pf = pool
    dtype = compute_dtype(h)
    width = Fq + kw - 1
    padded = torch.zeros(B, T + kh, width, C, dtype=dtype, device=h.device)       # one spare zero row: the last taps overreach
    padded[:, kh // 2:kh // 2 + T, kw // 2:kw // 2 + Fq] = h.permute(0, 2, 3, 1)
    rows_of = padded.view(B, -1, C)
    shifts = [i * width + j for i in range(kh) for j in range(kw)]
    taps = tap_weights(weight.flatten(2), dtype)                                   # per tap (i, j), in shifts' order
    To, Fo = T // pt, Fq // pf
    step = pooled_rows or max(1, 1024 // (pt * width))                              # about 1024 output rows a block
    out = torch.empty(B, To, Fo, O, dtype=dtype, device=h.device)
    buffer = torch.empty(min(step, To) * pt * width, O, dtype=dtype, device=h.device)
    for b in range(B):
        for p0 in range(0, To, step):
            p1 = min(p0 + step, To)
            q0, n = p0 * pt * width, (p1 - p0) * pt * width
            acc = shifted_rows_product(buffer[:n], rows_of[b], q0, taps, shifts)
            grid = acc.view(p1 - p0, pt, width, O)[:, :, :Fo * pf].view(p1 - p0, pt, Fo, pf, O)
            freq_max = grid[:, :, :, 0]                                             # maxima of slices: see conv2d_1ch_same_maxpool
            for j in range(1, pf):
                freq_max = torch.maximum(freq_max, grid[:, :, :, j])
            max_over(freq_max, 1, out[b, p0:p1])
    return out.permute(0, 3, 1, 2)


def conv1d_time_major(h: torch.Tensor, weight: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """conv1d of a time-major signal: h (B, T, C), weight (O, C, k), symmetric zero padding -> (B, T', O).

    Run as oneDNN's channels-last conv2d over (B, C, T, 1), which can beat conv1d's (B, C, T)
    layout several times for few channels. The view must carry the stride oneDNN expects on the
    size-1 axis (C, from a permute), or it silently reorders the whole input.
    """
    y = F.conv2d(h.unsqueeze(2).permute(0, 3, 1, 2), weight.unsqueeze(-1), padding=(padding, 0))
    return y.permute(0, 2, 3, 1).squeeze(2)


def conv1d_relu_mean(x: torch.Tensor, weight: torch.Tensor, pad: tuple[int, int] = (0, 0), block: int = 256) -> torch.Tensor:
    """The time average of relu(conv1d) of a one-channel signal, fused: x (B, 1, T), weight (O, 1, k) -> (B, O).

    Plain form: the conv1d, ReLU, mean. window_products: each block of output frames is one matrix product
    of the signal's k-sample windows, rectified and summed while in cache, so the (O x T) map is never
    written; sums in fp32 whatever the autocast dtype. The rule: window products on a CPU, whatever the
    size (oneDNN's conv of a small one-channel map rounds differently with 1 and 2 threads on AVX2, and
    a job's thread count must not change its features); on a GPU the plain form, which pays there.
    """
    xp = F.pad(x[:, 0], pad) if any(pad) else x[:, 0]
    candidates = {"plain": lambda: F.relu(F.conv1d(xp.unsqueeze(1), weight)).mean(dim=2),
                  "window_products": lambda: _window_products_relu_mean(xp, weight, block)}
    default = "plain" if x.is_cuda else "window_products"
    key = shape_key("conv1d_relu_mean", x, weight, extra=pad)
    return current().run("conv1d_relu_mean", key, candidates, default, x.device)


SMALL_MAP = 2 ** 21            # values (8 MB in fp32): a map this small is cheaper written whole than in blocks


def _window_products_relu_mean(xp: torch.Tensor, weight: torch.Tensor, block: int) -> torch.Tensor:
    windows = xp.unfold(1, weight.shape[2], 1)                 # (B, T', k), a view
    wt = weight[:, 0].t()
    n = windows.shape[1]
    if windows.shape[0] * n * weight.shape[0] <= SMALL_MAP:    # one product: fewer calls cost more than the map
        block = n
    total = None
    for s in range(0, n, block):
        part = (windows[:, s:s + block] @ wt).clamp_(min=0).sum(dim=1, dtype=torch.float32)
        total = part if total is None else total.add_(part)
    return total / n


def sample_level_stack(wave: torch.Tensor, conv0: torch.Tensor, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The sample-level stack (SPEC 2): conv k3 s3 + ReLU, then per block conv k3 same + max-pool 3 + ReLU.

    wave (B, T), conv0 (nf, 1, 3), blocks [(nf, nf, 3)] -> the time average of conv0's maps and of
    each block's, [(B, nf)]. Plain form: channel-major conv1d. On a CPU the time-major form:
    conv0 as a matrix product of the audio's 3-sample frames, each block a channels-last conv
    (conv1d_time_major) and the pool a max over a (T/3, 3) view, ReLU in place on fresh maps.
    The pool runs before the ReLU: max(relu(x)) == relu(max(x)).
    """
    candidates = {"plain": lambda: _sample_level_channel_major(wave, conv0, blocks),
                  "time_major": lambda: _sample_level_time_major(wave, conv0, blocks)}
    if not wave.is_cuda:
        candidates["blocked"] = lambda: _sample_level_blocked(wave, conv0, blocks)
    key = shape_key("sample_level_stack", wave, conv0, extra=(len(blocks),))
    return current().run("sample_level_stack", key, candidates, "plain" if wave.is_cuda else "blocked", wave.device)


def _sample_level_blocked(wave, conv0, blocks, rows: int = 1026):
    """Time-major; each block's conv as three shifted matrix products per block of `rows` frames (a
    multiple of 3), pooled, rectified and summed while in cache, so no conv's maps are written; the
    first conv's rows are made block by block where the first block's products read them."""
    dtype = compute_dtype(wave)
    new = {"dtype": dtype, "device": wave.device}
    w0 = conv0[:, 0].t().to(dtype)
    taps = [tap_weights(w, dtype) for w in blocks]
    nf = conv0.shape[0]
    feats: list[list[torch.Tensor]] = []
    for clip in wave:
        frames = clip.shape[0] // 3
        samples = clip[:3 * frames].view(frames, 3).to(dtype)
        first = torch.empty(min(rows, frames) + 2, nf, **new)             # conv0's rows for one block, with its neighbours
        sum0 = torch.zeros(nf, dtype=torch.float32, device=wave.device)
        h = None                                                           # the padded input of the next block
        means = []
        buffer = torch.empty(min(rows, frames), nf, **new)
        for index, block in enumerate(taps):
            pooled = frames // 3
            nxt = torch.empty(pooled + 2, nf, **new)
            nxt[0].zero_()
            nxt[-1].zero_()
            total = torch.zeros(nf, dtype=torch.float32, device=wave.device)
            for s in range(0, 3 * pooled, rows):
                e = min(s + rows, 3 * pooled)
                if index == 0:
                    x, at = _first_conv_rows(samples, w0, s, e, first), 0
                    sum0 += x[1:1 + e - s].sum(dim=0, dtype=torch.float32)
                else:
                    x, at = h, s
                acc = shifted_rows_product(buffer[:e - s], x, at, block)
                out = nxt[1 + s // 3:1 + e // 3]
                max_over(acc.view(-1, 3, nf), 1, out)
                total += out.relu_().sum(dim=0, dtype=torch.float32)
            if index == 0:                                                 # frames past the last pooled triple
                sum0 += samples[3 * pooled:].matmul(w0).relu_().sum(dim=0, dtype=torch.float32)
                means.append(sum0 / frames)
            means.append(total / pooled)
            h, frames = nxt, pooled
        feats.append(means)
    return [torch.stack(per_output) for per_output in zip(*feats)]


def _first_conv_rows(samples: torch.Tensor, w0: torch.Tensor, s: int, e: int, buffer: torch.Tensor) -> torch.Tensor:
    """relu(conv0) of frames s-1 .. e into buffer (zero outside the clip: the next conv's 'same' padding)."""
    out = buffer[:e - s + 2]
    lo, hi = max(s - 1, 0), min(e + 1, samples.shape[0])
    torch.mm(samples[lo:hi], w0, out=out[lo - (s - 1):hi - (s - 1)]).relu_()
    out[:lo - (s - 1)].zero_()
    out[hi - (s - 1):].zero_()
    return out


def _sample_level_channel_major(wave, conv0, blocks):
    h = F.relu(F.conv1d(wave.unsqueeze(1), conv0, stride=3))
    feats = [h.mean(dim=2)]
    for w in blocks:
        h = F.relu(F.max_pool1d(F.conv1d(h, w, padding=1), 3))
        feats.append(h.mean(dim=2))
    return feats


def _sample_level_time_major(wave, conv0, blocks):
    return [h.mean(dim=1) for h in sample_level_maps(wave, conv0, blocks)]


def sample_level_maps(wave: torch.Tensor, conv0: torch.Tensor, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The sample-level stack's maps, time-major (B, positions, nf): conv0 as a matrix product of the audio's
    3-sample frames, each block a channels-last conv, the pool a max over a (T/3, 3) view."""
    B = wave.shape[0]
    frames = wave.shape[1] // 3
    h = (wave[:, :3 * frames].reshape(B, frames, 3) @ conv0[:, 0].t()).relu_()
    maps = [h]
    for w in blocks:
        y = conv1d_time_major(h, w, padding=1)
        frames = y.shape[1] // 3
        h = y[:, :3 * frames].reshape(B, frames, 3, -1).amax(dim=2).relu_()
        maps.append(h)
    return maps


def frame_level_stack(wave: torch.Tensor, fronts: list[tuple[torch.Tensor, tuple[int, int]]], stride: int,
                      backend: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """The frame-level stack (SPEC 2, reference Figure 2): strided front convs + ReLU, concatenated, then the back-end.

    wave (B, n); fronts [(weight (nf_i, 1, k_i), (left, right) zero padding)], all giving the same
    number of frames; backend (w1 (nf, C, 7), w2 (nf, nf, 7), w3 (nf, nf, 7)): conv 7 valid + ReLU,
    conv 7 same + ReLU + residual, max-pool 2, conv 7 same + ReLU + residual -> the time average of
    each front's maps and of the back-end's three outputs, [(B, nf_i)..., (B, nf) x 3].

    Plain form: channel-major conv1d (oneDNN). On a CPU the time-major form: each front a matrix
    product of the signal's frames, and each back-end conv, per block of output frames, seven
    products of shifted rows accumulated in a block that stays in cache, with its ReLU, residual
    sum and average applied there (oneDNN's conv1d runs these shapes well below the GEMM
    library's rate on some hosts).
    """
    candidates = {"plain": lambda: _frame_level_channel_major(wave, fronts, stride, backend)}
    if not wave.is_cuda:
        candidates["time_major"] = lambda: _frame_level_time_major(wave, fronts, stride, backend)
    key = shape_key("frame_level_stack", wave, *(w for w, _ in fronts), *backend,
                          extra=(stride, *(p for _, p in fronts)))
    # time-major pays where the GEMM library runs AVX-512 (bench); on AVX2 hosts oneDNN's conv1d is as fast or 2.5x faster
    rule = "time_major" if not wave.is_cuda and torch.backends.cpu.get_cpu_capability().startswith("AVX512") else "plain"
    return current().run("frame_level_stack", key, candidates, rule, wave.device)


def _frame_level_channel_major(wave, fronts, stride, backend):
    return [time_mean(m) for m in frame_level_maps(wave, fronts, stride, backend)]


def frame_level_maps(wave: torch.Tensor, fronts: list[tuple[torch.Tensor, tuple[int, int]]], stride: int,
                     backend: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """The frame-level stack's maps, channel-major (B, C, positions): each front's, then the back-end's three."""
    x = wave.unsqueeze(1)
    maps = [F.relu(F.conv1d(F.pad(x, pad) if any(pad) else x, w, stride=stride)) for w, pad in fronts]
    h = maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)
    return maps + frame_backend(h, *backend)


def frame_backend(h: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> list[torch.Tensor]:
    """The frame-level back-end on channel-major maps h (B, C, T): its three outputs, each (B, nf, T')."""
    out1 = F.relu(F.conv1d(h, w1))
    out2 = F.relu(F.conv1d(out1, w2, padding=w2.shape[2] // 2)) + out1
    pooled = F.max_pool1d(out2, 2)
    out3 = F.relu(F.conv1d(pooled, w3, padding=w3.shape[2] // 2)) + pooled
    return [out1, out2, out3]


def _frame_level_time_major(wave, fronts, stride, backend, rows: int = 1024):
    dtype = compute_dtype(wave)
    new = {"dtype": dtype, "device": wave.device}
    widths = [w.shape[0] for w, _ in fronts]
    front_weights = [w[:, 0].t().contiguous().to(dtype) for w, _ in fronts]            # (k_i, nf_i)
    taps = [tap_weights(w, dtype) for w in backend]
    k = backend[0].shape[2]
    half = k // 2
    feats: list[list[torch.Tensor]] = []
    for clip in wave:
        frames = [(F.pad(clip, pad) if any(pad) else clip).unfold(0, w.shape[2], stride) for w, pad in fronts]
        n = frames[0].shape[0]
        h = torch.empty(n, sum(widths), **new)
        col = 0
        for f, wt in zip(frames, front_weights):
            torch.mm(f.to(dtype), wt, out=h[:, col:col + wt.shape[1]])
            col += wt.shape[1]
        h.relu_()
        means = [m.float().mean(dim=0) for m in h.split(widths, dim=1)]
        n1 = n - k + 1
        out1 = torch.zeros(n1 + 2 * half, taps[0][0].shape[1], **new)     # zero rows: the next conv's 'same' padding
        means.append(_shifted_products(h, taps[0], out1[half:half + n1], rows) / n1)
        out2 = torch.empty(n1, out1.shape[1], **new)
        means.append(_shifted_products(out1, taps[1], out2, rows, residual=out1[half:half + n1]) / n1)
        n3 = n1 // 2
        pooled = torch.zeros(n3 + 2 * half, out1.shape[1], **new)
        max_over(out2[:2 * n3].view(n3, 2, -1), 1, pooled[half:half + n3])
        means.append(_shifted_products(pooled, taps[2], None, rows, residual=pooled[half:half + n3]) / n3)
        feats.append(means)
    return [torch.stack(per_output) for per_output in zip(*feats)]


def _shifted_products(x: torch.Tensor, taps: list[torch.Tensor], out: torch.Tensor | None, rows: int,
                      residual: torch.Tensor | None = None) -> torch.Tensor:
    """relu(valid conv1d of time-major x (T, C) with taps [(C, O)] * k) (+ residual), written to out
    (T - k + 1, O) when given; returns the fp32 column sums. Block by block, so each block's
    accumulation, ReLU, residual sum and sum happen while it is in cache."""
    n = x.shape[0] - len(taps) + 1
    buffer = None if out is not None else torch.empty(min(rows, n), taps[0].shape[1], dtype=x.dtype, device=x.device)
    total = torch.zeros(taps[0].shape[1], dtype=torch.float32, device=x.device)
    for s in range(0, n, rows):
        e = min(s + rows, n)
        acc = shifted_rows_product(out[s:e] if out is not None else buffer[:e - s], x, s, taps)
        acc.relu_()
        if residual is not None:
            acc.add_(residual[s:e])
        total += acc.sum(dim=0, dtype=torch.float32)
    return total
