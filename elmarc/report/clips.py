"""What the per-clip predictions add to a report: McNemar's test on a predefined split, confusion matrices."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..entry import safe_name
from ..storage import atomic_write_bytes, atomic_write_csv
from .stats import GROUP, seed_free_once


def mcnemar_vs_best(preds: pd.DataFrame, best: str) -> dict[str, float]:
    """Exact McNemar p of each front-end against `best` on the same test clips, Holm-adjusted.

    Seeds are combined by pooling their discordant pairs (best right and other wrong, and the
    reverse) over the seeds paired by seed; a seed-free run pairs with every seed of the other."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests

    preds = seed_free_once(preds)
    right = preds.assign(right=preds["label"] == preds["predicted"])
    by_fe = {fe: d[["clip_id", "fold", "seed", "right"]] for fe, d in right.groupby("frontend")}
    raw = {}
    for fe, d in by_fe.items():
        if fe == best:
            continue
        a = by_fe[best]
        on = ["clip_id", "fold", "seed"] if a["seed"].nunique() > 1 and d["seed"].nunique() > 1 else ["clip_id", "fold"]
        paired = a.merge(d, on=on, suffixes=("_best", "_other"))
        b = int((paired.right_best & ~paired.right_other).sum())
        c = int((~paired.right_best & paired.right_other).sum())
        raw[fe] = float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)
    out = {best: 1.0}
    if raw:
        adjusted = multipletests(list(raw.values()), method="holm")[1]
        out.update(dict(zip(raw, map(float, adjusted))))
    return out


def confusion_files(preds: pd.DataFrame, root: Path) -> list[Path]:
    """Per table and front-end: the confusion matrix of its selected settings' test predictions (all
    folds and seeds pooled) as a PNG, and per-class accuracy as a CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

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
