"""Classifier grids (SVM, ELM). Each grid has ``settings``, ``edge(setting)`` and
``scores(X, y, splits, standardize) -> (accuracy (n_splits, n_settings), capped mask)``."""
from .elm import ELMClassifier, ELMGrid
from .svm import SVMGrid

__all__ = ["ELMClassifier", "ELMGrid", "SVMGrid"]
