"""make bench, section classify: the classifier stage at the paper's largest scale (UrbanSound8K: 8732 x 3584, 10
folds), timed on a subset of folds and projected"""
from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from elmarc.classify.elm import ELMGrid
from elmarc.classify.splits import Split
from elmarc.classify.svm import SVMGrid

from .common import random_cnn_like_features, table_lines, temporal_like_features


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("classify: UrbanSound8K scale", flush=True)
    return table_lines(args.out, "classify", "Classifier stage at UrbanSound8K scale (8732 x 3584, paper protocol)",
                       bench_classify(8732, 3584, 10, args.classify_folds, n_jobs=max(1, os.cpu_count() or 1),
                        max_iter=args.classify_max_iter))


def bench_classify(n: int, dim: int, folds: int, timed_folds: int, n_jobs: int, max_iter: int) -> pd.DataFrame:
    """Paper protocol at UrbanSound8K scale; times `timed_folds` of the folds and projects."""
    fold = np.random.default_rng(1).permutation(n) % folds
    splits = [Split(f"f{k}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), k, "outer") for k in range(timed_folds)]
    rows = []
    cnn_like, temporal_like = random_cnn_like_features(n, dim, 10, seed=1), temporal_like_features(n, dim, 10, seed=1)
    for name, (X, y), grid in (("svm", cnn_like, SVMGrid(n_jobs=n_jobs, max_iter=max_iter)), ("elm", cnn_like, ELMGrid(seed=0)),
                               ("svm, temporal-like features", temporal_like, SVMGrid(n_jobs=n_jobs, max_iter=max_iter))):
        t0 = time.perf_counter()
        res = grid.scores(X, y, splits)
        capped = res.capped
        seconds = time.perf_counter() - t0
        per_fold = seconds / timed_folds
        # the paper sweep's classifier stage on UrbanSound8K at the large width: 9 front-ends x 3 seeds
        # x 2 feature scalings; the paper protocol fits 10 splits, nested 10 + 10 x 9 (upper bound:
        # inner splits train on 8/10 of the data)
        jobs = 9 * 3 * 2
        rows.append({"classifier": name, "n": n, "dim": dim, "timed_folds": timed_folds,
                     "seconds": round(seconds, 1), "projected_10_folds_s": round(per_fold * folds, 1),
                     "capped_fits": int(capped.sum()), "exact_fits": int(res.exact.sum()), "fits": int(capped.size), "n_jobs": n_jobs,
                     "max_iter": max_iter, "paper_sweep_paper_protocol_h": round(jobs * folds * per_fold / 3600, 1),
                     "paper_sweep_with_nested_h": round(jobs * (folds + folds * (folds - 1)) * per_fold / 3600, 1)})
        print(f"  {name}: {n} x {dim}, {timed_folds} of {folds} folds in {seconds:.1f} s -> {per_fold * folds:.0f} s "
              f"for {folds} folds; capped fits {int(capped.sum())}/{capped.size}, exact {int(res.exact.sum())}; projected US8K large-width sweep "
              f"({jobs} grids): {rows[-1]['paper_sweep_paper_protocol_h']} h with the paper protocol, "
              f"{rows[-1]['paper_sweep_with_nested_h']} h with nested too", flush=True)
    return pd.DataFrame(rows)
