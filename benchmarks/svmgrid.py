"""make bench, section svmgrid: our 32-setting SVM grid against GridSearchCV(SVC) on the same folds (same
selection?)"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from elmarc.classify.protocols import best_index
from elmarc.classify.splits import Split
from elmarc.classify.svm import SVMGrid

from .common import random_cnn_like_features, table_lines


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("svmgrid: 32-setting grid vs GridSearchCV", flush=True)
    return table_lines(args.out, "svmgrid", "SVM grid vs scikit-learn GridSearchCV (1000 x 3584, 5 folds, 32 settings)",
                       bench_svmgrid(1000, 3584, 5))


def bench_svmgrid(n: int, dim: int, folds: int) -> pd.DataFrame:


    X, y = random_cnn_like_features(n, dim, 10)
    fold = np.random.default_rng(0).permutation(n) % folds      # every class in every fold
    splits = [Split(f"f{k}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), k, "outer") for k in range(folds)]
    grid = SVMGrid(n_jobs=1)
    t0 = time.perf_counter()
    scores = grid.scores(X, y, splits).accuracy
    ours = time.perf_counter() - t0
    best = best_index(scores.mean(axis=0))
    gammas = [g if g != "auto" else 1.0 / dim for g in grid.gammas]
    param_grid = [{"kernel": ["rbf"], "gamma": gammas, "C": grid.Cs}, {"kernel": ["linear"], "C": grid.Cs}]
    cv = [(s.train, s.eval) for s in splits]
    t0 = time.perf_counter()
    search = GridSearchCV(SVC(), param_grid, cv=cv, refit=False, n_jobs=1).fit(X, y)
    theirs = time.perf_counter() - t0
    theirs_best = search.cv_results_["mean_test_score"][search.best_index_]
    p = search.best_params_
    ours_setting = grid.settings[best]
    same_setting = (p["kernel"] == ours_setting["kernel"] and p["C"] == ours_setting["C"]
                    and (p["kernel"] == "linear" or np.isclose(p["gamma"], 1.0 / dim if ours_setting["gamma"] == "auto" else ours_setting["gamma"])))
    # every setting's mean accuracy, matched by parameters
    ours_by = {(s["kernel"], s["C"], None if s["kernel"] == "linear" else (1.0 / dim if s["gamma"] == "auto" else s["gamma"])): m
               for s, m in zip(grid.settings, scores.mean(axis=0))}
    diffs = [abs(ours_by[(pp["kernel"], pp["C"], pp.get("gamma"))] - m)
             for pp, m in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    row = {"n": n, "dim": dim, "folds": folds, "settings": len(grid.settings), "elmarc_s": round(ours, 2),
           "gridsearchcv_s": round(theirs, 2), "speedup": round(theirs / ours, 1),
           "elmarc_best": ours_setting, "gridsearchcv_best": p, "same_setting": bool(same_setting),
           "elmarc_best_accuracy": round(float(scores.mean(axis=0)[best]), 4),
           "gridsearchcv_best_accuracy": round(float(theirs_best), 4),
           "max_abs_diff_any_setting": float(max(diffs))}
    print(f"  {n} x {dim}, {folds} folds, 32 settings: elmarc {ours:.1f} s, GridSearchCV {theirs:.1f} s "
          f"({theirs / ours:.1f}x); best {ours_setting} vs {p}; accuracy {row['elmarc_best_accuracy']} vs "
          f"{row['gridsearchcv_best_accuracy']}; largest difference over all 32 settings {row['max_abs_diff_any_setting']:.4f}", flush=True)
    return pd.DataFrame([row])
