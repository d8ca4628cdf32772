"""Does the random ranking predict the trained one? (the train stage's rows beside the random ones)

Per dataset x width x protocol, each predictor's ranking of the front-ends (its mean accuracy over
folds and seeds) against the ranking of the same front-ends trained end to end:
    svm, elm              random features (features as extracted)
    svm@trained, ...      features of the trained weights, same grid (how much training changes the features)
    trained@1epoch        one epoch of the same recipe (the cheap proxy that training-free search compares with)
    naswot, synflow, ...  the NAS field's training-free proxies at initialisation (train.proxies), one score per
                          (fold, seed): the minibatch is drawn from that fold's training part
Spearman's rho and Kendall's tau (scipy), with a 95% percentile bootstrap interval that resamples
(fold, seed) units with replacement, the same draw for both rankings; whether the predictor's winner
is the trained winner and whether it is in the trained top 3; and the cost of each condition.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .plots import pyplot, save_png
from .tables import pct

TRAINED, PROXY = "trained", "trained@1epoch"
PLACE = ["dataset", "width", "protocol"]
N_RESAMPLES = 2000


def rank_agreements(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Spearman's rho, Kendall's tau-b) of each row pair of a and b, (n_rows, n) score vectors over the same
    front-ends: (n_rows, 2); NaN where a row is constant. rho is Pearson's r of the average ranks, tau-b the sum
    over pairs of sign products over the root of both untied pair counts: scipy's definitions, vectorised so the
    bootstrap's draws are computed at once."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    out = np.full((a.shape[0], 2), np.nan)
    ok = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
    if a.shape[1] < 2 or not ok.any():
        return out
    a, b = a[ok], b[ok]
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    rho = (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    i, j = np.triu_indices(a.shape[1], 1)
    sa, sb = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    tau = (sa * sb).sum(1) / np.sqrt((sa * sa).sum(1) * (sb * sb).sum(1))
    out[ok] = np.column_stack([np.clip(rho, -1, 1), np.clip(tau, -1, 1)])
    return out


def rank_agreement(a, b) -> tuple[float, float]:
    """(Spearman's rho, Kendall's tau-b) of two score vectors over the same front-ends; NaN if one is constant."""
    rho, tau = rank_agreements(a, b)[0]
    return float(rho), float(tau)


def bootstrap_interval(units_a: np.ndarray, units_b: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of (rho, tau) when the (fold, seed) units are resampled with replacement.

    units_a, units_b: (n_units, n_frontends) accuracies of the two conditions on the same units. Written
    here rather than with scipy.stats.bootstrap: both matrices must share each draw, and a draw whose
    means are all tied has no rank correlation (skipped, not counted as 0).
    """
    units_a, units_b = np.asarray(units_a, float), np.asarray(units_b, float)
    rng = np.random.default_rng(seed)
    n = units_a.shape[0]
    picks = np.stack([rng.integers(0, n, n) for _ in range(n_resamples)])    # one call per draw, as ever: same draws
    draws = rank_agreements(units_a[picks].mean(1), units_b[picks].mean(1))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    out = []
    for j in range(2):
        ok = draws[:, j][~np.isnan(draws[:, j])]
        out.append(tuple(np.percentile(ok, q)) if len(ok) else (float("nan"), float("nan")))
    return out[0], out[1]


def conditions(rows: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every condition's value per (place, front-end, seed, fold), long: the classifiers' accuracy on features as
    extracted, and each proxy's score (a non-finite score, such as NASWOT's singular kernel, is missing)."""
    r = rows[rows["standardize"].astype(str).str.lower() == "false"]
    out = [pd.DataFrame({**{k: r[k] for k in PLACE + ["frontend", "seed", "fold"]}, "predictor": r["classifier"],
                         "value": r["accuracy"].astype(float)})]
    if scores is not None and len(scores):
        value = pd.to_numeric(scores["score"], errors="coerce").astype(float)
        out.append(pd.DataFrame({**{k: scores[k] for k in PLACE + ["frontend", "seed", "fold"]},
                                 "predictor": scores["predictor"], "value": value.where(np.isfinite(value))}))
    long = pd.concat(out, ignore_index=True)
    long["seed"], long["fold"] = long["seed"].astype(int), long["fold"].astype(str)
    return long


def unit_matrix(long: pd.DataFrame, predictor: str, frontends: list[str]) -> pd.DataFrame:
    """(seed, fold) x front-end values of one condition."""
    r = long[(long["predictor"] == predictor) & long["frontend"].isin(frontends)]
    return r.pivot_table(index=["seed", "fold"], columns="frontend", values="value", aggfunc="mean", dropna=False)


def predictors(long: pd.DataFrame) -> list[str]:
    """Every condition present that is not the trained end-to-end one: random grids, grids on trained features,
    one epoch of training, then the proxies in their list's order."""
    from ..config import PROXY_NAMES

    present = set(long["predictor"].unique())
    names = [c for c in sorted(present) if c not in (TRAINED, PROXY) and c not in PROXY_NAMES]
    random = [c for c in names if "@" not in c]
    return (random + [c for c in names if "@" in c] + ([PROXY] if PROXY in present else [])
            + [p for p in PROXY_NAMES if p in present])


def agreement(rows: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per place (dataset, width, protocol) x predictor: rho, tau with intervals, winners."""
    long = conditions(rows, scores)
    out = []
    for place, g in long.groupby(PLACE, sort=True):
        trained_fes = sorted(g.loc[g["predictor"] == TRAINED, "frontend"].unique())
        if len(trained_fes) < 2:
            continue
        target = unit_matrix(g, TRAINED, trained_fes)
        for name in predictors(g):
            pred = unit_matrix(g, name, trained_fes)
            fes = [f for f in trained_fes if f in pred.columns]
            units = target.index.intersection(pred.index)
            a, b = pred.loc[units, fes].to_numpy(), target.loc[units, fes].to_numpy()
            keep = ~np.isnan(a).any(1) & ~np.isnan(b).any(1)
            a, b = a[keep], b[keep]
            if len(fes) < 2 or len(a) == 0:
                continue
            mean_a, mean_b = a.mean(0), b.mean(0)
            rho, tau = rank_agreement(mean_a, mean_b)
            (rho_lo, rho_hi), (tau_lo, tau_hi) = bootstrap_interval(a, b)
            top3 = [fes[i] for i in np.argsort(-mean_b, kind="stable")[:3]]
            win_a, win_b = fes[int(np.argmax(mean_a))], fes[int(np.argmax(mean_b))]
            out.append({**dict(zip(PLACE, place)), "predictor": name, "n_frontends": len(fes), "n_units": len(a),
                        "rho": rho, "rho_low": rho_lo, "rho_high": rho_hi, "tau": tau, "tau_low": tau_lo, "tau_high": tau_hi,
                        "predictor_winner": win_a, "trained_winner": win_b, "same_winner": win_a == win_b,
                        "winner_in_trained_top3": win_a in top3})
    return pd.DataFrame(out)


def proxy_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per place x front-end x proxy: the mean score over (fold, seed) units and the mean seconds per minibatch."""
    if scores is None or not len(scores):
        return pd.DataFrame()
    s = scores.assign(score=pd.to_numeric(scores["score"], errors="coerce"), seconds=scores["seconds"].astype(float))
    return (s.groupby(PLACE + ["frontend", "predictor"], sort=True)
            .agg(score=("score", "mean"), seconds=("seconds", "mean"), units=("score", "size")).reset_index())


def per_frontend(rows: pd.DataFrame) -> pd.DataFrame:
    """Per place x front-end: each condition's mean and std over (fold, seed) units, and the cost in seconds:
    random evaluation (extraction + the SVM grid, mean over seeds) against training (every fold and learning rate)."""
    rows = rows.assign(accuracy=rows["accuracy"].astype(float))
    out = []
    for place, g in rows.groupby(PLACE, sort=True):
        fes = sorted(g.loc[g["classifier"] == TRAINED, "frontend"].unique())
        for fe in fes:
            f = g[(g["frontend"] == fe) & (g["standardize"].astype(str).str.lower() == "false")]
            rec = {**dict(zip(PLACE, place)), "frontend": fe}
            for name, c in f.groupby("classifier"):
                rec[f"{name} mean"], rec[f"{name} std"] = c["accuracy"].mean(), c["accuracy"].std(ddof=1)
            rec["training_seconds"] = _seconds(f[f["classifier"] == TRAINED])
            rec["one_epoch_seconds"] = _seconds(f[f["classifier"] == PROXY])
            random = f[f["classifier"] == "svm"] if (f["classifier"] == "svm").any() else f[~f["classifier"].str.contains("trained")]
            rec["random_seconds"] = _random_seconds(random)
            rec["training_over_random"] = (rec["training_seconds"] / rec["random_seconds"]
                                           if rec["random_seconds"] and rec["random_seconds"] > 0 else float("nan"))
            out.append(rec)
    return pd.DataFrame(out)


def _seconds(rows: pd.DataFrame) -> float:
    """Training seconds of one condition: summed over folds, mean over seeds."""
    if not len(rows):
        return float("nan")
    return float(rows.groupby("seed")["grid_seconds"].apply(lambda s: s.astype(float).sum()).mean())


def _random_seconds(rows: pd.DataFrame) -> float:
    """Extraction + one grid over every fold (grid_seconds is the whole grid's, on every fold row): mean over seeds."""
    if not len(rows):
        return float("nan")
    per_seed = []
    for _, s in rows.groupby("seed"):
        grid = float(s["grid_seconds"].astype(float).iloc[0])
        extract = pd.to_numeric(s.get("extract_seconds", pd.Series(dtype=float)), errors="coerce")
        per_seed.append(grid + (float(extract.iloc[0]) if len(extract) and not np.isnan(extract.iloc[0]) else 0.0))
    return float(np.mean(per_seed))


def scatter(table: pd.DataFrame, place: dict, predictor: str, path: Path) -> Path:
    """Random (x) vs trained (y) accuracy, one point per front-end with std error bars; the diagonal for scale."""
    plt = pyplot()

    t = table.dropna(subset=[f"{predictor} mean", f"{TRAINED} mean"])
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.errorbar(100 * t[f"{predictor} mean"], 100 * t[f"{TRAINED} mean"], xerr=100 * t[f"{predictor} std"].fillna(0),
                yerr=100 * t[f"{TRAINED} std"].fillna(0), fmt="o", capsize=3)
    for _, r in t.iterrows():
        ax.annotate(r["frontend"], (100 * r[f"{predictor} mean"], 100 * r[f"{TRAINED} mean"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    lo = 100 * min(t[f"{predictor} mean"].min(), t[f"{TRAINED} mean"].min()) - 5
    hi = 100 * max(t[f"{predictor} mean"].max(), t[f"{TRAINED} mean"].max()) + 5
    ax.plot([lo, hi], [lo, hi], "--", color="gray", linewidth=0.8)
    ax.set_xlabel(f"{predictor.upper()} on random features: accuracy (%)")
    ax.set_ylabel("trained end to end: accuracy (%)")
    ax.set_title(f"{place['dataset']} · {place['width']} · {place['protocol']}")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def tau_plot(agree: pd.DataFrame, title: str, path: Path) -> Path:
    """Each predictor's Kendall tau with the trained ranking and its 95% interval, best at the top."""
    plt = pyplot()

    g = agree.dropna(subset=["tau"]).sort_values("tau")
    fig, ax = plt.subplots(figsize=(5.6, 0.9 + 0.32 * max(1, len(g))))
    y = np.arange(len(g))
    err = np.vstack([(g["tau"] - g["tau_low"]).clip(lower=0), (g["tau_high"] - g["tau"]).clip(lower=0)]).astype(float)
    ax.errorbar(g["tau"], y, xerr=np.nan_to_num(err), fmt="o", capsize=3)
    ax.set_yticks(y, g["predictor"])
    ax.axvline(0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Kendall tau with the trained ranking [95% bootstrap]")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return save_png(fig, path)


def markdown_section(agree: pd.DataFrame, fronts: pd.DataFrame, figures: list[Path],
                     proxy_scores: pd.DataFrame | None = None) -> list[str]:
    def num(x):
        return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"

    lines = ["## Random vs trained: does the random ranking predict the trained one?", "",
             "Each front-end trained end to end on the same splits (train stage; recipe in the job's config). "
             "rho: Spearman, tau: Kendall, between each predictor's ranking and the trained ranking of the same "
             "front-ends; [95% bootstrap interval over (fold, seed) units]. `svm`/`elm`: random features; "
             "`…@trained`: the same grid on the trained weights' features; `trained@1epoch`: one epoch of the recipe; "
             "naswot, synflow, snip, grad_norm, jacob_cov, fisher, params, flops: the NAS field's proxies at "
             "initialisation, on a minibatch of each fold's training part (scores below).", ""]
    for place, g in agree.groupby(PLACE, sort=True):
        lines += [f"### {' · '.join(map(str, place))}", "",
                  "| predictor | front-ends | units | rho [95%] | tau [95%] | its winner | trained winner | same | in trained top 3 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in g.itertuples():
            lines.append(f"| {r.predictor} | {r.n_frontends} | {r.n_units} | {num(r.rho)} [{num(r.rho_low)}, {num(r.rho_high)}] | "
                         f"{num(r.tau)} [{num(r.tau_low)}, {num(r.tau_high)}] | {r.predictor_winner} | {r.trained_winner} | "
                         f"{'yes' if r.same_winner else 'no'} | {'yes' if r.winner_in_trained_top3 else 'no'} |")
        f = fronts[(fronts[PLACE] == pd.Series(dict(zip(PLACE, place)))).all(axis=1)]
        conds = [c[:-5] for c in f.columns if c.endswith(" mean")]
        lines += ["", "| front-end | " + " | ".join(conds) + " | random s | training s | one epoch s | training / random |",
                  "|---" * (len(conds) + 5) + "|"]
        for _, r in f.sort_values(f"{TRAINED} mean", ascending=False).iterrows():
            accs = [f"{pct(r[c + ' mean'])} ± {pct(r[c + ' std']) or 'n/a'}" for c in conds]
            lines.append(f"| {r.frontend} | " + " | ".join(accs) + f" | {r.random_seconds:.0f} | {r.training_seconds:.0f} | "
                         f"{r.one_epoch_seconds:.0f} | {num(r.training_over_random)} |")
        lines.append("")
        if proxy_scores is not None and len(proxy_scores):
            p = proxy_scores[(proxy_scores[PLACE] == pd.Series(dict(zip(PLACE, place)))).all(axis=1)]
            if len(p):
                wide = p.pivot(index="frontend", columns="predictor", values="score")
                secs = p.groupby("predictor")["seconds"].mean()
                names = [c for c in secs.index]
                lines += ["Proxy scores (mean over folds and seeds; higher predicts better):", "",
                          "| front-end | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
                lines += [f"| {fe} | " + " | ".join(f"{wide.loc[fe, n]:.4g}" for n in names) + " |" for fe in wide.index]
                lines += ["| seconds per minibatch | " + " | ".join(f"{secs[n]:.2f}" for n in names) + " |", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures] + [""]
    return lines
