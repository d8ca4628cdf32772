"""The extract stage of one job: the decode-once audio, then the predict loop into the features entry."""
from __future__ import annotations

import logging
from pathlib import Path

from ..config import InputConfig
from ..datasets import ClipSource
from ..frontends import Frontend
from ..resources import torch_threads
from .audio_cache import decoded_source
from .feature_cache import FeatureEntry
from .loop import run_extraction
from .settings import Extraction

log = logging.getLogger(__name__)


def extract_stage(entry: FeatureEntry, source: ClipSource, model: Frontend, inputs: InputConfig,
                  extraction: Extraction, cache_dir: Path) -> dict:
    """Features into the cache; audio decoded once per dataset (shared by every front-end and seed)."""
    if entry.is_complete() and not entry.problems():
        log.info("features cached at %s: nothing to extract", entry.root)
        return {"cached": True, "extracted": 0}
    torch_threads(extraction.threads)
    source, decode = decoded_source(source, inputs, extraction, cache_dir)
    plan = entry.spec["conv_forms"]
    return {**run_extraction(entry, source, model, inputs, extraction, plan.get("auto") if isinstance(plan, dict) else None),
            "decode": decode}
