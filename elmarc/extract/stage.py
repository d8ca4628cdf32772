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
from .inputs import uses_gpu

FORMAT = 2                # what a features entry holds and how it is keyed; older entries are computed again

log = logging.getLogger(__name__)


def input_config(cfg: DictConfig) -> InputConfig:
    return OmegaConf.to_object(cfg.input)


def feature_spec(cfg: DictConfig, source, frontend) -> tuple[dict, str]:
    """Everything that determines the features, and a readable name for the cache folder.

    The forms the layers run in are part of it: they round differently (extract.conv_forms). With
    auto, the plan of every layer's measured form is (see conv_forms_key), so an entry's key names
    exactly what was computed. Where the rule's forms depend on the host (its ISA, a compiler for the
    native kernel) the values differ across hosts to float rounding; each entry records its host."""
    nf = resolve_nf(cfg.frontend, cfg.features.width)
    seeded = has_weights(frontend)
    opts: ExtractConfig = OmegaConf.to_object(cfg.extract)
    spec = {
        "format": FORMAT,
        "elmarc_version": __version__,
        "dataset": source.identity(),
        "input": input_config(cfg).as_dict(),
        "input_kind": frontend.input_kind,
        "frontend": {"name": cfg.frontend.name, "model": OmegaConf.to_container(cfg.frontend.model, resolve=True)},
        **({"frontend_identity": frontend.identity()} if hasattr(frontend, "identity") else {}),
        "nf": nf,
        "seed": int(cfg.seed) if seeded else None,       # weightless front-ends ignore the seed
        "precision": str(opts.precision),
        "tf32": bool(opts.tf32),
        "compile": use_compile(cfg, uses_gpu(str(opts.accelerator))),
        "conv_forms": conv_forms_key(cfg, frontend),
    }
    width = cfg.features.width if nf is not None else "any"
    readable = f"{source.name}-{cfg.frontend.name}-{width}" + (f"-s{cfg.seed}" if seeded else "")
    return spec, readable


def configure_forms(cfg: DictConfig) -> int:
    """Set this process's form mode, native kernels and torch threads for the job; the thread count."""
    import torch

    from ..frontends import forms, native
    from ..resources import job_cores

    cache_dir = Path(cfg.cache_dir).expanduser().resolve()
    forms.configure(str(cfg.extract.conv_forms), cache_dir)
    native.configure(bool(cfg.extract.native_kernels), cache_dir)
    threads = int(cfg.extract.threads or job_cores())     # a parallel launcher's jobs share the cores, no more
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def conv_forms_key(cfg: DictConfig, frontend) -> str | dict:
    """extract.conv_forms as the key records it: 'fused' or 'plain', or for auto {"auto": {layer: form}},
    the forms measured (or read from this machine's store) on one batch of zeros of the job's shape."""
    mode = str(cfg.extract.conv_forms)
    if mode != "auto" or frontend.input_kind not in ("waveform", "logmel"):
        return mode
    import torch

    from ..frontends import forms
    from .inputs import frontend_batch_size

    gpu = uses_gpu(str(cfg.extract.accelerator))
    batch = int(cfg.extract.batch_size or frontend_batch_size(cfg.frontend, cfg.features.width, gpu))
    shape = (batch, int(cfg.input.n_samples)) if frontend.input_kind == "waveform" else (batch, int(cfg.input.n_frames), int(cfg.input.n_mels))
    device = torch.device("cuda" if gpu else "cpu")
    precision = str(cfg.extract.precision)
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    # jobs on one machine measure one at a time: none disturbs another's timing, and a later one reads the
    # earlier one's choices (so they plan alike and share entries) instead of measuring again
    configure_forms(cfg)
    with forms.measuring_lock():
        configure_forms(cfg)            # the choices stored while this job waited
        with (torch.inference_mode(), forms.recording() as used,
              torch.autocast(device.type, dtype=autocast, enabled=autocast is not None)):
            frontend.to(device)(torch.zeros(shape, device=device))
    return {"auto": dict(sorted(used.items()))}


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
    from .inputs import frontend_batch_size, resolve_workers
    from .loop import run_extraction

    if entry.is_complete() and not entry.problems():
        log.info("features cached at %s: nothing to extract", entry.root)
        return {"cached": True, "extracted": 0}
    opts: ExtractConfig = OmegaConf.to_object(cfg.extract)
    configure_forms(cfg)
    inputs = input_config(cfg)
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
    plan = entry.spec["conv_forms"]
    return {**run_extraction(entry, source, frontend, inputs, opts, compile=entry.spec["compile"],
                             plan=plan.get("auto") if isinstance(plan, dict) else None), "decode": decode}
