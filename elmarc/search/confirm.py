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


def searches(dirs: list[Path]) -> tuple[dict, dict, list[int]]:
    """(front-end -> which search found it, front-end -> its search score, the held-out folds all share)."""
    origins, scores, holdouts = {}, {}, set()
    for d in dirs:
        trials = pd.read_csv(d / "trials.csv", keep_default_na=False)
        made_by = definition(d)
        sampler = made_by["sampler"]
        done = trials[(trials["state"] == "complete") & (trials["same_as"] == "")]
        for r in done.itertuples():
            name = "search/" + r.frontend.split("/", 1)[1]
            if name not in origins or r.score > scores[name]:
                origins[name], scores[name] = f"search ({sampler})", float(r.score)
        holdouts.add(json.dumps(made_by["holdout_folds"]))
    if len(holdouts) != 1:
        raise SystemExit(f"elmarc: error: the searches held out different folds ({sorted(holdouts)}): confirm them apart")
    return origins, scores, json.loads(holdouts.pop())


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elmarc.search.confirm", description=__doc__.split("\n")[0])
    parser.add_argument("confirm_dir")
    parser.add_argument("--search", action="append", required=True, help="a search's sweep folder (repeatable)")
    parser.add_argument("--out", default=None, help="markdown file (default <first search>/confirm.md)")
    args = parser.parse_args(argv)
    dirs = [Path(d) for d in args.search]
    origins, scores, folds = searches(dirs)
    pred = held_out_predictions(Path(args.confirm_dir), folds)
    t = table(pred, origins, scores)
    found = t[t["from"] != "the ten"].dropna(subset=["trained"])
    ten = t[t["from"] == "the ten"].dropna(subset=["trained"])
    diff = ""
    if len(found) and len(ten):
        # the search's pick: its best search score among those trained; the ten's: the best trained (optimistic for the ten)
        pick = found.sort_values("search_score", ascending=False).iloc[0]["frontend"]
        best_ten = ten.iloc[0]["frontend"]
        m, lo, hi, n = paired_difference(pred, pick, best_ten)
        diff = (f"The search's pick {pick} trained minus the best of the ten trained ({best_ten}, chosen on these folds, "
                f"which favours the ten): {100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}], paired over {n} clips.")
    out = Path(args.out) if args.out else dirs[0] / "confirm.md"
    atomic_write_text(out, markdown(t, folds, diff))
    atomic_write_csv(out.with_suffix(".csv"), t)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
