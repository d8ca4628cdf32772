"""Compare two runs of one sweep made on two hosts (or with two settings): features and result rows.

python docs/data/compare_hosts.py CACHE_A SWEEP_A CACHE_B SWEEP_B LABEL > rows.csv
Per front-end: the features' largest difference relative to the feature's scale (max |a - b| / max |a|,
per column) and elementwise (|a - b| / |a|, where |a| > 1e-6 max |a|), and how many fold accuracies and
selected settings differ, per classifier and protocol.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def main(cache_a, sweep_a, cache_b, sweep_b, label):
    ra, rb = (pd.read_csv(Path(s) / "results.csv") for s in (sweep_a, sweep_b))
    keys = ["frontend", "classifier", "protocol", "standardize", "seed", "fold"]
    rows = ra.merge(rb, on=keys, suffixes=("_a", "_b"))
    out = []
    for (frontend, clf, protocol), g in rows.groupby(["frontend", "classifier", "protocol"]):
        # the entries these rows were fitted on (an auto run's jobs may have planned different forms)
        a = np.load(Path(cache_a) / "features" / g.feature_key_a.iloc[0] / "features.npy").astype(np.float64)
        b = np.load(Path(cache_b) / "features" / g.feature_key_b.iloc[0] / "features.npy").astype(np.float64)
        scale = np.abs(a).max(axis=0)
        col = float(np.nanmax(np.abs(a - b).max(axis=0) / np.where(scale > 0, scale, 1)))
        mask = np.abs(a) > 1e-6 * np.abs(a).max()
        elem = float(np.nanmax(np.abs(a - b)[mask] / np.abs(a)[mask])) if mask.any() else 0.0
        out.append({"comparison": label, "frontend": frontend, "classifier": clf, "protocol": protocol,
                    "features_identical": bool(np.array_equal(a, b)),
                    "max_rel_diff_of_column_scale": col, "max_rel_diff_elementwise": elem,
                    "folds": len(g), "fold_accuracies_moved": int((g.accuracy_a != g.accuracy_b).sum()),
                    "max_fold_accuracy_change": float((g.accuracy_a - g.accuracy_b).abs().max()),
                    "selected_settings_moved": int((g.setting_a != g.setting_b).sum()),
                    "mean_accuracy_a": float(g.accuracy_a.mean()), "mean_accuracy_b": float(g.accuracy_b.mean())})
    pd.DataFrame(out).to_csv(sys.stdout, index=False, float_format="%.6g")


if __name__ == "__main__":
    main(*sys.argv[1:6])
