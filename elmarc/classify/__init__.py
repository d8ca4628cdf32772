"""Classification: splits, protocols, the SVM and ELM grids, and the stage that fits them on cached features.

Each grid has ``name``, ``settings``, ``uses_seed``, ``edge(setting)`` and
``scores(X, y, splits, standardize) -> (accuracy (n_splits, n_settings), capped mask)``.
"""
from .elm import ELMClassifier, ELMGrid
from .grid import GridJob, build_grid
from .svm import SVMGrid

__all__ = ["ELMClassifier", "ELMGrid", "GridJob", "SVMGrid", "build_grid"]
