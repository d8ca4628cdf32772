"""Extraction: model inputs, the decode-once audio cache, the keyed feature cache and the Lightning predict loop."""
from .feature_cache import FeatureEntry
from .stage import extract_stage, feature_spec

__all__ = ["FeatureEntry", "extract_stage", "feature_spec"]
