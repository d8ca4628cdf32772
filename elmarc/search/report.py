"""What a search leaves in its sweep folder, rewritten after every batch of trials:

    trials.csv        every trial: its point, front-end name, state, score, seconds (the job's wall time),
                      compute_seconds (its cost on an empty cache, as the caches recorded it), and the trial it repeats
    compare.csv       the compared front-ends (the ten), scored as a trial is
    trajectory.png    each trial's score and the best so far, by trial
    best/frontend/search/<variant>.yaml   the top k points as front-end configs (ready for frontend=search/<variant>
                      with hydra.searchpath=[file://<sweep>/best], or to copy into your config folder)
    search.md         the search's definition, its budget and cost, the top k, and the command that confirms them

    python -m elmarc.search.report <sweep dir>      # the same files again, from the study's storage
    python -m elmarc.search.report --summary [docs/data/search]   # one table row per search kept there
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from ..storage import atomic_write_csv, atomic_write_text, make_dirs
from . import space as spaces

TRIALS = "trials.csv"
TIE = 1e-9        # scores are means of fold accuracies: two equal ones can differ in the last bit
TEN = "temporal,7x96,frame_level,frame_level_many,7x86,timbral_temporal,timbral_time,timbral,sample_level,vgg"


def compute_seconds(job_dir: Path) -> float:
    """What a trial's job costs on an empty cache, as its caches recorded it (not the job's wall time, which a
    cache hit shortens): the extraction's seconds (status.json) plus the grid's (results.csv) and the proxy's
    (scores.csv), summed over its folds."""
    status = job_dir / "status.json"
    if not status.is_file():
        return float("nan")
    total = float(json.loads(status.read_text()).get("extract_seconds", float("nan")))
    for name, column in (("results.csv", "grid_seconds"), ("scores.csv", "seconds")):
        if (job_dir / name).is_file():
            total += float(pd.read_csv(job_dir / name)[column].sum())
    return round(total, 3)


def trial_cost(trial, sweep_dir: Path | None) -> float:
    """compute_seconds of one trial: nothing for a repeat (no job ran), unknown without its job folder."""
    if "same_as" in trial.user_attrs:
        return 0.0
    job = trial.user_attrs.get("job_dir")
    return compute_seconds(Path(sweep_dir) / job) if sweep_dir is not None and job else float("nan")


def trial_rows(study, sweep_dir: Path | None = None) -> pd.DataFrame:
    """One row per trial asked; compute_seconds needs the trials' job folders (sweep_dir)."""
    rows = []
    cut = set(study.user_attrs.get("interrupted", []))
    for t in study.get_trials(deepcopy=False):
        if not t.params:
            continue
        tname, point = spaces.point_of(t.params)
        state = "interrupted" if t.number in cut else t.state.name.lower()
        rows.append({"trial": t.number, "state": state, "template": tname, "point": json.dumps(point, sort_keys=True),
                     "frontend": spaces.name_of(tname, point), "score": t.value if t.value is not None else float("nan"),
                     "seconds": t.user_attrs.get("seconds", float("nan")),
                     "compute_seconds": trial_cost(t, sweep_dir),
                     "same_as": t.user_attrs.get("same_as", ""),
                     "job_dir": t.user_attrs.get("job_dir", ""), "error": t.user_attrs.get("error", "")})
    return pd.DataFrame(rows, columns=["trial", "state", "template", "point", "frontend", "score", "seconds",
                                       "compute_seconds", "same_as", "job_dir", "error"])


def top(trials: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k best distinct points (ties: the earlier trial first)."""
    done = trials[(trials["state"] == "complete") & (trials["same_as"] == "")]
    order = done.assign(tied=(done["score"] / TIE).round()).sort_values(["tied", "trial"], ascending=[False, True])
    return order.drop(columns="tied").head(k)


def trajectory_plot(trials: pd.DataFrame, path: Path, predictor: str, compare: dict | None = None) -> None:
    from ..report.plots import pyplot, save_png

    plt = pyplot()
    done = trials[trials["state"] == "complete"].sort_values("trial")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(done):
        ax.scatter(done["trial"], done["score"], s=12, color="0.6", label="trial")
        ax.step(done["trial"], done["score"].cummax(), where="post", color="C0", label="best so far")
    scored = {k: v["score"] for k, v in (compare or {}).items() if v.get("score") is not None}
    if scored:
        best = max(scored, key=scored.get)
        ax.axhline(scored[best], color="C3", linestyle="--", label=f"best of the compared ({best})")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"score ({predictor})")
    ax.legend(loc="lower right")
    save_png(fig, path, dpi=120)


def confirm_command(sweep_dir: Path, best: pd.DataFrame, fixed: list[str], compare: str, holdout: list[int]) -> str:
    names = ",".join(f"search/{n.split('/', 1)[1]}" for n in best["frontend"])
    args = " ".join(fixed)
    folds = f" train_folds=[{','.join(map(str, holdout))}]" if holdout else ""
    return (f"elmarc -m hydra.searchpath=[file://{sweep_dir.resolve() / 'best'}] {args} frontend={names},{compare} "
            f"protocol=nested classifier=svm,elm \"stage='all,train'\" recipe=budget{folds}")


def write_search(study, space: dict, sweep_dir: Path, *, holdout: list[int], predictor: str, top_k: int = 3) -> pd.DataFrame:
    sweep_dir = Path(sweep_dir)
    trials = trial_rows(study, sweep_dir)
    atomic_write_csv(sweep_dir / TRIALS, trials)
    compare = study.user_attrs.get("compare", {})
    atomic_write_csv(sweep_dir / "compare.csv", pd.DataFrame(
        [{"frontend": k, "score": v.get("score"), "error": v.get("error", "")} for k, v in compare.items()],
        columns=["frontend", "score", "error"]))
    trajectory_plot(trials, sweep_dir / "trajectory.png", predictor, compare)
    best = top(trials, top_k)
    out = sweep_dir / "best" / "frontend" / "search"
    make_dirs(out)
    keep = {f"{r.frontend.split('/', 1)[1]}.yaml" for r in best.itertuples()}
    for old in out.glob("*.yaml"):          # a point no longer in the top k (the study went on)
        if old.name not in keep:
            old.unlink()
    for r in best.itertuples():
        cfg = spaces.frontend_config(space, r.template, json.loads(r.point))
        cfg["name"] = f"search/{r.frontend.split('/', 1)[1]}"
        text = (f"# Trial {r.trial} of the search in {sweep_dir} (space {space.get('name')!r}, predictor {predictor}):"
                f" score {r.score:.4f}\n" + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=120))
        atomic_write_text(out / f"{cfg['name'].split('/', 1)[1]}.yaml", text)
    definition = study.user_attrs.get("definition", {})
    fixed = [o for o in definition.get("fixed_overrides", []) if not o.startswith("space=")]
    done = trials[trials["state"].isin(["complete", "fail"])]
    lines = [f"# Search {study.study_name}", "",
             f"- space: {space.get('name')} ({spaces.size(space)} points; templates {', '.join(space['templates'])})",
             f"- predictor: {predictor}; sampler {definition.get('sampler')} (seed {definition.get('seed')})",
             f"- fixed overrides: {' '.join(fixed) or '(none)'}",
             (f"- honesty: every score was computed without folds {holdout} (0-based; their clips were never read); "
              f"report the chosen architectures' accuracy on those folds only" if holdout else
              "- honesty: **no folds were held out**: the scores saw every fold, so an accuracy of a chosen "
              "architecture on them is optimistic"),
             f"- trials: {len(done)} finished ({int((trials['state'] == 'fail').sum())} failed, "
             f"{int((trials['same_as'] != '').sum())} repeats of an earlier point), "
             f"{int((trials['state'] == 'interrupted').sum())} interrupted and asked again; "
             f"{trials['seconds'].sum():.0f} s of jobs, {trials['compute_seconds'].sum():.0f} s to compute on an empty cache", "",
             f"## Best {len(best)}", "", "| rank | trial | front-end | score | compute seconds |", "|---|---|---|---|---|"]
    for i, r in enumerate(best.itertuples(), 1):
        lines.append(f"| {i} | {r.trial} | {r.frontend} | {r.score:.4f} | {r.compute_seconds:.1f} |")
    if compare:
        lines += ["", "## Where the compared front-ends stand (same predictor, same folds)", "",
                  "| front-end | score | trials that beat it |", "|---|---|---|"]
        ranked = sorted(compare.items(), key=lambda kv: -(kv[1]["score"] if kv[1].get("score") is not None else -1))
        done_scores = trials.loc[(trials["state"] == "complete") & (trials["same_as"] == ""), "score"]
        for name, v in ranked:
            if v.get("score") is None:
                lines.append(f"| {name} | failed: {v.get('error', '')[:120]} | |")
            else:
                lines.append(f"| {name} | {v['score']:.4f} | {int((done_scores > v['score'] + TIE).sum())} of {len(done_scores)} |")
    if len(best):
        lines += ["", "Their configs: `best/frontend/search/`. Confirm them by training, beside the paper's ten, on the "
                  "held-out folds with the nested protocol (then `python -m elmarc.search.confirm <that sweep> --search "
                  "<this folder>`):", "",
                  "    " + confirm_command(sweep_dir, best, fixed, ",".join(compare) or TEN, holdout)]
    atomic_write_text(sweep_dir / "search.md", "\n".join(lines) + "\n")
    return trials


def summary(folder: Path) -> str:
    """One row per search whose trials.csv and compare.csv lie in folder (docs/data/search: <name>.csv,
    <name>-compare.csv): its budget, best point and where the best of the compared stands."""
    lines = ["| search | trials (distinct points) | job seconds | compute seconds | best | its score | best compared | its score | distinct points above it |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(Path(folder).glob("*.csv")):
        if path.stem.endswith(("-compare", "-confirm")) or not path.with_name(f"{path.stem}-compare.csv").is_file():
            continue
        t = pd.read_csv(path, keep_default_na=False)
        c = pd.read_csv(path.with_name(f"{path.stem}-compare.csv")).dropna(subset=["score"])
        done = t[t["state"] == "complete"]
        distinct = done[done["same_as"] == ""]
        b = top(t, 1).iloc[0]
        cb = c.sort_values("score", ascending=False).iloc[0] if len(c) else None
        above = int((distinct["score"] > cb["score"] + TIE).sum()) if cb is not None else 0
        lines.append(f"| {path.stem} | {len(done)} ({len(distinct)}) | {pd.to_numeric(t['seconds']).sum():.0f} | "
                     f"{pd.to_numeric(t['compute_seconds']).sum():.0f} | {b['frontend']} | "
                     f"{100 * b['score']:.1f} | {'' if cb is None else cb['frontend']} | {'' if cb is None else f'{100 * cb.score:.1f}'} | {above} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--summary"]:
        print(summary(Path(argv[1] if len(argv) > 1 else "docs/data/search")), end="")
        return 0
    parser = argparse.ArgumentParser(prog="python -m elmarc.search.report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    import optuna

    from .sweeper import open_storage

    sweep = Path(args.sweep_dir)
    storage = open_storage(None, sweep)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)] if args.study_name is None else [args.study_name]
    if len(names) != 1:
        print(f"elmarc: error: {sweep} holds studies {names}; name one with --study-name", file=sys.stderr)
        return 2
    study = optuna.load_study(study_name=names[0], storage=storage)
    d = study.user_attrs["definition"]
    write_search(study, d["space"], sweep, holdout=d["holdout_folds"], predictor=d["predictor"], top_k=args.top_k)
    print((sweep / "search.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
