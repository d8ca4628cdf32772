"""SPEC section 4 protocols on fabricated score matrices with known answers."""
import numpy as np
import pandas as pd
import pytest

from elmarc.classify.protocols import plan_splits, resolve_protocol, select
from elmarc.config import ConfigError


def fold_clips(n=12, k=3):
    return pd.DataFrame({"label": ["a", "b"] * (n // 2), "fold": np.arange(n) % k, "split": ""})


def test_paper_protocol_reports_best_mean_over_folds():
    splits = plan_splits("paper", fold_clips())
    assert [s.role for s in splits] == ["outer"] * 3
    scores = np.array([[0.5, 0.9, 0.1], [0.5, 0.6, 0.9], [0.5, 0.6, 0.9]])   # means .5 .7 .633
    rec = select("paper", splits, scores)
    assert [r["setting_index"] for r in rec] == [1, 1, 1]
    assert np.mean([r["accuracy"] for r in rec]) == pytest.approx(0.7)
    assert [(splits[r["split_index"]].role, str(splits[r["split_index"]].outer)) for r in rec] == [("outer", r["fold"]) for r in rec]


def test_nested_protocol_selects_inside_training_folds():
    clips = fold_clips()
    splits = plan_splits("nested", clips)
    outer = [s for s in splits if s.role == "outer"]
    inner = [s for s in splits if s.role == "inner"]
    assert len(outer) == 3 and len(inner) == 6
    for s in inner:                       # the outer fold never enters its own selection
        held = set(np.flatnonzero(clips.fold == s.outer))
        assert not held & set(s.train) and not held & set(s.eval)
    scores = np.zeros((len(splits), 2))
    for i, s in enumerate(splits):
        if s.role == "inner":
            scores[i] = [0.9, 0.1] if s.outer == 0 else [0.1, 0.9]
        else:
            scores[i] = [0.3, 0.7]
    rec = select("nested", splits, scores)
    assert [r["setting_index"] for r in rec] == [0, 1, 1]
    assert [r["accuracy"] for r in rec] == [0.3, 0.7, 0.7]
    assert [(splits[r["split_index"]].role, str(splits[r["split_index"]].outer)) for r in rec] == [("outer", r["fold"]) for r in rec]


def test_predefined_selects_on_valid_scores_test():
    clips = pd.DataFrame({"label": list("abab" * 3), "fold": -1,
                          "split": ["train"] * 6 + ["valid"] * 3 + ["test"] * 3})
    splits = plan_splits("predefined", clips)
    assert [s.role for s in splits] == ["valid", "test"]
    assert list(splits[0].train) == list(range(6)) and list(splits[1].eval) == [9, 10, 11]
    rec = select("predefined", splits, np.array([[0.2, 0.8, 0.8], [0.9, 0.4, 0.6]]))
    assert rec == [{"fold": "test", "split_index": 1, "setting_index": 1, "accuracy": 0.4, "selection_score": 0.8,
                    "n_train": 6, "n_test": 3}]


def test_resolve_protocol():
    assert resolve_protocol("auto", "folds", "paper") == "paper"
    assert resolve_protocol("nested", "folds", "paper") == "nested"
    with pytest.raises(ConfigError, match="predefined"):
        resolve_protocol("paper", "predefined", "predefined")
    with pytest.raises(ConfigError, match="allowed"):
        resolve_protocol("bogus", "folds", "paper")
