"""python -m benchmarks.bench (make bench): how close extraction and classification come to what the machine allows.

One module per question (``--only`` picks some; each module's docstring says what it measures):
  extract      every front-end x width on 29-s inputs against the fp32 matmul rate of the same run
  ceiling      each front-end's GEMM ceiling, and the layers max-pooled over frequency
  e2e          extraction from audio files (the real Lightning path) against in-memory inputs
  decode       one decode pass against all small front-ends x 3 seeds
  svmgrid      our 32-setting SVM grid against GridSearchCV(SVC) on the same folds
  svmconv      every SVM setting before (libsvm to convergence) and after (SMO budget + exact solve)
  cachecheck   the cache integrity check against reading the payload
  fingerprint  what keying a dataset by its content costs
  classify     the classifier stage at the paper's largest scale (UrbanSound8K), projected
  hear         elmarc.hear's timestamp embeddings of a 120-s clip against its scene embedding
Writes bench/<section>.csv and bench/bench.md and prints them.
"""
from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import torch

from .common import device, host_description, matmul_rate

SECTIONS = ("extract", "ceiling", "e2e", "decode", "svmgrid", "svmconv", "cachecheck", "fingerprint", "classify", "hear")


def arguments(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {list(SECTIONS)}")
    ap.add_argument("--widths", default="small,large")
    ap.add_argument("--frontends", default="", help="comma list (default: every config)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="per front-end timing")
    ap.add_argument("--e2e-clips", type=int, default=16)
    ap.add_argument("--decode-clips", type=int, default=64)
    ap.add_argument("--decode-root", type=Path, default=None,
                    help="folder of class folders for the decode section (e.g. an ESC-10 copy; make bench passes ESC10_ROOT)")
    ap.add_argument("--svmconv-features", default="", help="comma list of cached feature folders (cache/features/...)")
    ap.add_argument("--svmconv-no-synthetic", action="store_true", help="svmconv: skip the synthetic tasks' features")
    ap.add_argument("--classify-folds", type=int, default=1, help="folds actually timed at US8K scale")
    ap.add_argument("--classify-max-iter", type=int, default=-1)
    ap.add_argument("--hear-windows", type=int, default=8, help="hear: windows timed of the windowed definition")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", default="32-true", choices=["32-true", "tf32", "bf16-mixed"],
                    help="extract section: 32-true is what extraction uses; the others are options, timed apart")
    ap.add_argument("--gpu-batch-only", action="store_true", help="extract section on a GPU: time gpu_batch_size only")
    ap.add_argument("--compile", action="store_true", help="extract section: torch.compile each front-end")
    ap.add_argument("--conv-forms", default="plain,rule,auto", help="extract section: the extract.conv_forms modes to time")
    ap.add_argument("--workers", type=int, default=None,
                    help="DataLoader workers in e2e/decode (default: as a sweep does, see extract.inputs.default_workers)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time algorithms per shape (GPU)")
    ap.add_argument("--out", type=Path, default=Path("bench"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"benchmarks.bench: unknown section(s) {unknown}; use {list(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    md = ["# elmarc benchmark", "", f"Device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}", "",
          f"Host: {host_description()}", ""]
    print(f"host: {host_description()}", flush=True)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
        md += ["cuDNN benchmark mode on (algorithm chosen by timing per shape)", ""]
    mm = matmul_rate(dev)
    print(f"device {name}: fp32 matmul {mm:.1f} GFLOP/s", flush=True)
    md += [f"fp32 matmul rate measured in this run: **{mm:.1f} GFLOP/s**", ""]
    for section in SECTIONS:
        if section in sections:
            md += importlib.import_module(f".{section}", __package__).run(args, mm, dev)
    (args.out / "bench.md").write_text("\n".join(md) + "\n")
    print(f"\nwritten to {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
