"""The proxy study as data: a sweep's conditions in one small CSV, and the README's table from such CSVs.

    python -m elmarc.report.study <sweep folder> --set ten --out docs/data/proxies/esc10-ten.csv
    python -m elmarc.report.study --tables docs/data/proxies        # the table, from the CSVs alone

A study CSV has one row per (dataset, front-end, width, protocol, seed, fold, condition), long:
    condition   svm, elm (random features), trained, trained@1epoch, svm@trained, elm@trained, or a proxy name
    value       accuracy for the classifiers, the score for a proxy
    seconds     what that fold's value cost: a proxy's minibatch; a fold's training (every learning rate); for the
                random read-out, the extraction plus the whole grid, shared equally by the folds
and its first lines, comments, are the commands that made it. A new predictor is compared by adding its rows
(score per seed and fold); nothing is trained again.

Writing into an existing CSV merges: a row of the new sweep replaces the row with the same key (KEYS + condition),
the other rows stay. So a study moves between machines through its CSV: --untrained lists the front-ends whose
training is not yet in it, and a sweep of just those completes it (make proxy-study does both).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import PROXY_NAMES
from ..storage import atomic_write_text
from .agreement import TRAINED, agreement, tau_plot
from .tables import gather, gather_scores

KEYS = ["dataset", "set", "frontend", "width", "protocol", "seed", "fold"]
COLUMNS = KEYS + ["condition", "value", "seconds"]


def study_rows(sweep: Path, set_name: str) -> pd.DataFrame:
    """The long table of one sweep folder (features as extracted; the standardised grid rows are left out)."""
    rows, _, _ = gather(Path(sweep))
    out = []
    if len(rows):
        rows = rows[rows["standardize"].astype(str).str.lower() == "false"]
        rows = rows.drop_duplicates(subset=["dataset", "frontend", "width", "protocol", "classifier", "seed", "fold"])
        for (fe, clf, seed), g in rows.groupby(["frontend", "classifier", "seed"]):
            seconds = g["grid_seconds"].astype(float)
            if "@" not in clf and not clf.startswith("trained"):       # the grid's seconds are on every fold's row
                extract = pd.to_numeric(g.get("extract_seconds", pd.Series(0.0, index=g.index)), errors="coerce").fillna(0.0)
                seconds = (seconds + extract) / len(g)
            out.append(pd.DataFrame({"dataset": g["dataset"], "set": set_name, "frontend": fe, "width": g["width"],
                                     "protocol": g["protocol"], "seed": int(seed), "fold": g["fold"].astype(str),
                                     "condition": clf, "value": g["accuracy"].astype(float), "seconds": seconds}))
    scores = gather_scores(Path(sweep))
    if len(scores):
        out.append(pd.DataFrame({"dataset": scores["dataset"], "set": set_name, "frontend": scores["frontend"],
                                 "width": scores["width"], "protocol": scores["protocol"], "seed": scores["seed"].astype(int),
                                 "fold": scores["fold"].astype(str), "condition": scores["predictor"],
                                 "value": pd.to_numeric(scores["score"], errors="coerce"),
                                 "seconds": scores["seconds"].astype(float)}))
    if not out:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(out, ignore_index=True)[COLUMNS]
    return table.sort_values(["frontend", "condition", "seed", "fold"], kind="stable").reset_index(drop=True)


def write_csv(table: pd.DataFrame, path: Path, command: str, merge: bool = False) -> Path:
    """The CSV at path, headed by its commands; merge: into the rows already there (the new ones win)."""
    path = Path(path)
    commands = [command]
    if merge and path.is_file():
        old = read_csv(path)
        commands = [c for c in read_commands(path) if c != command] + commands
        key = KEYS + ["condition"]
        new_keys = pd.MultiIndex.from_frame(table[key].astype(str))
        kept = old[~pd.MultiIndex.from_frame(old[key].astype(str)).isin(new_keys)]
        table = pd.concat([kept, table], ignore_index=True)[COLUMNS]
        table = table.sort_values(["frontend", "condition", "seed", "fold"], kind="stable").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"# {c}\n" for c in commands) + table.to_csv(index=False, float_format="%.10g"))
    return path


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"fold": str})


def read_commands(path: Path) -> list[str]:
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith("# "):
                break
            lines.append(line[2:].rstrip("\n"))
    return lines


def untrained(table: pd.DataFrame, frontends: list[str]) -> list[str]:
    """Those of frontends (in their order) without a trained row for every fold the table has for them."""
    folds = table.groupby("frontend")["fold"].nunique()
    trained = table[table["condition"] == TRAINED].groupby("frontend")["fold"].nunique()
    return [f for f in frontends if f not in trained.index or trained[f] < folds.get(f, 0)]


def as_rows_and_scores(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long table back in the report's shapes (result rows; proxy scores), for report.agreement."""
    is_proxy = table["condition"].isin(PROXY_NAMES)
    r = table[~is_proxy]
    rows = pd.DataFrame({"dataset": r["dataset"], "width": r["width"], "protocol": r["protocol"], "standardize": False,
                         "seed": r["seed"], "fold": r["fold"], "frontend": r["frontend"], "classifier": r["condition"],
                         "accuracy": r["value"]})
    s = table[is_proxy]
    scores = pd.DataFrame({"dataset": s["dataset"], "width": s["width"], "protocol": s["protocol"], "seed": s["seed"],
                           "fold": s["fold"], "frontend": s["frontend"], "predictor": s["condition"], "score": s["value"]})
    return rows, scores


def cost_per_architecture(table: pd.DataFrame) -> pd.Series:
    """condition -> median over front-ends of the seconds of every fold (mean over seeds)."""
    per = table.groupby(["frontend", "condition", "seed"])["seconds"].sum().groupby(["frontend", "condition"]).mean()
    return per.groupby("condition").median()


def set_size(set_name: str) -> int:
    """How many architectures a named set has: the ten CNN front-ends, the packaged family's variants; else 0
    (the CSV's own front-ends count)."""
    if set_name == "ten":
        return 10
    if set_name == "family":
        from ..frontends import family

        return len(family.sample(family.load()))
    return 0


def agreement_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, set) x predictor: Kendall's tau and Spearman's rho with the trained ranking, their intervals,
    winners, and the cost per architecture."""
    out = []
    for (ds, set_name), g in table.groupby(["dataset", "set"], sort=True):
        if not (g["condition"] == TRAINED).any():
            continue
        rows, scores = as_rows_and_scores(g)
        agree = agreement(rows, scores)
        cost = cost_per_architecture(g)
        n_set = max(g["frontend"].nunique(), set_size(set_name))
        for r in agree.itertuples():
            out.append({"dataset": ds, "set": set_name, "n_set": n_set, "predictor": r.predictor, "n_frontends": r.n_frontends,
                        "n_units": r.n_units, "tau": r.tau, "tau_low": r.tau_low, "tau_high": r.tau_high, "rho": r.rho,
                        "rho_low": r.rho_low, "rho_high": r.rho_high, "same_winner": r.same_winner,
                        "winner_in_trained_top3": r.winner_in_trained_top3, "predictor_winner": r.predictor_winner,
                        "trained_winner": r.trained_winner, "seconds_per_architecture": cost.get(r.predictor, np.nan),
                        "trained_seconds_per_architecture": cost.get(TRAINED, np.nan)})
    return pd.DataFrame(out)


def num(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"


def secs(x: float) -> str:
    return "n/a" if np.isnan(x) else (f"{x:.2g}" if x < 10 else f"{x:.0f}")


def markdown(agree: pd.DataFrame) -> str:
    lines = []
    for (ds, set_name), g in agree.groupby(["dataset", "set"], sort=True):
        g = g.sort_values("tau", ascending=False)
        trained = int(g.n_frontends.max())
        lines += [f"**{ds}, {set_name}** ({trained} architectures"
                  + (f" of {int(g.n_set.max())}: the rest not trained yet" if trained < int(g.n_set.max()) else "")
                  + f", {int(g.n_units.max())} folds; "
                  f"trained winner {g.trained_winner.iloc[0]}, "
                  f"training {secs(g.trained_seconds_per_architecture.iloc[0])} s per architecture)", "",
                  "| predictor | Kendall tau [95%] | Spearman rho [95%] | its winner | in trained top 3 | s per architecture |",
                  "|---|---|---|---|---|---|"]
        for r in g.itertuples():
            lines.append(f"| {r.predictor} | {num(r.tau)} [{num(r.tau_low)}, {num(r.tau_high)}] | {num(r.rho)} "
                         f"[{num(r.rho_low)}, {num(r.rho_high)}] | {r.predictor_winner}{' (= trained)' if r.same_winner else ''} | "
                         f"{'yes' if r.winner_in_trained_top3 else 'no'} | {secs(r.seconds_per_architecture)} |")
        lines.append("")
    return "\n".join(lines)


def wide_markdown(agree: pd.DataFrame, studies: dict | None = None) -> str:
    """The README's table: a row per predictor, a column per (dataset, set): Kendall tau [95%] and seconds per
    architecture; rows in the order of the mean tau over the columns. studies: (dataset, set) -> its size, for
    every study with rows (one with no architecture trained yet is named under the table too)."""
    def cell(r):
        return f"{r.tau:.2f} [{r.tau_low:.2f}, {r.tau_high:.2f}], {secs(r.seconds_per_architecture)} s"

    complete = agree[agree["n_frontends"] == agree["n_set"]]
    partial = agree[agree["n_frontends"] < agree["n_set"]].groupby(["dataset", "set"])[["n_frontends", "n_set"]].max()
    for (ds, s), n_set in (studies or {}).items():
        if not ((agree["dataset"] == ds) & (agree["set"] == s)).any():
            partial.loc[(ds, s), ["n_frontends", "n_set"]] = [0, n_set]
    partial = partial.astype(int).sort_index()
    agree = complete
    places = sorted({(r.dataset, r.set) for r in agree.itertuples()})
    order = agree.groupby("predictor")["tau"].mean().sort_values(ascending=False).index
    head = ["predictor"] + [f"{ds}, {s} ({int(g.n_frontends.max())}; training {g.trained_seconds_per_architecture.iloc[0]:.0f} s)"
                            for (ds, s) in places for g in [agree[(agree.dataset == ds) & (agree.set == s)]]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name in order:
        cells = []
        for ds, s in places:
            m = agree[(agree.dataset == ds) & (agree.set == s) & (agree.predictor == name)]
            cells.append(cell(next(m.itertuples())) if len(m) else "not run")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(partial):                 # a study half-trained ranks only what it trained: not in the table yet
        lines += ["", "Not yet in this table (training under way): " + "; ".join(
            f"{ds}, {s} ({r.n_frontends} of {r.n_set} architectures trained)" for (ds, s), r in partial.iterrows()) + "."]
    return "\n".join(lines) + "\n"


KIND_PREDICTORS = ["svm", "elm", "snip", "grad_norm", "fisher", "params", "flops", "synflow", "naswot", "jacob_cov",
                   "trained@1epoch"]


def input_kinds() -> dict:
    """family/<variant> -> 'waveform' or 'spectrogram' (its template's input), for the packaged family."""
    from ..frontends import family

    return {f"family/{v['name']}": "waveform" if v["config"]["model"]["input"] == "waveform" else "spectrogram"
            for v in family.sample(family.load())}


def kinds_markdown(table: pd.DataFrame) -> str:
    """Within each input kind of every fully trained family study: Kendall tau [95%] of each predictor."""
    kinds = input_kinds()
    lines = ["| study | input kind | architectures | " + " | ".join(KIND_PREDICTORS) + " |", "|---" * (3 + len(KIND_PREDICTORS)) + "|"]
    for (ds, set_name), t in table[table["set"] == "family"].groupby(["dataset", "set"], sort=True):
        if set(t.loc[t["condition"] == "trained", "frontend"]) != set(t["frontend"]):
            continue
        for kind in ("spectrogram", "waveform"):
            g = t[t["frontend"].map(kinds) == kind]
            a = agreement_table(g).set_index("predictor")
            cells = [f"{a.loc[n, 'tau']:.2f} [{a.loc[n, 'tau_low']:.2f}, {a.loc[n, 'tau_high']:.2f}]" if n in a.index else "n/a"
                     for n in KIND_PREDICTORS]
            lines.append(f"| {ds}-{set_name} | {kind} | {g['frontend'].nunique()} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def frontends_markdown(table: pd.DataFrame) -> str:
    """Per (dataset, set): each front-end's mean accuracy (%) over folds of the classifier conditions, trained first."""
    shown = ["trained", "svm", "elm", "trained@1epoch", "svm@trained"]
    lines = []
    for (ds, set_name), g in table.groupby(["dataset", "set"], sort=True):
        acc = g[g["condition"].isin(shown)].groupby(["frontend", "condition"])["value"].mean().unstack()
        cols = [c for c in shown if c in acc.columns]
        if "trained" in cols:
            acc = acc.sort_values("trained", ascending=False, na_position="last")
        n = g.groupby("frontend")["fold"].nunique().max()
        lines += [f"**{ds}, {set_name}**: accuracy % (mean over {n} folds; blank: not trained yet)", "",
                  "| front-end | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for fe, r in acc.iterrows():
            lines.append(f"| {fe} | " + " | ".join("" if np.isnan(r[c]) else f"{100 * r[c]:.1f}" for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m elmarc.report.study", description=__doc__.split("\n")[0])
    ap.add_argument("sweep", nargs="?", help="a sweep folder of the study")
    ap.add_argument("--set", default="ten", help="the name of its set of architectures (ten, family)")
    ap.add_argument("--out", help="the study CSV to write")
    ap.add_argument("--tables", help="a folder of study CSVs: print the agreement table, write agreement.csv/.md there")
    ap.add_argument("--untrained", metavar="CSV", help="print which of --frontends have no trained rows in CSV yet")
    ap.add_argument("--frontends", default="", help="with --untrained: the set's front-ends, comma-separated")
    args = ap.parse_args(argv)
    if args.untrained:
        names = [f for f in args.frontends.split(",") if f]
        table = read_csv(Path(args.untrained)) if Path(args.untrained).is_file() else pd.DataFrame(columns=COLUMNS)
        print(",".join(untrained(table, names)))
        return 0
    if args.tables:
        folder = Path(args.tables)
        paths = sorted(p for p in folder.glob("*.csv") if p.name != "agreement.csv")
        if not paths:
            print(f"elmarc.report.study: no study CSVs in {folder}", file=sys.stderr)
            return 2
        table = pd.concat([read_csv(p) for p in paths], ignore_index=True)
        agree = agreement_table(table)
        atomic_write_text(folder / "agreement.csv", agree.to_csv(index=False, float_format="%.6g"))
        studies = {(ds, st): set_size(st) or g["frontend"].nunique() for (ds, st), g in table.groupby(["dataset", "set"])}
        text = ((wide_markdown(agree, studies) + "\n" + markdown(agree)) if len(agree) else "no study has trained rows yet\n")
        kinds = kinds_markdown(table)
        if kinds:
            text += "\nWithin each input kind of a trained family (Kendall tau [95%]):\n\n" + kinds
        text += "\n" + frontends_markdown(table)
        for (ds, set_name), g in agree.groupby(["dataset", "set"], sort=True) if len(agree) else []:
            tau_plot(g, f"{ds}, {set_name}: {int(g.n_frontends.max())} architectures", folder / f"tau_{ds}-{set_name}.png")
        atomic_write_text(folder / "agreement.md", text)
        print(text)
        return 0
    if not args.sweep or not args.out or not Path(args.sweep).is_dir():
        print("elmarc.report.study: give a sweep folder and --out (or --tables <folder>)", file=sys.stderr)
        return 2
    command = " ".join(["python -m elmarc.report.study", *(argv if argv is not None else sys.argv[1:])])
    overrides = Path(args.sweep) / "multirun.yaml"
    if overrides.is_file():
        import yaml

        task = yaml.safe_load(overrides.read_text()).get("hydra", {}).get("overrides", {}).get("task", [])
        command = "elmarc -m " + " ".join(task) + f"  &&  {command}"
    table = study_rows(Path(args.sweep), args.set)
    path = write_csv(table, Path(args.out), command, merge=True)
    print(path, f"({len(table)} rows of this sweep, {len(read_csv(path))} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
