"""Training stage: every front-end trained end to end on the random protocol's splits (see stage.py)."""
from .stage import PROXY, TRAINED, train_stage

__all__ = ["PROXY", "TRAINED", "train_stage"]
