"""Front-ends declared in config: a layer list, checked against the input's shape at build time.

A declared front-end is a list of layers applied in order. Any layer with ``feature: true``
contributes the average of each of its output maps (over time, or time x frequency) to
the feature vector, in the order the layers run.

input (shapes are (channels, *spatial), time first):
    waveform          (1, n_samples)            1-D convs over the audio
    logmel            (1, n_frames, n_mels)     2-D convs over the log-mel "image"
    envelope          (1, n_frames)             the log-mel averaged over the bands (temporal models)
    logmel_channels   (n_mels, n_frames)        1-D convs with the bands as input channels

layers (every key but 'type' optional unless marked):
    {type: conv1d, filters*, kernel*, stride: 1, padding: valid|same|[left, right]}
    {type: conv2d, filters*, kernel*: [t, f], stride: 1|[t, f], padding: valid|same|[[t0, t1], [f0, f1]]}
    {type: maxpool|avgpool, kernel*: k|[t, f] ('all' = the whole remaining axis), stride: = kernel}
    {type: relu|elu|tanh|sigmoid|identity}
    {type: branches, branches*: [[layers], [layers], ...], merge: concat|none}
        parallel paths from the same input, concatenated along channels (their other axes must match)
    {type: residual, layers*: [layers]}     output = input + layers(input); the shapes must match
    and on any layer: feature: true, name: <label for messages and describe>.

filters may be an integer or an expression of nf, the width's filter count: "nf", "2*nf",
"4*nf - nf//4". 'same' padding is TensorFlow's (output = ceil(input / stride), extra on the right).
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Frontend, FrontendConfigError, same_padding, time_mean
from .speed import ops

INPUTS = ("waveform", "logmel", "envelope", "logmel_channels")
ACTIVATIONS = {"relu": F.relu, "elu": ops.elu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda x: x}
LAYER_KEYS = {
    "conv1d": {"filters", "kernel", "stride", "padding"},
    "conv2d": {"filters", "kernel", "stride", "padding"},
    "maxpool": {"kernel", "stride"},
    "avgpool": {"kernel", "stride"},
    "branches": {"branches", "merge"},
    "residual": {"layers"},
    **{a: set() for a in ACTIVATIONS},
}
COMMON_KEYS = {"type", "feature", "name"}


# ----------------------------------------------------------------------------- helpers
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv, ast.USub: operator.neg}


def eval_filters(expr: Any, nf: int | None, where: str) -> int:
    """An integer, or an arithmetic expression of nf (+ - * // and parentheses only)."""
    if isinstance(expr, bool):
        raise FrontendConfigError(f"{where}.filters={expr!r}: use an integer or an expression of nf")
    if isinstance(expr, int):
        value = expr
    else:
        def ev(node):
            if isinstance(node, ast.Expression):
                return ev(node.body)
            if isinstance(node, ast.Constant) and isinstance(node.value, int):
                return node.value
            if isinstance(node, ast.Name) and node.id == "nf":
                if nf is None:
                    raise FrontendConfigError(f"{where}.filters uses nf, but the front-end has no widths")
                return nf
            if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
                return _OPS[type(node.op)](ev(node.left), ev(node.right))
            if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
                return _OPS[type(node.op)](ev(node.operand))
            raise FrontendConfigError(f"{where}.filters={expr!r}: only integers, nf, + - * // and ( ) are allowed")

        try:
            value = ev(ast.parse(str(expr), mode="eval"))
        except SyntaxError as exc:
            raise FrontendConfigError(f"{where}.filters={expr!r} is not an expression of nf: {exc.msg}") from None
    if value < 1:
        raise FrontendConfigError(f"{where}.filters={expr!r} gives {value} filters (nf={nf}); it must be >= 1")
    return int(value)


def _tuple(value, n: int, where: str, key: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise FrontendConfigError(f"{where}.{key}={list(value)}: give {n} value(s) for a {n}-D layer")
        return tuple(value)
    return (value,) * n


def _fmt(shape: tuple) -> str:
    return f"{shape[0]} channel(s) x {' x '.join(map(str, shape[1:]))}"


# ----------------------------------------------------------------------------- layer modules
class Conv(nn.Module):
    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel: tuple, stride: tuple, padding):
        super().__init__()
        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        self.conv = cls(in_ch, out_ch, kernel if dims == 2 else kernel[0], stride=stride if dims == 2 else stride[0], bias=False)
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def full_height(self, h) -> bool:
        """A one-channel 2-D conv whose kernel spans every band: a 1-D conv with the bands as channels."""
        return (isinstance(self.conv, nn.Conv2d) and self.conv.in_channels == 1 and self.padding == "valid"
                and self.kernel[1] == h.shape[3] and self.stride == (1, 1))

    def forward(self, h):
        if self.full_height(h):
            return ops.conv2d_max_freq(h, self.conv.weight)     # one frequency offset: the max is the conv
        if self.padding == "same":
            pads = []
            for axis in reversed(range(len(self.kernel))):       # F.pad lists the last axis first
                pads += list(same_padding(self.kernel[axis], self.stride[axis], h.shape[2 + axis]))
            if any(pads):
                h = F.pad(h, pads)
        elif self.padding != "valid":
            pads = []
            for pair in reversed(self.padding):
                pads += list(pair)
            if any(pads):
                h = F.pad(h, pads)
        return self.conv(h)


class ConvMaxFreq(nn.Module):
    """A one-channel conv2d (valid in frequency) followed by a max-pool over all remaining frequency (see ops)."""

    def __init__(self, conv: Conv):
        super().__init__()
        self.inner = conv
        self.time_pad = (0, 0) if conv.padding == "valid" else tuple(conv.padding[0])

    def forward(self, h):
        return ops.conv2d_max_freq(h, self.inner.conv.weight, self.time_pad)


class ConvMaxFreqReluMean(nn.Module):
    """ConvMaxFreq + ReLU at the end of a path whose maps are only averaged (see ops)."""

    def __init__(self, fused: ConvMaxFreq):
        super().__init__()
        self.inner = fused.inner
        self.time_pad = fused.time_pad

    def forward(self, h):
        return ops.conv2d_max_freq_relu_mean(h, self.inner.conv.weight, self.time_pad)


class ConvReluMean(nn.Module):
    """A one-channel conv1d (stride 1) + ReLU at the end of a path whose maps are only averaged (see ops)."""

    def __init__(self, conv: Conv, in_shape: tuple):
        super().__init__()
        self.inner = conv
        k = conv.kernel[0]
        self.pad = (same_padding(k, 1, in_shape[1]) if conv.padding == "same"
                    else (0, 0) if conv.padding == "valid" else tuple(conv.padding[0]))

    def forward(self, h):
        return ops.conv1d_relu_mean(h, self.inner.conv.weight, self.pad)


def averaged_only(conv: nn.Module, act: nn.Module) -> bool:
    """conv1d (one input channel, stride 1) then a ReLU whose output is a feature and feeds nothing."""
    return (isinstance(conv, Conv) and isinstance(conv.conv, nn.Conv1d) and conv.conv.in_channels == 1
            and conv.stride == (1,) and isinstance(act, Activation) and act.kind == "relu")


def fusable(conv: nn.Module, pool: nn.Module, in_shape: tuple) -> bool:
    """conv2d (one input channel, stride 1, no padding in frequency) then a max-pool over all its frequency offsets."""
    return (isinstance(conv, Conv) and isinstance(pool, Pool) and isinstance(conv.conv, nn.Conv2d)
            and conv.conv.in_channels == 1 and conv.stride == (1, 1)
            and (conv.padding == "valid" or (conv.padding != "same" and tuple(conv.padding[1]) == (0, 0)))
            and pool.kind == "maxpool" and pool.kernel[0] == 1 and pool.stride[0] == 1
            and pool.kernel[1] == in_shape[2] - conv.kernel[1] + 1)


class Pool(nn.Module):
    def __init__(self, kind: str, kernel: tuple, stride: tuple):
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, h):
        if len(self.kernel) == 1:
            fn = F.max_pool1d if self.kind == "maxpool" else F.avg_pool1d
            return fn(h, self.kernel[0], self.stride[0])
        fn = F.max_pool2d if self.kind == "maxpool" else F.avg_pool2d
        return fn(h, self.kernel, self.stride)


class Activation(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, h):
        return ACTIVATIONS[self.kind](h)


class Sequence(nn.Module):
    """Layers in order; collects the averaged maps of the layers marked as features."""

    def __init__(self, layers: list[nn.Module], feature_flags: list[bool]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.feature_flags = feature_flags

    def forward(self, h, feats: list):
        for layer, is_feature in zip(self.layers, self.feature_flags):
            if isinstance(layer, (ConvReluMean, ConvMaxFreqReluMean)):   # last layer, already averaged; h is not used after it
                feats.append(layer(h))
                continue
            h = layer(h, feats) if isinstance(layer, (Branches, Residual)) else layer(h)
            if is_feature:
                feats.append(time_mean(h))
        return h


class Branches(nn.Module):
    def __init__(self, paths: list[Sequence], merge: str):
        super().__init__()
        self.paths = nn.ModuleList(paths)
        self.merge = merge

    def forward(self, h, feats):
        outs = [p(h, feats) for p in self.paths]
        return torch.cat(outs, dim=1) if self.merge == "concat" else h


class Residual(nn.Module):
    def __init__(self, body: Sequence):
        super().__init__()
        self.body = body

    def forward(self, h, feats):
        return h + self.body(h, feats)


# ----------------------------------------------------------------------------- the builder
class _Builder:
    def __init__(self, name: str, nf: int | None):
        self.name, self.nf, self.feature_dim = name, nf, 0

    def fail(self, where: str, msg: str):
        raise FrontendConfigError(f"frontend {self.name!r}: {where}: {msg}")

    def sequence(self, specs, shape: tuple, where: str, output_used: bool = True) -> tuple[Sequence, tuple]:
        """The layers of a path; output_used=False: only its feature maps matter (merge: none, the top level)."""
        if not isinstance(specs, (list, tuple)) or not specs:
            self.fail(where, "needs a non-empty list of layers")
        modules, flags, in_shapes = [], [], []      # in_shapes: each module's input shape (for the fusions)
        for i, spec in enumerate(specs):
            in_shape = shape
            module, shape = self.layer(spec, shape, f"{where}[{i}]")
            is_feature = bool(spec.get("feature", False))
            if modules and not flags[-1] and fusable(modules[-1], module, in_shapes[-1]):
                modules[-1], flags[-1] = ConvMaxFreq(modules[-1]), is_feature   # conv + max over frequency
            else:
                modules.append(module)
                flags.append(is_feature)
                in_shapes.append(in_shape)
            if is_feature:
                self.feature_dim += shape[0]
        if (not output_used and len(modules) >= 2 and flags[-1] and not flags[-2]
                and averaged_only(modules[-2], modules[-1])):
            modules[-2:], flags[-2:] = [ConvReluMean(modules[-2], in_shapes[-2])], [True]   # conv + ReLU + average
        elif (not output_used and len(modules) >= 2 and flags[-1] and not flags[-2] and isinstance(modules[-2], ConvMaxFreq)
                and isinstance(modules[-1], Activation) and modules[-1].kind == "relu"):
            modules[-2:], flags[-2:] = [ConvMaxFreqReluMean(modules[-2])], [True]   # conv + max over frequency + ReLU + average
        return Sequence(modules, flags), shape

    def layer(self, spec, shape: tuple, where: str) -> tuple[nn.Module, tuple]:
        if not isinstance(spec, dict) or "type" not in spec:
            self.fail(where, f"each layer is a mapping with a 'type' (one of {sorted(LAYER_KEYS)}), got {spec!r}")
        kind = spec["type"]
        label = f"{where} ({kind}{', ' + spec['name'] if spec.get('name') else ''})"
        if kind not in LAYER_KEYS:
            self.fail(where, f"unknown layer type {kind!r}; use one of {sorted(LAYER_KEYS)} "
                             f"(change frontend.model.{where}.type)")
        unknown = set(spec) - LAYER_KEYS[kind] - COMMON_KEYS
        if unknown:
            self.fail(label, f"unknown key(s) {sorted(unknown)}; a {kind} layer takes {sorted(LAYER_KEYS[kind] | COMMON_KEYS)}")
        if kind in ("conv1d", "conv2d"):
            return self.conv(spec, shape, where, label, 1 if kind == "conv1d" else 2)
        if kind in ("maxpool", "avgpool"):
            return self.pool(spec, shape, where, label, kind)
        if kind in ACTIVATIONS:
            return Activation(kind), shape
        if kind == "residual":
            body, out = self.sequence(spec.get("layers"), shape, f"{where}.layers")
            if out != shape:
                self.fail(label, f"the residual body maps {_fmt(shape)} to {_fmt(out)}; they must match to be added "
                                 f"(use padding: same and the input's channel count in frontend.model.{where}.layers)")
            return Residual(body), shape
        # branches
        merge = spec.get("merge", "concat")
        if merge not in ("concat", "none"):
            self.fail(label, f"merge={merge!r}: use concat or none")
        paths, outs = [], []
        for j, sub in enumerate(spec.get("branches") or []):
            path, out = self.sequence(sub, shape, f"{where}.branches[{j}]", output_used=merge == "concat")
            paths.append(path)
            outs.append(out)
        if not paths:
            self.fail(label, "needs a list of branches (each a list of layers)")
        if merge == "concat":
            rest = {o[1:] for o in outs}
            if len(rest) > 1:
                detail = "; ".join(f"branches[{j}] -> {_fmt(o)}" for j, o in enumerate(outs))
                self.fail(label, f"branch outputs differ outside the channel axis and cannot be concatenated: {detail}. "
                                 f"Pool or pad the branches to one length (frontend.model.{where}.branches), "
                                 f"or set merge: none if nothing follows")
            return Branches(paths, merge), (sum(o[0] for o in outs), *outs[0][1:])
        return Branches(paths, merge), shape

    def conv(self, spec, shape, where, label, dims):
        if len(shape) - 1 != dims:
            self.fail(label, f"a {dims}-D conv cannot take a {len(shape) - 1}-D input ({_fmt(shape)}); "
                             f"use conv{len(shape) - 1}d or another input kind")
        for key in ("filters", "kernel"):
            if key not in spec:
                self.fail(label, f"missing key '{key}' (frontend.model.{where}.{key})")
        out_ch = eval_filters(spec["filters"], self.nf, f"frontend.model.{where}")
        kernel = _tuple(spec["kernel"], dims, where, "kernel")
        stride = _tuple(spec.get("stride", 1), dims, where, "stride")
        if not all(isinstance(k, int) and k >= 1 for k in kernel + stride):
            self.fail(label, f"kernel {list(kernel)} and stride {list(stride)} must be positive integers")
        padding = spec.get("padding", "valid")
        sizes = list(shape[1:])
        if padding == "same":
            out = [math.ceil(n / s) for n, s in zip(sizes, stride)]
        else:
            if padding == "valid":
                pads = [(0, 0)] * dims
            else:
                pads = [tuple(p) for p in (padding if dims == 2 else [padding])]
                if len(pads) != dims or any(len(p) != 2 or min(p) < 0 for p in pads):
                    self.fail(label, f"padding={padding!r}: use valid, same, "
                                     + ("[left, right]" if dims == 1 else "[[top, bottom], [left, right]]"))
                padding = pads
            padded = [n + a + b for n, (a, b) in zip(sizes, pads)]
            if any(k > n for k, n in zip(kernel, padded)):
                self.fail(label, f"kernel {list(kernel)} is larger than its input ({_fmt(shape)}"
                                 f"{', padded to ' + 'x'.join(map(str, padded)) if padded != sizes else ''}). "
                                 f"Change frontend.model.{where}.kernel (at most {padded}) or its padding")
            out = [(n - k) // s + 1 for n, k, s in zip(padded, kernel, stride)]
        return Conv(dims, shape[0], out_ch, kernel, stride, padding), (out_ch, *out)

    def pool(self, spec, shape, where, label, kind):
        dims = len(shape) - 1
        if "kernel" not in spec:
            self.fail(label, f"missing key 'kernel' (frontend.model.{where}.kernel)")
        kernel = list(_tuple(spec["kernel"], dims, where, "kernel"))
        kernel = [n if k == "all" else k for k, n in zip(kernel, shape[1:])]
        stride = list(_tuple(spec.get("stride", None), dims, where, "stride"))
        stride = [k if s is None else (n if s == "all" else s) for s, k, n in zip(stride, kernel, shape[1:])]
        if not all(isinstance(k, int) and k >= 1 for k in kernel + stride):
            self.fail(label, f"kernel {kernel} and stride {stride} must be positive integers or 'all'")
        if any(k > n for k, n in zip(kernel, shape[1:])):
            self.fail(label, f"pool {kernel} is larger than its input ({_fmt(shape)}). "
                             f"Change frontend.model.{where}.kernel (at most {list(shape[1:])}, or 'all')")
        out = [(n - k) // s + 1 for n, k, s in zip(shape[1:], kernel, stride)]
        return Pool(kind, tuple(kernel), tuple(stride)), (shape[0], *out)


class Declared(Frontend):
    """A front-end built from a layer list (see the module docstring)."""

    def __init__(self, layers: list, input: str = "logmel", nf: int | None = None, name: str = "custom",
                 n_samples: int = 350000, n_frames: int = 1376, n_mels: int = 96, channels_last: bool = False):
        super().__init__()
        if input not in INPUTS:
            raise FrontendConfigError(f"frontend {name!r}: input={input!r} is not allowed; use one of {list(INPUTS)} "
                                      f"(frontend.model.input)")
        self.input = input
        self.input_kind = "waveform" if input == "waveform" else "logmel"
        shape = {"waveform": (1, n_samples), "logmel": (1, n_frames, n_mels), "envelope": (1, n_frames),
                 "logmel_channels": (n_mels, n_frames)}[input]
        builder = _Builder(name, nf)
        self.body, self.output_shape = builder.sequence(list(layers), shape, "layers", output_used=False)
        if builder.feature_dim == 0:
            raise FrontendConfigError(f"frontend {name!r}: no layer has feature: true, so the feature vector "
                                      f"would be empty; mark the outputs to average (frontend.model.layers[i].feature)")
        self.feature_dim = builder.feature_dim
        self.channels_last = channels_last and input == "logmel"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input == "waveform":
            return x.unsqueeze(1)
        if self.input == "envelope":
            return x.mean(dim=2).unsqueeze(1)
        if self.input == "logmel_channels":
            return x.transpose(1, 2)
        h = x.unsqueeze(1)
        return h.contiguous(memory_format=torch.channels_last) if self.channels_last else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = []
        self.body(self.prepare(x), feats)
        return torch.cat(feats, dim=1)
