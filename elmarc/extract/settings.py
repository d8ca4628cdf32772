"""How one job extracts: extract.* with every null resolved for this job's front-end, device and cores."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ExtractConfig
from ..frontends import FrontendFactory
from ..frontends.speed import SpeedPolicy
from .inputs import default_workers, uses_gpu


@dataclass(frozen=True)
class Extraction:
    """What the predict loop and the decode pass read; built once per job (Extraction.resolve)."""

    accelerator: str
    devices: int
    precision: str
    batch_size: int          # the front-end's batch for the width (gpu_batch_size on a GPU) unless given
    num_workers: int         # DataLoader workers of the predict loop
    decode_workers: int      # DataLoader workers of the decode-once pass
    threads: int             # torch CPU threads (the job's share of the cores unless given)
    compile: bool
    tf32: bool
    progress: bool
    audio_cache: bool
    on_error: str
    speed: SpeedPolicy       # which form of each layer runs (extract.conv_forms, extract.native_kernels)

    @property
    def gpu(self) -> bool:
        return uses_gpu(self.accelerator)

    @classmethod
    def resolve(cls, opts: ExtractConfig, frontend: FrontendFactory, cores: int, cache_dir) -> Extraction:
        gpu = uses_gpu(str(opts.accelerator))
        return cls(
            accelerator=str(opts.accelerator), devices=int(opts.devices), precision=str(opts.precision),
            batch_size=int(opts.batch_size or frontend.batch_size(gpu)),
            num_workers=default_workers(gpu, cores) if opts.num_workers is None else int(opts.num_workers),
            decode_workers=default_workers(gpu, cores, decode_pass=True) if opts.num_workers is None else int(opts.num_workers),
            threads=int(opts.threads or cores),
            compile=bool(opts.compile) if opts.compile is not None else frontend.compile_pays(gpu),
            tf32=bool(opts.tf32), progress=bool(opts.progress), audio_cache=bool(opts.audio_cache),
            on_error=str(opts.on_error),
            speed=SpeedPolicy(str(opts.conv_forms), bool(opts.native_kernels), cache_dir),
        )
