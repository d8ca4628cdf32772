"""make bench, section ceiling: each front-end's GEMM ceiling: torch.mm timed at every convolution's im2col shape
(the batch extraction uses), as a fraction of the matmul rate, as one product with a fresh output and in
blocks of 1024 rows into a reused buffer (how the blocked forms run them): what a convolution form built on
matrix products can reach on this host; and for the layers max-pooled over frequency (7x96, 7x86, timbral
branches) their products alone, with the running maximum over the offsets, and as extracted"""
from __future__ import annotations

import functools
import math
import time

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from elmarc.describe import paper_example
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.frontends import build_frontend
from elmarc.frontends.musical import Musical
from elmarc.frontends.spectrogram import Conv7xN
from elmarc.frontends.speed import SpeedPolicy, ops
from elmarc.frontends.speed.ops import direct_convolution

from .common import markdown_table, sync, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    md: list[str] = []
    print("ceiling: matrix products at each convolution's im2col shape", flush=True)
    names = set(filter(None, args.frontends.split(",")))
    df = bench_ceiling(args.widths.split(","), names, mm, dev)
    df.to_csv(args.out / "ceiling.csv", index=False)
    md += ["## GEMM ceiling: torch.mm at each convolution's im2col shape, one product with a fresh output and "
           "blocks of 1024 rows into a reused buffer (what a form built on matrix products can reach here)", "",
           markdown_table(df), ""]
    if dev.type == "cpu":                         # the patch products are a CPU form
        print("ceiling: the layers max-pooled over frequency, products / + running maximum / as extracted", flush=True)
        freq = bench_max_freq(args.widths.split(","), names, mm, dev)
        md += table_lines(args.out, "ceiling_max_freq", "Layers max-pooled over frequency: their products alone, with the running maximum, and as "
               "extracted (fractions of matmul)", freq)
    return md


def conv_gemm_shapes(model: torch.nn.Module, example: torch.Tensor) -> list[tuple[int, int, int]]:
    """(M, K, N) of each convolution's im2col matrix product, from a plain forward on meta tensors:
    M output positions x batch, K input channels x kernel size (per group), N output channels (per group);
    a grouped convolution counts as that many products."""



    calls = []

    class Convolutions(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.convolution.default:
                weight, groups = args[1], int(args[8])
                m, k, n = out.shape[0] * math.prod(out.shape[2:]), math.prod(weight.shape[1:]), weight.shape[0] // groups
                calls.extend([(m, k, n)] * groups)
            return out

    with direct_convolution(), torch.no_grad(), Convolutions():
        model(example)
    return calls


def matmul_seconds(m: int, k: int, n: int, dev, min_seconds: float = 0.2, rows: int | None = None) -> float:
    """Seconds of an (m x k) @ (k x n) product: one torch.mm with a fresh output (rows=None), or, with
    rows, blocks of that many rows into one reused output buffer (as the blocked forms run them)."""
    block = m if rows is None else min(rows, m)
    a, b = torch.randn(block, k, device=dev), torch.randn(k, n, device=dev)
    out = None if rows is None else torch.empty(block, n, device=dev)
    run = (lambda: torch.mm(a, b)) if out is None else (lambda: torch.mm(a, b, out=out))
    run()
    sync(dev)
    count, t0 = 0, time.perf_counter()
    while True:
        run()
        sync(dev)
        count += 1
        if time.perf_counter() - t0 >= min_seconds:
            return (time.perf_counter() - t0) / count * m / block


def bench_ceiling(widths, names, mm: float, dev, rows: int = 1024) -> pd.DataFrame:
    """Per front-end x width: the rate torch.mm reaches on its convolutions' im2col shapes, one batch:
    as one product with a fresh output, and in blocks of `rows` rows into a reused buffer."""
    rows_out = []
    for name, cfg in frontend_configs().items():
        if (names and name not in names) or not cfg.get("widths"):
            continue
        for width in widths:
            model = build_frontend(cfg, width, seed=0).to("meta")
            batch = int((cfg.gpu_batch_size if dev.type == "cuda" else cfg.batch_size)[width])
            example = paper_example(model.input_kind)
            shapes = conv_gemm_shapes(model, example.expand(batch, *example.shape[1:]))
            macs = sum(m * k * n for m, k, n in shapes)
            row = {"frontend": name, "width": width, "batch": batch, "convolutions": len(shapes)}
            for label, block in (("one_product", None), ("blocks", rows)):
                timed = {s: matmul_seconds(*s, dev, rows=block) for s in set(shapes)}     # each distinct shape timed once
                gflops = 2 * macs / sum(timed[s] for s in shapes) / 1e9
                worst = min(timed, key=lambda s: s[0] * s[1] * s[2] / timed[s])
                row |= {f"{label}_fraction_of_matmul": round(gflops / mm, 3), f"{label}_slowest_MxKxN": "x".join(map(str, worst)),
                        f"{label}_slowest_fraction": round(2 * worst[0] * worst[1] * worst[2] / timed[worst] / 1e9 / mm, 3)}
            rows_out.append(row)
            print(f"  {name:<18} {width:<5} batch {batch:<3} {len(shapes):2d} convolutions, their im2col products: "
                  f"one product each {100 * row['one_product_fraction_of_matmul']:5.1f}% of matmul, in blocks of {rows} rows "
                  f"{100 * row['blocks_fraction_of_matmul']:5.1f}% (slowest {row['blocks_slowest_MxKxN']} at "
                  f"{100 * row['blocks_slowest_fraction']:.0f}%)", flush=True)
    return pd.DataFrame(rows_out)


def max_freq_layers(model: torch.nn.Module) -> list[tuple[int, int, int, int]]:
    """(kt, kf, filters, time padding) of each one-channel conv whose maps are max-pooled over all their
    frequency offsets (7x96, 7x86, the timbral branches), or [] for other front-ends."""
    if isinstance(model, Conv7xN):
        convs = [model.conv]
    elif isinstance(model, Musical) and model.timbral is not None:
        convs = list(model.timbral.convs)
    else:
        return []
    return [(c.kernel_size[0], c.kernel_size[1], c.out_channels, 0 if isinstance(model, Conv7xN) else c.kernel_size[0] // 2)
            for c in convs]


def _offset_products(patches: torch.Tensor, wt: torch.Tensor, kt: int, offsets: int, rows: int, maximum: bool) -> None:
    """One product per frequency offset and whole block of rows into a reused buffer, with or without the running maximum."""
    k = wt.shape[0]
    running, product = torch.empty(rows, wt.shape[1], device=wt.device), torch.empty(rows, wt.shape[1], device=wt.device)
    for s in range(0, patches.shape[0] - rows + 1, rows):
        torch.mm(patches[s:s + rows, :k], wt, out=running)
        for f in range(1, offsets):
            torch.mm(patches[s:s + rows, f * kt:f * kt + k], wt, out=product)
            if maximum:
                torch.maximum(running, product, out=running)


def bench_max_freq(widths, names, mm: float, dev, rows: int = 512) -> pd.DataFrame:
    """For the layers max-pooled over frequency: their products alone (one per offset and block of rows,
    into a reused buffer, on the strided patch matrix), the same with the running maximum, the native
    kernel (the maximum kept in registers; where a compiler built it), and the layer as extraction runs
    it (conv2d_max_freq_relu_mean, its measured form): where the time goes."""
    def best(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    out_rows = []
    for name, cfg in frontend_configs().items():
        if (names and name not in names) or not cfg.get("widths"):
            continue
        for width in widths:
            layers = max_freq_layers(build_frontend(cfg, width, seed=0))
            if not layers:
                continue
            batch = int((cfg.gpu_batch_size if dev.type == "cuda" else cfg.batch_size)[width])
            h = (torch.randn(batch, 1, 1376, 96, device=dev) * 10 - 40)
            totals = {"macs": 0, "products": 0.0, "with_maximum": 0.0, "native": 0.0, "layer": 0.0}
            policy = SpeedPolicy("auto")
            kernel = dev.type == "cpu" and policy.native.library() is not None
            for kt, kf, n_filters, pad in layers:
                w = torch.randn(n_filters, 1, kt, kf, device=dev) * 0.05
                offsets = 96 - kf + 1
                patches = ops.patch_rows(h, kt, (pad, pad), h.dtype)
                wt = ops.band_major_weights(w, h.dtype)
                n, k = patches.shape[0], kf * kt
                share = (n // rows * rows) / n                       # whole blocks timed: scale to all rows
                totals["macs"] += n * offsets * n_filters * k
                for key, maximum in (("products", False), ("with_maximum", True)):
                    totals[key] += best(functools.partial(_offset_products, patches, wt, kt, offsets, rows, maximum)) / share
                with policy.active():
                    if kernel:
                        totals["native"] += best(functools.partial(ops._native_patch_max, h, w, (pad, pad), relu_mean=True))
                    totals["layer"] += best(functools.partial(ops.conv2d_max_freq_relu_mean, h, w, (pad, pad)))
            frac = {key: 2 * totals["macs"] / totals[key] / 1e9 / mm if totals[key] else float("nan")
                    for key in ("products", "with_maximum", "native", "layer")}
            out_rows.append({"frontend": name, "width": width, "batch": batch, "layers": len(layers),
                             **{f"{key}_fraction_of_matmul": round(v, 3) for key, v in frac.items()}})
            print(f"  {name:<18} {width:<5} batch {batch:<3} {len(layers)} layers max-pooled over frequency: products "
                  f"{100 * frac['products']:5.1f}% of matmul, with the running maximum {100 * frac['with_maximum']:5.1f}%, "
                  f"native kernel {100 * frac['native']:5.1f}%, the layers as extracted {100 * frac['layer']:5.1f}%", flush=True)
    return pd.DataFrame(out_rows)
