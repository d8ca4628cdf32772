"""Front-ends ranked across datasets (or dataset x width blocks): Friedman, Nemenyi, critical-difference diagram (Demšar 2006)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..entry import safe_name
from ..storage import atomic_write_bytes
from .plots import pyplot


def rank_table(summary: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Per classifier x protocol x scaling: mean accuracy, one row per dataset x width block, one column per
    front-end present in every block (only blocks >= 2 and front-ends >= 3 are kept: Friedman's minimum)."""
    out = {}
    for key, g in summary.groupby(["classifier", "protocol", "standardize"], dropna=False):
        table = g.pivot_table(index=["dataset", "width"], columns="frontend", values="mean").dropna(axis=1)
        if len(table) >= 2 and table.shape[1] >= 3:
            out[key] = table
    return out


def friedman_nemenyi(table: pd.DataFrame) -> tuple[float, pd.DataFrame, pd.Series]:
    """(Friedman p, Nemenyi p-value matrix, average rank per front-end; rank 1 = best)."""
    import scikit_posthocs as sp  # it imports matplotlib's pyplot: only a report across datasets pays that

    p = float(stats.friedmanchisquare(*[table[c].to_numpy() for c in table.columns]).pvalue)
    nemenyi = sp.posthoc_nemenyi_friedman(table.to_numpy())
    nemenyi.index = nemenyi.columns = table.columns
    ranks = table.rank(axis=1, ascending=False).mean(axis=0)
    return p, nemenyi, ranks


def cd_diagram(table: pd.DataFrame, title: str, path: Path, alpha: float = 0.05) -> tuple[Path, str]:
    """The critical-difference diagram as a PNG, and one sentence on how many differences are significant."""
    plt = pyplot()
    import scikit_posthocs as sp  # after pyplot(): on the Agg backend

    p, nemenyi, ranks = friedman_nemenyi(table)
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.25 * len(ranks)))
    sp.critical_difference_diagram(ranks, nemenyi, ax=ax, alpha=alpha)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    upper = nemenyi.to_numpy()[np.triu_indices(len(ranks), 1)]
    sentence = (f"{title}: Friedman p = {p:.3g} over {len(table)} blocks; Nemenyi: {int((upper < alpha).sum())} of "
                f"{len(upper)} pairs of front-ends differ significantly (p < {alpha}); best average rank "
                f"{ranks.idxmin()} ({ranks.min():.2f}).")
    return path, sentence


def cd_diagrams(summary: pd.DataFrame, root: Path) -> list[tuple[Path, str]]:
    out = []
    for (clf, protocol, std), table in rank_table(summary).items():
        tag = "std" if str(std).lower() == "true" else "raw"
        name = safe_name(f"cd_{clf}_{protocol}_{tag}.png")
        out.append(cd_diagram(table, f"{clf.upper()} · {protocol} · {'standardised' if tag == 'std' else 'as extracted'}",
                              root / name))
    return out
