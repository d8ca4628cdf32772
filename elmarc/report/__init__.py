"""Report stage: reads only result rows and per-clip predictions; writes report.md, results.csv, summary.csv,
bar charts, confusion matrices with per-class accuracy, and critical-difference diagrams across datasets."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from ..storage import atomic_write_csv, atomic_write_text
from .stats import GROUP, fold_accuracies, pairwise_pvalues, run_accuracies, summarise
from .tables import gather, gather_predictions, markdown, pct

log = logging.getLogger(__name__)


def write_report(root: str | Path, print_summary: bool = True) -> Path:
    """Aggregate every job below ``root`` (one run folder or a multirun folder)."""
    from .clips import confusion_files
    from .plots import bar_chart
    from .ranks import cd_diagrams

    root = Path(root)
    rows, jobs, skipped = gather(root)
    preds = gather_predictions(root)
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
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"plot_{ds}_{width}_{protocol}_{tag}.png")
            title = f"{ds} · {width} · {protocol} · {'standardised' if tag == 'std' else 'as extracted'}"
            plots.append(bar_chart(g, title, root / name))
        if len(preds):
            confusion_files(preds, root)
        diagrams = cd_diagrams(summary, root)
    text = markdown(summary, jobs, skipped, root, pvalues, plots, diagrams) if len(summary) else (
        "# elmarc report\n\nNo result rows found under this folder.\n")
    atomic_write_text(root / "report.md", text)
    if print_summary:
        print(console_table(summary, jobs))
        print(f"\nreport written to {root / 'report.md'}")
    return root / "report.md"


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
