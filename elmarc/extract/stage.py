"""The extract stage of one job: what makes the features (the cache key), then the predict loop."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import __version__
from ..config import ExtractConfig, InputConfig
from ..frontends import has_weights, resolve_nf
from .feature_cache import FeatureEntry

log = logging.getLogger(__name__)


def input_config(cfg: DictConfig) -> InputConfig:
    return OmegaConf.to_object(cfg.input)


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
        **({"frontend_identity": frontend.identity()} if hasattr(frontend, "identity") else {}),
        "nf": nf,
        "seed": int(cfg.seed) if seeded else None,       # weightless front-ends ignore the seed
        "precision": str(cfg.extract.precision),
    }
    if cfg.extract.tf32:
        spec["tf32"] = True                 # only when on, so that existing keys stay valid
    width = cfg.features.width if nf is not None else "any"
    readable = f"{source.name}-{cfg.frontend.name}-{width}" + (f"-s{cfg.seed}" if seeded else "")
    return spec, readable


def use_compile(cfg: DictConfig, gpu: bool = False) -> bool:
    """extract.compile as given, or (null) at the large width where the front-end's flag for this device
    says it pays: there a job runs minutes to hours, and the compile's start-up would dominate a small one."""
    if cfg.extract.compile is not None:
        return bool(cfg.extract.compile)
    flag = cfg.frontend.compile.gpu if gpu else cfg.frontend.compile.cpu
    return bool(flag) and str(cfg.features.width) == "large"


def extract_stage(cfg: DictConfig, source, frontend, entry: FeatureEntry, cache_dir: Path) -> dict:
    """Features into the cache; audio decoded once per dataset (shared by every front-end and seed)."""
    from .audio_cache import AudioCache, CachedSource
    from .inputs import frontend_batch_size, resolve_workers, uses_gpu
    from .loop import run_extraction

    if entry.is_complete() and not entry.problems():
        log.info("features cached at %s: nothing to extract", entry.root)
        return {"cached": True, "extracted": 0}
    from ..frontends import forms, native

    opts: ExtractConfig = OmegaConf.to_object(cfg.extract)
    forms.configure(str(opts.conv_forms), cache_dir)
    native.configure(opts.native_kernels, cache_dir)
    inputs = input_config(cfg)
    import torch

    from ..resources import job_cores

    threads = int(opts.threads or job_cores())      # a parallel launcher's jobs share the cores, no more
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    gpu = uses_gpu(str(opts.accelerator))
    decode = {}
    if opts.audio_cache:
        audio = AudioCache(cache_dir, source, inputs)
        decode = audio.ensure(num_workers=resolve_workers(opts.num_workers, gpu, decode_pass=True),
                              on_error=str(opts.on_error))
        source = CachedSource(source, audio)
    opts = dataclasses.replace(
        opts, batch_size=opts.batch_size or frontend_batch_size(cfg.frontend, cfg.features.width, gpu),
        num_workers=resolve_workers(opts.num_workers, gpu))
    return {**run_extraction(entry, source, frontend, inputs, opts, compile=use_compile(cfg, gpu)), "decode": decode}
