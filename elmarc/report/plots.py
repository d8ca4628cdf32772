"""Bar charts in the style of the paper's figures: a bar per front-end x classifier, error bars over seeds."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..storage import atomic_write_bytes


def pyplot():
    """matplotlib's pyplot on the Agg backend (figures go to files; no display is opened), imported when the
    first figure is drawn: it takes about a second, and a job that fails never draws one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(summary: pd.DataFrame, title: str, path: Path) -> Path:
    """summary rows of one dataset x width x protocol x standardize (both classifiers)."""
    plt = pyplot()

    classifiers = sorted(summary["classifier"].unique())
    order = (summary[summary.frontend != "mfcc"].groupby("frontend")["mean"].max()
             .sort_values(ascending=False).index.tolist())
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) + 2), 4.2))
    width = 0.8 / max(len(classifiers), 1)
    x = np.arange(len(order))
    for k, clf in enumerate(classifiers):
        d = summary[summary.classifier == clf].set_index("frontend").reindex(order)
        ax.bar(x + (k - (len(classifiers) - 1) / 2) * width, 100 * d["mean"], width,
               yerr=100 * d["std"].fillna(0), capsize=3, label=clf.upper())
    mfcc = summary[(summary.frontend == "mfcc")]
    for _, row in mfcc.iterrows():
        ax.axhline(100 * row["mean"], linestyle="--", color="k" if row["classifier"] == "svm" else "gray",
                   label=f"MFCC + {row['classifier'].upper()}")
    ax.set_xticks(x, order, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, path)


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write atomically as PNG, and close a matplotlib figure."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)
    return path
