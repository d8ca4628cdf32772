"""What the per-clip predictions add to a report: confusion matrices with per-class accuracy."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

from ..entry import safe_name
from ..storage import atomic_write_bytes, atomic_write_csv
from .plots import pyplot
from .stats import GROUP, seed_free_once


def confusion_files(preds: pd.DataFrame, root: Path) -> list[Path]:
    """Per table and front-end: the confusion matrix of its selected settings' test predictions (all
    folds and seeds pooled) as a PNG, and per-class accuracy as a CSV."""
    plt = pyplot()

    written = []
    for key, g in seed_free_once(preds).groupby(GROUP, dropna=False):
        k = dict(zip(GROUP, key))
        tag = "std" if str(k["standardize"]).lower() == "true" else "raw"
        stem = safe_name(f"{k['dataset']}_{k['width']}_{k['classifier']}_{k['protocol']}_{tag}")
        classes = sorted(set(g["label"]))
        per_class = []
        for fe, d in g.groupby("frontend"):
            matrix = confusion_matrix(d["label"], d["predicted"], labels=classes)
            fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(classes), 0.8 + 0.55 * len(classes)))
            ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, colorbar=False, xticks_rotation=60)
            ax.set_title(f"{fe} · {k['dataset']} · {k['width']} · {k['classifier']} · {k['protocol']}", fontsize=8)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            path = root / f"confusion_{stem}_{safe_name(fe)}.png"
            atomic_write_bytes(path, buf.getvalue())
            written.append(path)
            n = matrix.sum(axis=1)
            per_class += [{"frontend": fe, "class": c, "n": int(n[i]), "correct": int(matrix[i, i]),
                           "accuracy": float(matrix[i, i] / n[i]) if n[i] else np.nan} for i, c in enumerate(classes)]
        path = root / f"per_class_{stem}.csv"
        atomic_write_csv(path, pd.DataFrame(per_class))
        written.append(path)
    return written
