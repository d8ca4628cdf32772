"""What makes a job's features: the spec their cache entry is keyed by, and (auto) the plan of measured forms."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf

from .. import __version__
from ..config import InputConfig
from ..datasets import ClipSource
from ..frontends import Frontend, FrontendFactory, has_weights
from ..resources import torch_threads
from .settings import Extraction

FORMAT = 3                # what a features entry holds and how it is keyed; older entries are computed again


def feature_spec(source: ClipSource, frontend: FrontendFactory, model: Frontend, inputs: InputConfig,
                 extraction: Extraction) -> tuple[dict, str]:
    """Everything that determines the features, and a readable name for the cache folder.

    The forms the layers run in are part of it: they round differently (extract.conv_forms). With
    auto, the plan of every layer's measured form is (see forms_key), so an entry's key names
    exactly what was computed. Where the rule's forms depend on the host (its ISA, a compiler for the
    native kernel) the values differ across hosts to float rounding; each entry records its host."""
    nf = frontend.nf
    seeded = has_weights(model)
    spec = {
        "format": FORMAT,
        "elmarc_version": __version__,
        "dataset": source.identity(),
        "input": inputs.as_dict(),
        "input_kind": model.input_kind,
        "frontend": {"name": frontend.name, "model": OmegaConf.to_container(frontend.config.model, resolve=True)},
        **({"frontend_identity": model.identity()} if hasattr(model, "identity") else {}),
        "nf": nf,
        "seed": frontend.seed if seeded else None,       # weightless front-ends ignore the seed
        "precision": extraction.precision,
        "tf32": extraction.tf32,
        "compile": extraction.compile,
        "conv_forms": forms_key(model, inputs, extraction),
    }
    width = frontend.width if nf is not None else "any"
    readable = f"{source.name}-{frontend.name}-{width}" + (f"-s{frontend.seed}" if seeded else "")
    return spec, readable


def forms_key(model: Frontend, inputs: InputConfig, extraction: Extraction) -> str | dict:
    """extract.conv_forms as the key records it: 'rule' or 'plain', or for auto {"auto": {layer: form}},
    the forms measured (or read from this machine's store) on one batch of zeros of the job's shape."""
    policy = extraction.speed
    if policy.mode != "auto" or model.input_kind not in ("waveform", "logmel"):
        return policy.mode
    batch = extraction.batch_size
    shape = (batch, inputs.n_samples) if model.input_kind == "waveform" else (batch, inputs.n_frames, inputs.n_mels)
    device = torch.device("cuda" if extraction.gpu else "cpu")
    autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(extraction.precision)
    torch_threads(extraction.threads)
    # jobs on one machine measure one at a time: none disturbs another's timing, and a later one reads the
    # earlier one's choices (so they plan alike and share entries) instead of measuring again
    with policy.measuring_lock():
        policy.load_store()                 # the choices stored while this job waited
        with (torch.inference_mode(), policy.recording() as used,
              torch.autocast(device.type, dtype=autocast, enabled=autocast is not None)):
            model.to(device)(torch.zeros(shape, device=device))
    return {"auto": dict(sorted(used.items()))}

