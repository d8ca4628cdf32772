"""Random-weight CNN front-ends (SPEC section 2): the models, how they are built from config (build.py), and
the speed wing (speed/) whose faster forms of their layers they call through speed.ops, and their maps along
time before averaging (time_maps.py, for timestamp embeddings)."""
from .base import Frontend, FrontendConfigError
from .build import FrontendFactory, build_frontend, has_weights, memory_need, resolve_nf

__all__ = ["Frontend", "FrontendConfigError", "FrontendFactory", "build_frontend", "has_weights", "memory_need", "resolve_nf"]
