"""The report of a run or sweep folder: gathers its jobs' rows and predictions, and writes report.md (last),
results.csv, summary.csv, bar charts, confusion matrices and critical-difference diagrams."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..entry import safe_name
from ..storage import atomic_write_csv, atomic_write_text
from .agreement import PLACE, agreement, markdown_section, per_frontend, proxy_table, scatter, tau_plot
from .clips import confusion_files
from .plots import bar_chart
from .ranks import cd_diagrams
from .stats import GROUP, fold_accuracies, pairwise_pvalues, run_accuracies, summarise
from .tables import gather, gather_predictions, gather_scores, markdown, pct

log = logging.getLogger(__name__)


def write_report(root: str | Path, print_summary: bool = True) -> Path:
    """Aggregate every job below ``root`` (one run folder or a multirun folder)."""
    root = Path(root)
    # report.md is written last: remove the old one first, so that a report stopped half-way never leaves
    # an old report.md beside new tables (python -m elmarc.report <folder> writes it whole again)
    (root / "report.md").unlink(missing_ok=True)
    rows, jobs, skipped = gather(root)
    preds = gather_predictions(root)
    if len(rows):       # the trained end-to-end rows come with every job of a front-end (svm and elm): count them once
        rows = rows.drop_duplicates(subset=GROUP + ["frontend", "seed", "fold"]).reset_index(drop=True)
    if len(preds):
        preds = preds.drop_duplicates(subset=GROUP + ["frontend", "seed", "fold", "clip_id"]).reset_index(drop=True)
    plots: list[Path] = []
    diagrams: list[tuple[Path, str]] = []
    summary = pd.DataFrame()
    pvalues: dict = {}
    if len(rows):
        if not (len(jobs) == 1 and jobs["job"].iloc[0] == "."):      # a sweep: gather its jobs' rows
            atomic_write_csv(root / "results.csv", rows)
        runs = run_accuracies(rows)
        summary = summarise(runs, fold_accuracies(rows), preds)
        pvalues = pairwise_pvalues(runs)
        atomic_write_csv(root / "summary.csv", summary)
        for key, g in summary.groupby(["dataset", "width", "protocol", "standardize"], dropna=False):
            ds, width, protocol, std = key
            tag = "std" if str(std).lower() == "true" else "raw"
            name = safe_name(f"plot_{ds}_{width}_{protocol}_{tag}.png")
            title = f"{ds} · {width} · {protocol} · {'standardised' if tag == 'std' else 'as extracted'}"
            plots.append(bar_chart(g, title, root / name))
        if len(preds):
            confusion_files(preds, root)
        diagrams = cd_diagrams(summary, root)
    hosts = sorted(h for h in rows["host"].dropna().astype(str).unique() if h) if "host" in rows else []
    text = markdown(summary, jobs, skipped, root, pvalues, plots, diagrams, hosts) if len(summary) else (
        "# elmarc report\n\nNo result rows found under this folder.\n")
    scores = gather_scores(root)
    if len(scores):
        atomic_write_csv(root / "proxies.csv", scores)
    if len(rows) and (rows["classifier"] == "trained").any():
        text += "\n" + "\n".join(random_vs_trained(rows, root, scores)) + "\n"
    atomic_write_text(root / "report.md", text)
    if print_summary:
        print(console_table(summary, jobs))
        print(f"\nreport written to {root / 'report.md'}")
    return root / "report.md"


def random_vs_trained(rows: pd.DataFrame, root: Path, scores: pd.DataFrame | None = None) -> list[str]:
    """agreement.csv, random_vs_trained.csv, a scatter plot per place; the report's section."""
    agree, fronts = agreement(rows, scores), per_frontend(rows)
    atomic_write_csv(root / "agreement.csv", agree)
    atomic_write_csv(root / "random_vs_trained.csv", fronts)
    figures = []
    for place, f in fronts.groupby(PLACE, sort=True):
        pred = "svm" if "svm mean" in f and f["svm mean"].notna().any() else None
        if pred:
            name = safe_name("random_vs_trained_" + "_".join(map(str, place)) + ".png")
            figures.append(scatter(f, dict(zip(PLACE, place)), pred, root / name))
    for place, g in agree.groupby(PLACE, sort=True) if len(agree) else []:      # one front-end: nothing to rank
        figures.append(tau_plot(g, " · ".join(map(str, place)), root / safe_name("agreement_" + "_".join(map(str, place)) + ".png")))
    return markdown_section(agree, fronts, figures, proxy_table(scores)) if len(agree) else []


def console_table(summary: pd.DataFrame, jobs: pd.DataFrame) -> str:
    if not len(summary):
        return "no results"
    lines = []
    for key, g in summary.groupby(GROUP, dropna=False):
        k = dict(zip(GROUP, key))
        lines.append(f"\n{k['dataset']} | width {k['width']} | {k['classifier']} | {k['protocol']}"
                     f" | {'standardised' if str(k['standardize']).lower() == 'true' else 'as extracted'}")
        for _, r in g.sort_values("mean", ascending=False).iterrows():
            mark = "*" if r.tied_with_best else " "
            std = pct(r["std"]) or "n/a"
            lines.append(f"  {mark} {r.frontend:<18} {pct(r['mean']):>6} ± {std:<6} (seeds {r.n_seeds})")
    bad = jobs[jobs.status != "ok"] if len(jobs) else jobs
    if len(bad):
        lines.append(f"\n{len(bad)} job(s) failed or unfinished: " + ", ".join(bad.job))
    return "\n".join(lines)
