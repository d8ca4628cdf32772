"""A search's best architectures confirmed: their accuracy on the held-out folds, random and trained, beside the ten.

    python -m elmarc.search.confirm <confirm sweep> --search <search dir> [--search <another search dir>] [--out confirm.md]

The confirm sweep is the one search.md prints (the top k and the paper's ten, protocol=nested, stage='all,train',
on every fold); only its rows of the folds the searches never read count here. Intervals: 95% percentile bootstrap
over those folds' clips (seeded); a difference is paired (the same clips resampled for both front-ends).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..storage import atomic_write_csv, atomic_write_text
from .report import top

CLASSIFIERS = ("svm", "elm", "trained")
N_BOOT = 2000


def held_out_predictions(confirm_dir: Path, folds: list[int]) -> pd.DataFrame:
    """Per-clip predictions of every job of the confirm sweep, on the held-out folds only, correct as 0/1."""
    parts = [pd.read_csv(p, dtype={"clip_id": str}) for p in sorted(Path(confirm_dir).glob("*/predictions.csv"))]
    if not parts:
        raise SystemExit(f"elmarc: error: {confirm_dir} holds no job with predictions.csv: run the confirm sweep first")
    pred = pd.concat(parts, ignore_index=True)
    pred = pred[pred["fold"].astype(str).isin([str(f) for f in folds]) & pred["classifier"].isin(CLASSIFIERS)]
    pred = pred.drop_duplicates(["frontend", "classifier", "clip_id"])
    return pred.assign(correct=(pred["label"].astype(str) == pred["predicted"].astype(str)).astype(float))


def bootstrap(correct: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), (N_BOOT, len(correct)))
    means = correct[idx].mean(axis=1)
    return float(correct.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(pred: pd.DataFrame, origins: dict[str, str], scores: dict[str, float]) -> pd.DataFrame:
    rows = []
    for fe, g in pred.groupby("frontend", sort=False):
        row = {"frontend": fe, "from": origins.get(fe, "the ten"), "search_score": scores.get(fe, np.nan)}
        for c in CLASSIFIERS:
            x = g.loc[g["classifier"] == c].sort_values("clip_id")["correct"].to_numpy()
            m, lo, hi = bootstrap(x) if len(x) else (np.nan, np.nan, np.nan)
            row.update({c: m, f"{c}_low": lo, f"{c}_high": hi, f"{c}_clips": len(x)})
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("trained", ascending=False, na_position="last").reset_index(drop=True)
    ten = out[out["from"] == "the ten"]
    out["rank_among_ten"] = [int((ten["trained"] > v).sum()) + 1 if np.isfinite(v) else np.nan for v in out["trained"]]
    return out


def paired_difference(pred: pd.DataFrame, a: str, b: str, classifier: str = "trained") -> tuple[float, float, float, int]:
    pa = pred[(pred["frontend"] == a) & (pred["classifier"] == classifier)].set_index("clip_id")["correct"]
    pb = pred[(pred["frontend"] == b) & (pred["classifier"] == classifier)].set_index("clip_id")["correct"]
    both = pa.index.intersection(pb.index).sort_values()
    d = pa.loc[both].to_numpy() - pb.loc[both].to_numpy()
    m, lo, hi = bootstrap(d)
    return m, lo, hi, len(both)


def searches(dirs: list[Path]) -> tuple[dict, dict, dict, list[int]]:
    """(front-end -> the searches that found it, front-end -> its best search score, search -> its front-ends best
    first, the held-out folds all share). The ten's scores are the searches' compare.csv: the same predictor on the
    same folds, so the ten's pick by that score stands beside the search's."""
    found_by, scores, ranked, holdouts = {}, {}, {}, set()
    for d in dirs:
        trials = pd.read_csv(d / "trials.csv", keep_default_na=False)
        made_by = definition(d)
        done = top(trials, len(trials))
        names = ["search/" + f.split("/", 1)[1] for f in done["frontend"]]
        ranked[f"search ({made_by['sampler']})"] = names
        for name, score in zip(names, done["score"]):
            found_by.setdefault(name, []).append(made_by["sampler"])
            scores[name] = max(float(score), scores.get(name, -np.inf))
        if (d / "compare.csv").exists():
            compared = pd.read_csv(d / "compare.csv", keep_default_na=False)
            for r in compared[compared["error"] == ""].itertuples():
                scores[r.frontend] = max(float(r.score), scores.get(r.frontend, -np.inf))
        holdouts.add(json.dumps(made_by["holdout_folds"]))
    if len(holdouts) != 1:
        raise SystemExit(f"elmarc: error: the searches held out different folds ({sorted(holdouts)}): confirm them apart")
    origins = {name: f"search ({', '.join(samplers)})" for name, samplers in found_by.items()}
    return origins, scores, ranked, json.loads(holdouts.pop())


def definition(search_dir: Path) -> dict:
    """What made the search in search_dir (space, predictor, sampler, folds ...), from its study."""
    import optuna

    from .sweeper import open_storage

    storage = open_storage(None, search_dir)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).user_attrs["definition"]


def held_out(search_dir: Path) -> list[int]:
    return definition(search_dir)["holdout_folds"]


def markdown(t: pd.DataFrame, folds: list[int], diff: str) -> str:
    f = lambda r, c: "" if not np.isfinite(r[c]) else f"{100 * r[c]:.1f} [{100 * r[c + '_low']:.1f}, {100 * r[c + '_high']:.1f}]"
    lines = [f"Accuracy % on the held-out folds {folds} (0-based; never read by the searches), 95% bootstrap over "
             f"their {int(t['trained_clips'].max())} clips:", "",
             "| front-end | from | search score | SVM random | ELM random | trained | trained rank among the ten |",
             "|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        score = "" if not np.isfinite(r["search_score"]) else f"{100 * r['search_score']:.1f}"
        rank = "" if not np.isfinite(r["rank_among_ten"]) else int(r["rank_among_ten"])
        lines.append(f"| {r['frontend']} | {r['from']} | {score} | {f(r, 'svm')} | {f(r, 'elm')} | {f(r, 'trained')} | {rank} |")
    return "\n".join(lines + ["", diff]) + "\n"


def differences(pred: pd.DataFrame, t: pd.DataFrame, ranked: dict[str, list[str]]) -> str:
    """The paired trained-accuracy differences a search is judged by, one line each. Each search's pick (its best
    search score among the front-ends trained) against the best of the ten trained (chosen on these folds, which
    favours the ten) and against the ten's pick by the same search score (what a user without the search would
    train); with two searches, their picks against each other."""
    trained = set(t.dropna(subset=["trained"])["frontend"])
    ten = t[(t["from"] == "the ten") & t["frontend"].isin(trained)]
    picks = {o: next(f for f in names if f in trained) for o, names in ranked.items() if trained.intersection(names)}
    if not picks or not len(ten):
        return ""

    def line(a: str, b: str, what: str) -> str:
        m, lo, hi, n = paired_difference(pred, a, b)
        return f"{what}: {100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}], paired over {n} clips."

    best_ten = ten.iloc[0]["frontend"]
    scored_ten = ten.dropna(subset=["search_score"]).sort_values("search_score", ascending=False, kind="stable")
    lines = []
    ten_pick = scored_ten.iloc[0] if len(scored_ten) else None
    same = ten_pick is not None and ten_pick["frontend"] == best_ten
    for origin, pick in picks.items():
        who = "The search's pick" if len(picks) == 1 else f"{origin}'s pick"
        also = f", also the ten's pick by the same search score, {100 * ten_pick['search_score']:.1f}" if same else ""
        lines.append(line(pick, best_ten, f"{who} {pick} trained minus the best of the ten trained ({best_ten}, "
                                          f"chosen on these folds, which favours the ten{also})"))
        if ten_pick is not None and not same:
            lines.append(line(pick, ten_pick["frontend"], f"{who} {pick} trained minus the ten's pick by the same search "
                                                          f"score ({ten_pick['frontend']}, {100 * ten_pick['search_score']:.1f})"))
    if len(picks) > 1:
        (oa, a), (ob, b) = sorted(picks.items(), key=lambda kv: kv[0] != "search (tpe)")[:2]
        lines.append(line(a, b, f"{oa}'s pick {a} trained minus {ob}'s pick {b}"))
    return "\n\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elmarc.search.confirm", description=__doc__.split("\n")[0])
    parser.add_argument("confirm_dir")
    parser.add_argument("--search", action="append", required=True, help="a search's sweep folder (repeatable)")
    parser.add_argument("--out", default=None, help="markdown file (default <first search>/confirm.md)")
    args = parser.parse_args(argv)
    dirs = [Path(d) for d in args.search]
    origins, scores, ranked, folds = searches(dirs)
    pred = held_out_predictions(Path(args.confirm_dir), folds)
    t = table(pred, origins, scores)
    diff = differences(pred, t, ranked)
    out = Path(args.out) if args.out else dirs[0] / "confirm.md"
    atomic_write_text(out, markdown(t, folds, diff))
    atomic_write_csv(out.with_suffix(".csv"), t)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
