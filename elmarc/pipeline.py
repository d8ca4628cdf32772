"""One job of a sweep: extract -> classify -> report, each stage talking to the next through files."""
from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import __version__
from .audio import InputConfig
from .cache import FeatureEntry, atomic_write_text
from .datasets import build_dataset
from .frontends import build_frontend, has_weights, resolve_nf
from .protocols import resolve_protocol

log = logging.getLogger(__name__)
STAGES = ("extract", "classify", "report")


def parse_stages(stage) -> list[str]:
    names = list(STAGES) if stage in (None, "all") else (
        [s.strip() for s in stage.split(",")] if isinstance(stage, str) else list(stage))
    bad = [s for s in names if s not in STAGES]
    if bad:
        raise ValueError(f"stage={stage!r}: unknown {bad}; use 'all' or a comma list of {list(STAGES)}")
    return names


def input_config(cfg: DictConfig) -> InputConfig:
    return InputConfig(**OmegaConf.to_container(cfg.input, resolve=True))


def feature_spec(cfg: DictConfig, source, frontend) -> tuple[dict, str]:
    """Everything that determines the features, and a readable name for the cache folder."""
    nf = resolve_nf(cfg.frontend, cfg.features.width)
    seeded = has_weights(frontend)
    spec = {
        "elmarc_version": __version__,
        "dataset": source.identity(),
        "input": input_config(cfg).as_dict(),
        "input_kind": frontend.input_kind,
        "frontend": {"name": cfg.frontend.name, "model": OmegaConf.to_container(cfg.frontend.model, resolve=True)},
        "nf": nf,
        "seed": int(cfg.seed) if seeded else None,       # weightless front-ends ignore the seed
        "precision": str(cfg.extract.precision),
    }
    if cfg.extract.get("tf32"):
        spec["tf32"] = True                 # only when on, so that existing keys stay valid
    width = cfg.features.width if nf is not None else "any"
    readable = f"{source.name}-{cfg.frontend.name}-{width}" + (f"-s{cfg.seed}" if seeded else "")
    return spec, readable


def job_labels(cfg: DictConfig, source) -> dict:
    return {"dataset": source.name, "frontend": str(cfg.frontend.name), "width": str(cfg.features.width)}


def run_job(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the configured stages of one job; write status.json (ok or the error) to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    status = {"status": "running", "overrides": _overrides()}
    try:
        result = _run_stages(cfg, out_dir)
        status.update(status="ok", **result)
    except Exception as exc:
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise
    finally:
        atomic_write_text(out_dir / "status.json", json.dumps(status, indent=2, default=str))
    if "report" in parse_stages(cfg.stage) and (out_dir / "results.csv").is_file() and not _in_multirun():
        from .report import write_report

        write_report(out_dir, print_summary=True)
    return status


def _overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:
        return []


def _run_stages(cfg: DictConfig, out_dir: Path) -> dict:
    from .classify import classify

    from .config_check import validate

    validate(cfg)
    stages = parse_stages(cfg.stage)
    cache_dir = Path(cfg.cache_dir).expanduser().resolve()
    # the front-end first: a declared architecture that cannot work fails before any data is touched
    shape = {k: int(cfg.input[k]) for k in ("n_samples", "n_frames", "n_mels")}
    frontend = build_frontend(cfg.frontend, cfg.features.width, int(cfg.seed), shape)
    source = build_dataset(cfg.dataset)
    spec, readable = feature_spec(cfg, source, frontend)
    entry = FeatureEntry.for_spec(cache_dir, spec, readable)
    source.clips.drop(columns=["path"]).to_csv(out_dir / "clips.csv", index=False)   # folds/splits of this run
    result: dict = {"feature_key": entry.key, "feature_dir": str(entry.root)}

    if "extract" in stages:
        result["extract"] = extract_stage(cfg, source, frontend, entry, cache_dir)
        clips = entry.clip_table()
        clips[~clips["ok"]].to_csv(out_dir / "skipped.csv", index=False)

    if "classify" in stages:
        protocol = resolve_protocol(cfg.protocol.name, source.scheme, cfg.dataset.protocol)
        table = classify(entry, OmegaConf.to_container(cfg.classifier, resolve=True), protocol,
                         bool(cfg.classify.standardize), int(cfg.seed), job_labels(cfg, source),
                         cache_dir / "results")
        table.to_csv(out_dir / "results.csv", index=False)
        result["accuracy"] = float(table["accuracy"].astype(float).mean())
    return result


def use_compile(cfg: DictConfig, gpu: bool = False) -> bool:
    """extract.compile: true/false, or auto: at the large width where the front-end's `compile` flag
    says it pays (there a job runs minutes to hours; the compile's start-up seconds would dominate a
    small-width job). The flag is a bool, or {cpu: bool, gpu: bool} where the devices disagree."""
    choice = str(cfg.extract.get("compile", "auto")).lower()
    if choice != "auto":
        return choice == "true"
    flag = cfg.frontend.get("compile", False)
    if isinstance(flag, (dict, DictConfig)):
        flag = flag.get("gpu" if gpu else "cpu", False)
    return bool(flag) and str(cfg.features.width) == "large"


def extract_stage(cfg: DictConfig, source, frontend, entry: FeatureEntry, cache_dir: Path) -> dict:
    """Features into the cache; audio decoded once per dataset (shared by every front-end and seed)."""
    from .audio_cache import AudioCache, CachedSource
    from .extract import ExtractOptions, frontend_batch_size, resolve_workers, run_extraction, uses_gpu

    if entry.is_complete():
        log.info("features cached at %s: nothing to extract", entry.root)
        return {"cached": True, "extracted": 0}
    on_error = str(cfg.extract.on_error)
    if on_error not in ("skip", "raise"):
        raise ValueError(f"extract.on_error={on_error!r} is not allowed; use 'skip' or 'raise'")
    inputs = input_config(cfg)
    if cfg.extract.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.extract.threads))
    gpu = uses_gpu(str(cfg.extract.accelerator))
    decode = {}
    if cfg.extract.audio_cache:
        audio = AudioCache(cache_dir, source, inputs)
        decode = audio.ensure(num_workers=resolve_workers(cfg.extract.num_workers, gpu, decode_pass=True),
                              on_error=on_error)
        source = CachedSource(source, audio)
    bs = cfg.extract.batch_size or frontend_batch_size(cfg.frontend, cfg.features.width, gpu)
    opts = ExtractOptions(accelerator=cfg.extract.accelerator, devices=cfg.extract.devices,
                          precision=str(cfg.extract.precision), batch_size=int(bs),
                          num_workers=resolve_workers(cfg.extract.num_workers, gpu),
                          progress=bool(cfg.extract.progress),
                          on_error=on_error, tf32=bool(cfg.extract.get("tf32", False)),
                          compile=use_compile(cfg, gpu))
    return {**run_extraction(entry, source, frontend, inputs, opts), "decode": decode}


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False
