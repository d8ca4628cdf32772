"""SPEC's 32-setting SVM grid with kernels computed once and reused.

One squared-distance matrix serves every gamma, one Gram matrix every C of the
linear kernel, and (without standardisation) one full-data kernel serves every
split of a protocol: each split only slices it. Fits use
``SVC(kernel="precomputed")``, which gives the same decisions as ``SVC(kernel="rbf")``.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

from .splits import Split, standardise


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """||a - b||^2 for every pair, float64, clipped at 0: (len(A), len(B))"""
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d, 0.0, out=d)


class SVMGrid:
    """rbf x {gammas} x {C} and linear x {C}; gamma 'auto' means 1 / n_features (SPEC 3)."""

    name = "svm"

    def __init__(self, C=(0.1, 2, 8, 32), gammas=(2**-3, 2**-5, 2**-7, 2**-9, 2**-11, 2**-13, "auto"),
                 linear: bool = True, max_iter: int = -1, tol: float = 1e-3, seed: int = 0, n_jobs: int = 1):
        self.Cs = [float(c) for c in C]
        self.gammas = [g if g == "auto" else float(g) for g in gammas]
        self.linear, self.max_iter, self.tol, self.n_jobs = bool(linear), int(max_iter), float(tol), int(n_jobs)
        self.settings = [{"kernel": "rbf", "gamma": g, "C": c} for g in self.gammas for c in self.Cs]
        if self.linear:
            self.settings += [{"kernel": "linear", "gamma": None, "C": c} for c in self.Cs]
        self.capped: dict[tuple[int, int], bool] = {}

    def edge(self, setting: dict) -> bool:
        """True when a selected value is an extreme of its axis (the grid may be too narrow)."""
        numeric = [g for g in self.gammas if g != "auto"]
        on_c = setting["C"] in (min(self.Cs), max(self.Cs))
        on_g = setting["gamma"] in (min(numeric), max(numeric)) if numeric and setting["gamma"] not in (None, "auto") else False
        return bool(on_c or on_g)

    def _fit_score(self, K_train, y_train, K_eval, y_eval, C) -> tuple[float, bool]:
        clf = SVC(kernel="precomputed", C=C, tol=self.tol, max_iter=self.max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(K_train, y_train)
        capped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return float(np.mean(clf.predict(K_eval) == y_eval)), capped

    def _score_kernels(self, kernels, y, splits, out, capped):
        """kernels: iterator of (setting columns, K_full or per-split getter)."""
        from joblib import Parallel, delayed

        for cols, get_blocks in kernels:
            jobs = []
            for s, split in enumerate(splits):
                K_tt, K_et = get_blocks(s, split)
                for col, C in zip(cols, self.Cs):
                    jobs.append((s, col, K_tt, K_et, C, split))
            results = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(self._fit_score)(K_tt, y[sp.train], K_et, y[sp.eval], C)
                for s, col, K_tt, K_et, C, sp in jobs
            )
            for (s, col, *_), (acc, cap) in zip(jobs, results):
                out[s, col] = acc
                capped[s, col] = cap

    def scores(self, X: np.ndarray, y: np.ndarray, splits: list[Split], standardize: bool = False):
        """Accuracy of every setting on every split: (n_splits, n_settings), and a 'capped' mask."""
        n_set = len(self.settings)
        out = np.full((len(splits), n_set), np.nan)
        capped = np.zeros_like(out, dtype=bool)
        X = np.asarray(X, np.float64)
        gamma_values = [1.0 / X.shape[1] if g == "auto" else g for g in self.gammas]
        rbf_cols = [[gi * len(self.Cs) + ci for ci in range(len(self.Cs))] for gi in range(len(self.gammas))]
        lin_cols = [len(self.gammas) * len(self.Cs) + ci for ci in range(len(self.Cs))]

        if standardize:
            # kernels depend on each split's training statistics: compute them per split
            for s, split in enumerate(splits):
                Xt, Xe = standardise(X[split.train], X[split.eval])
                D_tt, D_et = squared_distances(Xt, Xt), squared_distances(Xe, Xt)
                one = [Split(split.name, np.arange(len(Xt)), np.arange(len(Xt), len(Xt) + len(Xe)), split.outer, split.role)]
                yy = np.concatenate([y[split.train], y[split.eval]])
                sub_out = np.full((1, n_set), np.nan)
                sub_cap = np.zeros_like(sub_out, dtype=bool)
                kernels = [(cols, lambda i, sp, g=g: (np.exp(-g * D_tt), np.exp(-g * D_et)))
                           for cols, g in zip(rbf_cols, gamma_values)]
                if self.linear:
                    kernels.append((lin_cols, lambda i, sp: (Xt @ Xt.T, Xe @ Xt.T)))
                self._score_kernels(kernels, yy, one, sub_out, sub_cap)
                out[s], capped[s] = sub_out[0], sub_cap[0]
            return out, capped

        D = squared_distances(X, X)
        for cols, g in zip(rbf_cols, gamma_values):
            K = np.exp(-g * D)
            self._score_kernels([(cols, lambda i, sp, K=K: (K[np.ix_(sp.train, sp.train)], K[np.ix_(sp.eval, sp.train)]))],
                                y, splits, out, capped)
            del K
        del D
        if self.linear:
            G = X @ X.T
            self._score_kernels([(lin_cols, lambda i, sp: (G[np.ix_(sp.train, sp.train)], G[np.ix_(sp.eval, sp.train)]))],
                                y, splits, out, capped)
        return out, capped
