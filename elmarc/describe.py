"""python -m elmarc.describe: feature length, parameters and multiply-accumulates per clip of every front-end.

Counted from the models themselves on the paper's inputs (350 000 samples; 1376 x 96 log-mel),
on PyTorch's meta device (shapes only, no arithmetic), so it takes seconds at any width.
MACs are those of the convolutions (the direct convolution, whatever faster form would run;
the cost of everything else is small), counted by torch's FlopCounterMode; the MFCC baseline
has no convolution (n/a).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import FrontendConfig, with_schema
from .errors import UserError
from .frontends import build_frontend
from .frontends.speed.ops import direct_convolution

CONF = Path(__file__).resolve().parent / "conf" / "frontend"


def conv_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of the direct convolutions for one input (batch 1)."""
    counter = FlopCounterMode(display=False)
    with direct_convolution(), counter:      # the plain forms: convolutions only, no matrix products
        model(example)
    return int(counter.get_total_flops()) // 2          # a multiply-accumulate is two FLOPs


def paper_example(kind: str, device: str = "meta") -> torch.Tensor:
    if kind == "waveform":
        return torch.zeros(1, 350000, device=device)
    return torch.zeros(1, 1376, 96, device=device)


def frontend_configs(conf_dir: Path = CONF) -> dict:
    """name -> front-end config (over its schema) of every YAML in conf_dir."""
    return {p.stem: with_schema(OmegaConf.load(p), FrontendConfig) for p in sorted(conf_dir.glob("*.yaml"))}


def needs_arguments(cfg) -> bool:
    """A config that cannot build as it stands: the HEAR bridge until a module is named (frontend.model.module=...)."""
    return str(cfg.model.get("_target_", "")).endswith("HearFrontend") and not cfg.model.get("module")


def runnable_frontend_configs(conf_dir: Path = CONF) -> dict:
    """frontend_configs less those that need an argument to build."""
    return {name: cfg for name, cfg in frontend_configs(conf_dir).items() if not needs_arguments(cfg)}


def describe(configs: dict | None = None) -> pd.DataFrame:
    rows = []
    for name, cfg in (configs or frontend_configs()).items():
        if needs_arguments(cfg):
            continue                    # the HEAR bridge describes a module only when one is named (--hear)
        widths = ["small", "large"] if cfg.get("widths") else ["any"]
        for width in widths:
            model = build_frontend(cfg, "small" if width == "any" else width, seed=0)
            params = sum(p.numel() for p in model.parameters())
            if model.input_kind == "audio":
                macs = None
            else:
                macs = conv_macs(model.to("meta"), paper_example(model.input_kind))
            rows.append({"frontend": name, "width": width, "input": model.input_kind,
                         "nf": cfg.widths[width] if width != "any" else None,
                         "feature_dim": model.feature_dim, "parameters": params, "macs_per_clip": macs})
    return pd.DataFrame(rows)


def hear_config(spec: str, base) -> tuple[str, object]:
    """'module[:model_file]' -> (row name, the hear front-end config naming that module)."""
    module, _, model_file = spec.partition(":")
    return f"hear:{module}", OmegaConf.merge(base, {"name": f"hear:{module}", "model": {"module": module, "model_file": model_file}})


def to_markdown(df: pd.DataFrame) -> str:
    lines = ["| front-end | width | input | nf | features | parameters | MACs / clip |",
             "|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        macs = "n/a" if r.macs_per_clip is None or pd.isna(r.macs_per_clip) else f"{float(r.macs_per_clip):.3g}"
        nf = "" if r.nf is None or pd.isna(r.nf) else int(r.nf)
        lines.append(f"| {r.frontend} | {r.width} | {r.input} | {nf} | {r.feature_dim} | {r.parameters:,} | {macs} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m elmarc.describe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", type=Path, default=CONF, help="folder of front-end configs")
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    ap.add_argument("--hear", action="append", default=[], metavar="MODULE[:MODEL_FILE]",
                    help="also describe a HEAR module as a front-end (repeatable)")
    args = ap.parse_args(argv)
    try:
        configs = frontend_configs(args.conf)
        configs.update(hear_config(spec, configs["hear"]) for spec in args.hear)
        df = describe(configs)
    except UserError as exc:          # the same one line and exit code as elmarc's
        print(f"elmarc.describe: error: {exc}", file=sys.stderr)
        return 2
    print(to_markdown(df))
    if args.csv:
        df.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
