"""Gathering result rows from run folders and writing the markdown report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .paper import paper_accuracy
from .stats import ALPHA, GROUP


def job_dirs(root: Path) -> list[Path]:
    """Folders of single jobs below root: those Hydra wrote a .hydra folder into, or with a status.json."""
    found = {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    found |= {p.parent for p in root.rglob("status.json")}
    return sorted(found)


def gather_predictions(root: Path) -> pd.DataFrame:
    """Per-clip predictions of every job below root (jobs written before they existed have none)."""
    tables = [pd.read_csv(d / "predictions.csv", keep_default_na=False,
                          dtype={"clip_id": str, "fold": str, "label": str, "predicted": str})
              for d in job_dirs(root) if (d / "predictions.csv").is_file()]
    tables = [t for t in tables if len(t) and "frontend" in t]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def gather_scores(root: Path) -> pd.DataFrame:
    """The proxies' scores of every job below root, once per (front-end, seed, fold, proxy): the svm and the elm
    job of a front-end score the same network."""
    from ..results import SCORES

    tables = [pd.read_csv(d / SCORES, keep_default_na=False, dtype={"fold": str})
              for d in job_dirs(root) if (d / SCORES).is_file()]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame()
    out = pd.concat(tables, ignore_index=True)
    return out.drop_duplicates(subset=["dataset", "frontend", "width", "protocol", "seed", "fold", "predictor"]).reset_index(drop=True)


def gather(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(result rows, job table with status, skipped clips) of every job below root."""
    rows, jobs, skipped = [], [], []
    for d in job_dirs(root):
        status = {"status": "not finished"}
        if (d / "status.json").is_file():
            status = json.loads((d / "status.json").read_text())
        res = d / "results.csv"
        n_rows = 0
        if res.is_file():
            t = pd.read_csv(res, keep_default_na=False, dtype={"fold": str, "setting": str})
            t["job"] = str(d.relative_to(root)) if d != root else "."
            rows.append(t)
            n_rows = len(t)
        if (d / "skipped.csv").is_file():
            s = pd.read_csv(d / "skipped.csv", keep_default_na=False)
            if len(s):
                s["job"] = str(d.relative_to(root)) if d != root else "."
                skipped.append(s)
        jobs.append({"job": str(d.relative_to(root)) if d != root else ".", "status": status.get("status"),
                     "overrides": " ".join(status.get("overrides", [])), "error": status.get("error", ""),
                     "result_rows": n_rows})
    cat = lambda xs: pd.concat(xs, ignore_index=True) if xs else pd.DataFrame()
    return cat(rows), pd.DataFrame(jobs), cat(skipped)


def pct(x) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.2f}"


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "n/a"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def group_title(key: dict) -> str:
    std = "standardised features" if str(key["standardize"]).lower() == "true" else "features as extracted"
    return f"{key['dataset']} · width {key['width']} · {key['classifier'].upper()} · protocol {key['protocol']} · {std}"


def markdown(summary: pd.DataFrame, jobs: pd.DataFrame, skipped: pd.DataFrame, root: Path,
             pvalues: dict, plots: list[Path], diagrams: list | None = None, hosts: list[str] | None = None) -> str:
    """report.md: the header, one table per group, the ranks across datasets, the figures, the jobs and clips left out."""
    lines = header_lines(root, jobs, hosts)
    for key, g in summary.groupby(GROUP, dropna=False, sort=True):
        lines += table_lines(dict(zip(GROUP, key)), g, pvalues.get(key))
    if diagrams:
        lines += ["## Front-ends ranked across datasets (Friedman, then Nemenyi; Demšar 2006)", ""]
        for path, sentence in diagrams:
            lines += [sentence, "", f"![{path.stem}]({path.name})", ""]
    if plots:
        lines += ["## Figures", "", "Confusion matrices (`confusion_*.png`) and per-class accuracy (`per_class_*.csv`) "
                  "of each front-end's selected settings, all folds and seeds pooled, are beside this report.", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    return "\n".join(lines + left_out_lines(jobs, skipped)) + "\n"


def header_lines(root: Path, jobs: pd.DataFrame, hosts: list[str] | None) -> list[str]:
    lines = ["# elmarc report", "", f"Sweep: `{root}`", ""]
    if hosts:       # forms round differently across ISAs and devices: the same key can hold other bits elsewhere
        lines += ["Features computed on: " + "; ".join(f"`{h}`" for h in hosts) + ".", ""]
    n_ok = int((jobs["status"] == "ok").sum()) if len(jobs) else 0
    return lines + [
        f"Jobs: {len(jobs)} ({n_ok} ok, {len(jobs) - n_ok} failed or unfinished). "
        f"Accuracy in %, mean ± std over seeds (each seed: mean over folds), as the paper reports it; "
        f"95% CI: interval for the mean over folds and seeds with the corrected variance "
        f"(Nadeau & Bengio; Wilson over the test clips on a predefined split). p paper: the paper's "
        f"two-sample t-test over seed means against the best front-end of the table (sees the weights' "
        f"variation only). p protocol: a test valid for the protocol against the best, Holm-adjusted over "
        f"the table's comparisons (k folds: the corrected repeated k-fold t-test on paired fold-and-seed "
        f"differences; a predefined split: McNemar's exact test on the paired test predictions, seeds "
        f"pooled); it decides **bold** = best or not significantly different (p > {ALPHA}). A seed-free run "
        f"(MFCC + SVM) counts once.", ""]


def table_lines(k: dict, g: pd.DataFrame, mat: pd.DataFrame | None) -> list[str]:
    """One group's table (dataset x width x classifier x protocol x standardisation), its notes and p-values."""
    lines = [f"## {group_title(k)}", "",
             "| front-end | accuracy % | 95% CI | seeds | p paper | p protocol | on grid edge | paper % | ours − paper |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in g.sort_values("mean", ascending=False).iterrows():
        paper = paper_accuracy(k["dataset"], r.frontend, k["classifier"], k["width"])
        name = f"**{r.frontend}**" if r.tied_with_best else r.frontend
        acc = f"{pct(r['mean'])} ± {pct(r['std']) or 'n/a'}"
        diff = "" if paper is None else f"{100 * r['mean'] - paper:+.2f}"
        edge = f"{100 * r.on_grid_edge:.0f}%" if not np.isnan(r.on_grid_edge) else ""
        ci = "" if np.isnan(r.get("ci_low", np.nan)) else f"{pct(r.ci_low)}–{pct(r.ci_high)}"
        lines.append(f"| {name} | {acc} | {ci} | {r.n_seeds} | {fmt_p(r.p_vs_best)} | {fmt_p(r.get('p_protocol', np.nan))} | "
                     f"{edge} | {'' if paper is None else f'{paper:.1f}'} | {diff} |")
    capped, exact = g[g.capped_fits > 0], g[g.exact_fits > 0]
    if len(capped):
        lines += ["", "Capped fits (stopped at classifier.max_iter: approximate answers): "
                  + ", ".join(f"{r.frontend} {r.capped_fits}" for r in capped.itertuples()) + " per run."]
    if len(exact):
        lines += ["", "Solved by the exact interior-point fallback where libsvm's SMO exceeded its budget "
                  "(the optimum of the SVM problem, where libsvm would stop at its tolerance elsewhere; "
                  "classifier.smo_budget=null gives libsvm's answers): "
                  + ", ".join(f"{r.frontend} {r.exact_fits}" for r in exact.itertuples()) + " fits per run."]
    mfcc = g[g.frontend == "mfcc"]
    if len(mfcc):
        lines += ["", f"MFCC baseline: {pct(mfcc['mean'].iloc[0])}%."]
    best = g.loc[g["mean"].idxmax()]
    tied = sorted(g.loc[g.tied_with_best & ~g.best, "frontend"])
    lines += ["", f"Best: **{best.frontend}** ({pct(best['mean'])}%)"
              + (f"; not significantly different: {', '.join(tied)}." if tied else "."), ""]
    # one seed: the paper's test has no p-value to show
    if mat is not None and len(mat) > 1 and mat.where(~np.eye(len(mat), dtype=bool)).notna().any().any():
        lines += ["<details><summary>pairwise p-values (the paper's t-test over seeds)</summary>", "",
                  "| | " + " | ".join(mat.columns) + " |", "|---" * (len(mat.columns) + 1) + "|"]
        for a in mat.index:
            lines.append(f"| {a} | " + " | ".join(fmt_p(mat.loc[a, b]) for b in mat.columns) + " |")
        lines += ["", "</details>", ""]
    return lines


def left_out_lines(jobs: pd.DataFrame, skipped: pd.DataFrame) -> list[str]:
    """The jobs that are not in the tables, and the clips that could not be used."""
    bad = jobs[jobs["status"] != "ok"] if len(jobs) else jobs
    lines = ["## Jobs not in the tables", ""]
    if len(bad):
        lines += ["| job | status | overrides | error |", "|---|---|---|---|"]
        for _, j in bad.iterrows():
            lines.append(f"| {j.job} | {j.status} | `{j.overrides}` | {str(j.error).splitlines()[0][:200] if j.error else ''} |")
    else:
        lines.append("None: every job finished.")
    lines += ["", "## Skipped clips", ""]
    if len(skipped):
        uniq = skipped.drop_duplicates(subset=["clip_id", "reason"])
        lines.append(f"{len(uniq)} clips could not be used (listed in each job's skipped.csv):")
        lines += [f"- `{r.clip_id}`: {r.reason}" for _, r in uniq.head(20).iterrows()]
        if len(uniq) > 20:
            lines.append(f"- ... and {len(uniq) - 20} more")
    else:
        lines.append("None.")
    return lines
