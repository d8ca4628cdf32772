"""Training-free predictors from neural-architecture search, scored on one minibatch at initialisation.

Each takes the network the train stage would train (inputs -> logits, at its initial weights) and returns one
number per architecture; a higher number predicts a better trained model. Implemented from the papers, as
SamsungLabs/zero-cost-nas computes them (Abdelfattah et al., ICLR 2021):

    naswot     log|det K|, K[i, j] = number of rectifier units on the same side of 0 for inputs i and j
               (Mellor et al., "Neural architecture search without training", ICML 2021)
    synflow    sum |theta * dR/dtheta|, R = sum of the outputs of the network with every parameter replaced by its
               absolute value, on an all-ones input, in float64 (Tanaka et al., NeurIPS 2020)
    snip       sum |theta * dL/dtheta|, L the minibatch's cross-entropy (Lee et al., ICLR 2019)
    grad_norm  sum over weight tensors of ||dL/dW||_2
    jacob_cov  -sum_i log(v_i + k) + 1/(v_i + k), v the eigenvalues of the correlation matrix of the per-input
               Jacobians d(sum of logits)/d(input), k = 1e-5 (Mellor et al. 2020, v1)
    fisher     sum over layers and output channels of 0.5 * mean_n (sum over positions of a * dL/da)^2, a a conv's
               or linear layer's output (Turner et al., ICLR 2020; Theis et al. 2018), each channel's term counted
               once per weight of the channel (its fan-in), as zero-cost-nas sums its per-weight array
    params     the number of trainable parameters
    flops      multiply-accumulates of one forward pass on one input

"Weights" (snip, grad_norm, synflow) are the parameters with two or more dimensions: conv kernels and linear
weights, as zero-cost-nas sums over Conv2d/Linear weights. Fisher's per-channel sum over positions of a * dL/da
is computed from the parameters, sum_k w_k dL/dw_k + b dL/db (the same number for a layer linear in its weights,
whatever follows it), so fused forms that never write the maps still give it.

Differences from the NAS code, for a random audio front-end:
    - the network runs in evaluation mode (dropout off: the score is a function of the weights and the batch);
    - synflow linearises the front-end and the linear head, and leaves out the two fixed affine maps in between
      (the input standardisation and the read-out standardisation, which have no parameters to score).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from ..config import PROXY_NAMES as NAMES
from ..frontends.speed import current as speed_policy

DATA_FREE = ("synflow", "params", "flops")       # need no data, so no statistics of the training part
JACOB_K = 1e-5
# the calls whose output sign is NASWOT's code: every rectifier the front-ends use, functional or in place
RECTIFIERS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.elu, F.elu_}


class ProxyNet(nn.Module):
    """inputs -> logits: a fixed map before (input standardisation), the front-end, a fixed map after
    (read-out standardisation), the linear head. Only front-end and head carry scored parameters."""

    def __init__(self, body: nn.Module, head: nn.Linear, before: Callable | None = None, after: nn.Module | None = None):
        super().__init__()
        self.body, self.head = body, head
        self.before = before
        self.after = after if after is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.before is not None:
            x = self.before(x)
        with speed_policy().using("plain"):     # differentiable forms, and the same numbers with or without grad
            h = self.body(x)
        return self.head(self.after(h))

    def scored(self) -> list[nn.Parameter]:
        return [p for p in list(self.body.parameters()) + list(self.head.parameters()) if p.requires_grad]


def weights(net: ProxyNet) -> list[nn.Parameter]:
    return [p for p in net.scored() if p.dim() >= 2]


def layers(net: ProxyNet) -> list[tuple[nn.Parameter, nn.Parameter | None]]:
    """(weight, bias or None) of every module that owns a weight of two or more dimensions (conv, linear)."""
    out = []
    for module in list(net.body.modules()) + [net.head]:
        w = module._parameters.get("weight")
        if w is not None and w.dim() >= 2 and w.requires_grad:
            out.append((w, module._parameters.get("bias")))
    return out


# ----------------------------------------------------------------------------- NASWOT
class RectifierCodes(TorchFunctionMode):
    """Accumulates NASWOT's kernel from every rectifier call: c (N, units) in {0, 1}, K += c c' + (1-c)(1-c)'."""

    def __init__(self, n: int):
        super().__init__()
        self.K = torch.zeros(n, n, dtype=torch.float64)
        self.units = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in RECTIFIERS and isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] == self.K.shape[0]:
            c = (out.detach() > 0).flatten(1).to(torch.float64).cpu()
            self.K += c @ c.T + (1 - c) @ (1 - c).T
            self.units += c.shape[1]
        return out


def naswot_kernel(net: ProxyNet, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(K, number of rectifier units per input) of one minibatch."""
    codes = RectifierCodes(x.shape[0])
    with torch.no_grad(), codes:
        net(x)
    return codes.K, codes.units


def naswot(net: ProxyNet, x: torch.Tensor) -> float:
    K, units = naswot_kernel(net, x)
    if units == 0:
        return float("nan")             # no rectifier: the score is undefined
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if sign > 0 else float("-inf")


# ----------------------------------------------------------------------------- synflow
def synflow_per_weight(net: ProxyNet, x: torch.Tensor) -> tuple[list[float], float]:
    """(sum |theta * dR/dtheta| of each weight tensor, R) of the linearised network on an all-ones input."""
    body, head = copy.deepcopy(net.body).double(), copy.deepcopy(net.head).double()
    with torch.no_grad():
        for p in list(body.parameters()) + list(head.parameters()):
            p.abs_()
    linear = ProxyNet(body, head)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    with torch.enable_grad():
        out = linear(ones).sum()
        grads = torch.autograd.grad(out, weights(linear), allow_unused=True)
    with torch.no_grad():
            return [float((w * g).abs().sum()) if g is not None else 0.0 for w, g in zip(weights(linear), grads)], float(out)


def synflow(net: ProxyNet, x: torch.Tensor) -> float:
    return float(sum(synflow_per_weight(net, x)[0]))


# ----------------------------------------------------------------------------- gradient proxies
@dataclass
class GradientScores:
    snip: float
    grad_norm: float
    fisher: float
    jacob_cov: float


def jacob_cov_score(jacobians: np.ndarray, k: float = JACOB_K) -> float:
    """zero-cost-nas's eval_score: -sum(log(v + k) + 1/(v + k)) over the eigenvalues of the rows' correlations."""
    corrs = np.corrcoef(np.asarray(jacobians, np.float64))
    if not np.isfinite(corrs).all():
        return float("nan")             # an input with a constant Jacobian: no correlation
    v = np.linalg.eigvalsh(corrs)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def gradient_scores(net: ProxyNet, x: torch.Tensor, y: torch.Tensor) -> GradientScores:
    """snip, grad_norm, fisher (of the minibatch's mean cross-entropy) and jacob_cov, one input at a time:
    the network treats its inputs independently, so the minibatch's gradient is the sum of the inputs' and
    fisher's per-input terms come without hooks."""
    n = x.shape[0]
    params = net.scored()
    index = {id(p): i for i, p in enumerate(params)}
    pairs = layers(net)
    total = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    fisher = 0.0
    fisher_channels = [torch.zeros(w.shape[0], dtype=torch.float64) for w, _ in pairs]
    jacobians = []
    with torch.enable_grad():
        for i in range(n):
            xi = x[i:i + 1].detach().clone().requires_grad_(True)
            logits = net(xi)
            loss = F.cross_entropy(logits, y[i:i + 1]) / n       # its share of the minibatch's mean loss
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            for t, g in zip(total, grads):
                t += g.double()
            for j, (w, b) in enumerate(pairs):
                s = (w.double() * grads[index[id(w)]].double()).flatten(1).sum(1)
                if b is not None and id(b) in index:
                    s = s + b.double() * grads[index[id(b)]].double()
                fisher_channels[j] += 0.5 * s.detach().cpu() ** 2 / n
            (jac,) = torch.autograd.grad(logits.sum(), xi)
            jacobians.append(jac.detach().double().flatten().cpu().numpy())
    # zero-cost-nas gives each channel's value to every weight of that channel, then sums the weights
    fisher = float(sum(c.sum() * w[0].numel() for c, (w, _) in zip(fisher_channels, pairs)))
    kept = [(p.detach().double(), t) for p, t in zip(params, total) if p.dim() >= 2]      # the weights
    snip = float(sum((p * t).abs().sum() for p, t in kept))
    grad_norm = float(sum(t.norm() for _, t in kept))
    return GradientScores(snip=snip, grad_norm=grad_norm, fisher=fisher, jacob_cov=jacob_cov_score(np.stack(jacobians)))


# ----------------------------------------------------------------------------- size
def n_params(net: ProxyNet) -> int:
    return int(sum(p.numel() for p in net.scored()))


def macs(net: ProxyNet, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on one input, counted on the meta device (shapes only)."""
    meta = copy.deepcopy(net).to("meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(torch.zeros((1, *example.shape[1:]), device="meta"))
    return int(counter.get_total_flops()) // 2


# ----------------------------------------------------------------------------- all of them
def score(net: ProxyNet, x: torch.Tensor, y: torch.Tensor, names=NAMES) -> dict[str, dict]:
    """name -> {"value": float, "seconds": float} for each asked proxy, on the minibatch (x, y)."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown proxies {unknown}; known: {list(NAMES)}")
    net = net.eval()
    out: dict[str, dict] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        out[name] = {"value": float(value), "seconds": round(time.perf_counter() - t0, 4)}

    if "naswot" in names:
        timed("naswot", lambda: naswot(net, x))
    if "synflow" in names:
        timed("synflow", lambda: synflow(net, x))
    asked = [n for n in ("snip", "grad_norm", "fisher", "jacob_cov") if n in names]
    if asked:
        t0 = time.perf_counter()
        scores = gradient_scores(net, x, y)
        seconds = round(time.perf_counter() - t0, 4)
        for n in asked:             # one pass gives all four: each is charged the pass
            out[n] = {"value": float(getattr(scores, n)), "seconds": seconds}
    if "params" in names:
        timed("params", lambda: n_params(net))
    if "flops" in names:
        timed("flops", lambda: macs(net, x))
    return {n: out[n] for n in names}
