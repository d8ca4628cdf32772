"""Per-seed accuracies, mean and std over seeds; the paper's t-test and a test valid for k-fold protocols.

The paper's test: a two-sample t-test over the seeds' mean accuracies. It sees only the
variation of the random weights, not that of the data. For k-fold protocols the report also
gives the corrected repeated k-fold t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) on the
paired per-fold-and-seed differences against the best front-end, Holm-corrected over the
comparisons with the best, and a 95% interval with the same corrected variance; these decide
the bold "best or tied" marks. On a single predefined split (GTZAN) McNemar's exact test on the
paired test predictions does, with a Wilson interval over the test clips.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

GROUP = ["dataset", "width", "classifier", "protocol", "standardize"]
ALPHA = 0.05


def seed_free_once(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a run no seed can change (``seeded`` false: MFCC + SVM) kept for one seed only:
    every job of a seed sweep carries the same rows, and they are one run, not several."""
    free = rows["seeded"].astype(str).str.lower() == "false"
    first = rows[free].groupby(GROUP + ["frontend"], dropna=False)["seed"].transform("min")
    keep = ~free
    keep[free] = rows.loc[free, "seed"] == first
    return rows[keep]


def run_accuracies(rows: pd.DataFrame) -> pd.DataFrame:
    """One accuracy per run (mean over its folds): GROUP + frontend + seed -> accuracy."""
    rows = seed_free_once(rows).copy()
    rows["accuracy"] = rows["accuracy"].astype(float)
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


def corrected_variance(values: np.ndarray, test_train_ratio: float) -> float:
    """(1/(k r) + n_test/n_train) s^2 for k r fold-and-seed values (Nadeau & Bengio's correction)."""
    values = np.asarray(values, float)
    return (1.0 / len(values) + test_train_ratio) * values.var(ddof=1)


def corrected_ttest(differences: np.ndarray, test_train_ratio: float) -> float:
    """Two-sided p of the corrected repeated k-fold t-test on paired fold-and-seed differences.

    No library of standing implements it; written from the formula (tested against a hand computation)."""
    d = np.asarray(differences, float)
    if len(d) < 2:
        return float("nan")
    var = corrected_variance(d, test_train_ratio)
    if var == 0:
        return 1.0 if d.mean() == 0 else 0.0
    t = d.mean() / np.sqrt(var)
    return float(2 * stats.t.sf(abs(t), df=len(d) - 1))


def corrected_interval(values: np.ndarray, test_train_ratio: float, level: float = 0.95) -> tuple[float, float]:
    """Interval for the mean accuracy over folds and seeds, with the corrected variance."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, df=len(values) - 1) * np.sqrt(corrected_variance(values, test_train_ratio))
    return float(values.mean() - half), float(values.mean() + half)


def fold_accuracies(rows: pd.DataFrame) -> pd.DataFrame:
    """One accuracy per fold and run, seed-free runs once: GROUP + frontend + seed + fold -> accuracy, test/train ratio."""
    rows = seed_free_once(rows).copy()
    rows["accuracy"] = rows["accuracy"].astype(float)
    rows["ratio"] = rows["n_test"].astype(float) / rows["n_train"].astype(float)
    return rows[GROUP + ["frontend", "seed", "fold", "accuracy", "ratio"]]


def protocol_tests(folds: pd.DataFrame, best: str) -> dict[str, dict]:
    """Per front-end of one table: the corrected test against `best` (Holm-adjusted) and the 95% interval.

    Pairs are the same fold and seed; a seed-free run (one value per fold) pairs with every seed of the other."""
    by_fe = {fe: d for fe, d in folds.groupby("frontend")}
    ratio = float(np.nanmean(folds["ratio"])) if folds["ratio"].notna().any() else 0.0
    out, raw = {}, {}
    for fe, d in by_fe.items():
        low, high = corrected_interval(d["accuracy"].to_numpy(), ratio)      # an accuracy stays within [0, 1]
        out[fe] = {"ci": (max(low, 0.0), min(high, 1.0)), "p_corrected": 1.0 if fe == best else np.nan}
        if fe == best:
            continue
        a, b = by_fe[best], d
        on = ["fold", "seed"] if a["seed"].nunique() > 1 and b["seed"].nunique() > 1 else ["fold"]
        paired = a.merge(b, on=on, suffixes=("_best", "_other"))
        raw[fe] = corrected_ttest(paired["accuracy_best"] - paired["accuracy_other"], ratio)
    names = [fe for fe in raw if not np.isnan(raw[fe])]
    if names:
        adjusted = multipletests([raw[fe] for fe in names], method="holm")[1]
        for fe, p in zip(names, adjusted):
            out[fe]["p_corrected"] = float(p)
    return out


def rows_of_table(table: pd.DataFrame, key: dict) -> pd.DataFrame:
    """The rows of one report table (GROUP values as in key; compared as text, as the CSVs give them back)."""
    return table[np.logical_and.reduce([table[c].astype(str) == str(v) for c, v in key.items()])]


def mcnemar_vs_best(preds: pd.DataFrame, best: str) -> dict[str, float]:
    """Exact McNemar p of each front-end against `best` on the same test clips, Holm-adjusted.

    Seeds are combined by pooling their discordant pairs (best right and other wrong, and the
    reverse) over the seeds paired by seed; a seed-free run pairs with every seed of the other."""
    preds = seed_free_once(preds)
    right = preds.assign(right=preds["label"] == preds["predicted"])
    by_fe = {fe: d[["clip_id", "fold", "seed", "right"]] for fe, d in right.groupby("frontend")}
    raw = {}
    for fe, d in by_fe.items():
        if fe == best:
            continue
        a = by_fe[best]
        on = ["clip_id", "fold", "seed"] if a["seed"].nunique() > 1 and d["seed"].nunique() > 1 else ["clip_id", "fold"]
        paired = a.merge(d, on=on, suffixes=("_best", "_other"))
        b = int((paired.right_best & ~paired.right_other).sum())
        c = int((~paired.right_best & paired.right_other).sum())
        raw[fe] = float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)
    out = {best: 1.0}
    if raw:
        adjusted = multipletests(list(raw.values()), method="holm")[1]
        out.update(dict(zip(raw, map(float, adjusted))))
    return out


def wilson_interval(accuracy: float, n: int, level: float = 0.95) -> tuple[float, float]:
    low, high = proportion_confint(round(accuracy * n), n, alpha=1 - level, method="wilson")
    return float(low), float(high)


def summarise(runs: pd.DataFrame, folds: pd.DataFrame | None = None, preds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per GROUP x frontend: mean, std (ddof 1) over seeds, n, the paper's p vs the group's best; with
    the fold accuracies of a k-fold protocol also the corrected test (Holm) and a 95% interval, which
    then decide tied-with-best."""
    out = []
    for key, g in runs.groupby(GROUP, dropna=False):
        per_fe = {fe: d["accuracy"].to_numpy() for fe, d in g.groupby("frontend")}
        means = {fe: v.mean() for fe, v in per_fe.items()}
        best = max(means, key=lambda fe: (means[fe], fe))
        k = dict(zip(GROUP, key))
        tests, test_name = {}, ""
        if folds is not None and k["protocol"] != "predefined":
            f = rows_of_table(folds, k)
            tests = protocol_tests(f, best) if len(f) else {}
            test_name = "corrected k-fold t-test, Holm"
        elif preds is not None and len(preds) and k["protocol"] == "predefined":
            pr = rows_of_table(preds, k)
            if len(pr) and best in set(pr["frontend"]):
                n_test = int(pr.groupby(["frontend", "seed"]).size().max())
                tests = {fe: {"p_corrected": p, "ci": wilson_interval(means[fe], n_test)}
                         for fe, p in mcnemar_vs_best(pr, best).items()}
                test_name = "McNemar exact, Holm"
        for fe, v in per_fe.items():
            p = 1.0 if fe == best else ttest(per_fe[best], v)
            t = tests.get(fe, {})
            p_corr = t.get("p_corrected", float("nan"))
            decides = p_corr if tests else p
            out.append({**k, "frontend": fe, "mean": v.mean(),
                        "std": v.std(ddof=1) if len(v) > 1 else float("nan"), "n_seeds": len(v),
                        "p_vs_best": p, "p_protocol": p_corr, "protocol_test": test_name,
                        "ci_low": t.get("ci", (np.nan, np.nan))[0], "ci_high": t.get("ci", (np.nan, np.nan))[1],
                        "best": fe == best,
                        "tied_with_best": fe == best or (not np.isnan(decides) and decides > ALPHA),
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
