"""Per-seed accuracies, mean and std over seeds, and two-sample t-tests between front-ends."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["dataset", "width", "classifier", "protocol", "standardize"]
ALPHA = 0.05


def seed_free_once(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a run no seed can change (``seeded`` false: MFCC + SVM) kept for one seed only:
    every job of a seed sweep carries the same rows, and they are one run, not several."""
    if "seeded" not in rows:
        return rows
    free = rows["seeded"].astype(str).str.lower() == "false"
    first = rows[free].groupby(GROUP + ["frontend"], dropna=False)["seed"].transform("min")
    keep = ~free
    keep[free] = rows.loc[free, "seed"] == first
    return rows[keep]


def run_accuracies(rows: pd.DataFrame) -> pd.DataFrame:
    """One accuracy per run (mean over its folds): GROUP + frontend + seed -> accuracy."""
    rows = seed_free_once(rows).copy()
    rows["accuracy"] = rows["accuracy"].astype(float)
    if "exact_fits" not in rows:                # rows cached before the exact fallback existed
        rows["exact_fits"] = 0
    keys = GROUP + ["frontend", "seed"]
    agg = rows.groupby(keys, dropna=False).agg(
        accuracy=("accuracy", "mean"), n_folds=("accuracy", "size"),
        on_grid_edge=("on_grid_edge", lambda s: float(np.mean(s.astype(str).str.lower() == "true"))),
        capped_fits=("capped_fits", "max"),
        exact_fits=("exact_fits", "max"),
    )
    return agg.reset_index()


def ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Student t-test p-value (H0: equal means); NaN when undefined.

    Two samples of runs: the two-sample test. One side a single run (a seed-free front-end such as
    MFCC, one fixed value): the one-sample test of the other side's runs against that value.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < len(b):
        a, b = b, a
    if len(a) < 2:
        return float("nan")
    if len(b) == 1:
        if np.ptp(a) == 0:
            return 1.0 if a[0] == b[0] else 0.0
        return float(stats.ttest_1samp(a, b[0]).pvalue)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0     # zero variance: equal or certainly different
    with warnings.catch_warnings():
        # one constant sample (e.g. MFCC, which has no seed) makes scipy warn about precision; the value is right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=True).pvalue)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per GROUP x frontend: mean, std (ddof 1) over seeds, n, p vs the group's best, tied-with-best."""
    out = []
    for key, g in runs.groupby(GROUP, dropna=False):
        per_fe = {fe: d["accuracy"].to_numpy() for fe, d in g.groupby("frontend")}
        means = {fe: v.mean() for fe, v in per_fe.items()}
        best = max(means, key=lambda fe: (means[fe], fe))
        for fe, v in per_fe.items():
            p = 1.0 if fe == best else ttest(per_fe[best], v)
            out.append({**dict(zip(GROUP, key)), "frontend": fe, "mean": v.mean(),
                        "std": v.std(ddof=1) if len(v) > 1 else float("nan"), "n_seeds": len(v),
                        "p_vs_best": p, "best": fe == best,
                        "tied_with_best": fe == best or (not np.isnan(p) and p > ALPHA),
                        "on_grid_edge": g.loc[g.frontend == fe, "on_grid_edge"].mean(),
                        "capped_fits": int(g.loc[g.frontend == fe, "capped_fits"].max()),
                        "exact_fits": int(g.loc[g.frontend == fe, "exact_fits"].max())})
    return pd.DataFrame(out)


def pairwise_pvalues(runs: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Per GROUP: a front-end x front-end matrix of t-test p-values."""
    result = {}
    for key, g in runs.groupby(GROUP, dropna=False):
        per_fe = {fe: d["accuracy"].to_numpy() for fe, d in g.groupby("frontend")}
        names = sorted(per_fe)
        mat = pd.DataFrame(index=names, columns=names, dtype=float)
        for a in names:
            for b in names:
                mat.loc[a, b] = 1.0 if a == b else ttest(per_fe[a], per_fe[b])
        result[key] = mat
    return result
