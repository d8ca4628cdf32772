"""make bench, section svmconv: every SVM setting on one split, before (libsvm to convergence) and after (SMO
budget + exact solve): seconds, and the same decisions? Per front-end on cached features (--svmconv-features;
make bench passes ESC-10's) and on the synthetic tasks, as extracted and standardised"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.svm import SVC

from elmarc.classify.ovo import fit_predict
from elmarc.classify.splits import standardise
from elmarc.classify.svm import SVMGrid, squared_distances
from elmarc.config import compose
from elmarc.describe import runnable_frontend_configs as frontend_configs
from elmarc.extract.feature_cache import FeatureEntry
from elmarc.extract.stage import extract_stage
from elmarc.job import plan_job

from .common import markdown_table


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    md: list[str] = []
    print("svmconv: every SVM setting before (libsvm to convergence) and after (SMO budget + exact solve)", flush=True)
    dirs = [Path(d) for d in args.svmconv_features.split(",") if d]
    df = bench_svmconv(dirs, synthetic=not args.svmconv_no_synthetic)
    df.to_csv(args.out / "svmconv.csv", index=False)
    md += ["## The 32-setting SVM grid on one 80/20 split, before and after (seconds)", "",
           markdown_table(svmconv_summary(df)), ""]
    return md


def synthetic_task_features(tmp: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Features of every front-end at the small width on both embedded synthetic tasks (as make run extracts them)."""
    sets = []
    for task in ("rhythm", "timbre"):
        for name in frontend_configs():
            if name == "custom":
                continue
            job = plan_job(compose([f"dataset.task={task}", f"frontend={name}", "extract.progress=false", f"cache_dir={tmp}"]))
            extract_stage(job.features, job.source, job.model, job.inputs, job.extraction, job.cache_dir)
            X, clips = job.features.load()
            sets.append((f"synthetic_{task}-{name}", X, clips["label"].astype(str).to_numpy()))
    return sets


def bench_svmconv(feature_dirs: list[Path], synthetic: bool = True) -> pd.DataFrame:
    """Every SVM setting on one 80/20 split, before (libsvm run to convergence) and after (the classifier
    stage's route: an SMO budget per pair, then the exact interior-point solve): seconds, and whether the
    test decisions are the same."""


    sets = []
    for d in feature_dirs:
        X, clips = FeatureEntry(Path(d), {}).load()            # a complete entry, or an error saying what to run
        y = clips["label"].astype(str).to_numpy()
        ok = np.isfinite(X).all(axis=1)
        sets.append((d.name.rsplit("-", 1)[0], X[ok], y[ok]))
    if synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            sets += synthetic_task_features(Path(tmp))
    rows = []
    for name, X, y in sets:
        for scaling in ("as extracted", "standardised"):
            train = np.random.default_rng(0).permutation(len(y)) % 5 != 0
            Zt, Ze = X[train].astype(np.float64), X[~train].astype(np.float64)
            if scaling == "standardised":
                Zt, Ze = standardise(Zt, Ze)                   # training statistics, as the classifier stage
            D, De = squared_distances(Zt, Zt), squared_distances(Ze, Zt)
            G, Ge = Zt @ Zt.T, Ze @ Zt.T
            for st in SVMGrid().settings:
                gamma = None if st["kernel"] == "linear" else (1.0 / Zt.shape[1] if st["gamma"] == "auto" else st["gamma"])
                K, Ke = (G, Ge) if gamma is None else (np.exp(-gamma * D), np.exp(-gamma * De))
                t0 = time.perf_counter()
                before = SVC(kernel="precomputed", C=st["C"]).fit(K, y[train])
                before_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                after = fit_predict(K, y[train], Ke, st["C"])
                after_s = time.perf_counter() - t0
                rows.append({"features": name, "scaling": scaling, "n_train": int(train.sum()), "kernel": st["kernel"],
                             "gamma": st["gamma"], "C": st["C"], "before_s": round(before_s, 4),
                             "iterations": int(np.max(before.n_iter_)), "after_s": round(after_s, 4),
                             "exact_pairs": after.exact_pairs, "same_decisions": bool((after.predictions == before.predict(Ke)).all())})
            grid = pd.DataFrame(rows[-len(SVMGrid().settings):])
            print(f"  {name} ({scaling}): grid {grid.before_s.sum():.2f} s -> {grid.after_s.sum():.2f} s; slowest setting "
                  f"{grid.before_s.max():.3f} s -> {grid.after_s.max():.3f} s; exact solves {int((grid.exact_pairs > 0).sum())}; "
                  f"same decisions {int(grid.same_decisions.sum())}/{len(grid)}", flush=True)
    return pd.DataFrame(rows)


def svmconv_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per feature set and scaling: the whole grid's and the slowest setting's seconds, before and after."""
    g = df.groupby(["features", "scaling"], sort=False)
    return pd.DataFrame({
        "grid_before_s": g.before_s.sum().round(2), "grid_after_s": g.after_s.sum().round(2),
        "slowest_before_s": g.before_s.max().round(3), "slowest_after_s": g.after_s.max().round(3),
        "max_iterations_per_pair": g.iterations.max(), "settings_solved_exactly": g.exact_pairs.apply(lambda e: int((e > 0).sum())),
        "same_decisions": g.same_decisions.sum().astype(str) + "/" + g.size().astype(str),
    }).reset_index()
