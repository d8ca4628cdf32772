"""SPEC's 32-setting SVM grid with kernels computed once and reused.

One squared-distance matrix serves every gamma, one Gram matrix every C of the
linear kernel, and (without standardisation) one full-data kernel serves every
split of a protocol: each split only slices it. Fits are libsvm's one-vs-one SVC on the
precomputed kernel (the same decisions as ``SVC(kernel="rbf")``), with an exact
interior-point solve for the pairs where its SMO crawls (see ovo.py).
"""
from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed

from ..config import PAPER_SVM_C, PAPER_SVM_GAMMAS, ConfigError
from . import ovo
from .splits import GridScores, Split, standardise


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """||a - b||^2 for every pair, float64, clipped at 0: (len(A), len(B))"""
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d, 0.0, out=d)


class SVMGrid:
    """rbf x {gammas} x {C} and linear x {C}; gamma 'auto' means 1 / n_features (SPEC 3).

    name labels the grid's rows in reports (a grid other than the paper's gets its own name).
    """

    uses_seed = False            # libsvm is deterministic: no seed changes its answer

    def __init__(self, C=PAPER_SVM_C, gammas=PAPER_SVM_GAMMAS, linear: bool = True, max_iter: int = -1,
                 tol: float = 1e-3, smo_budget: int | None = ovo.SMO_BUDGET, n_jobs: int = 1, name: str = "svm"):
        self.name = str(name)
        self.Cs = [float(c) for c in C]
        self.gammas = [g if g == "auto" else float(g) for g in gammas]
        self.linear, self.max_iter, self.tol, self.n_jobs = bool(linear), int(max_iter), float(tol), int(n_jobs)
        self.smo_budget = None if smo_budget is None else int(smo_budget)
        self.settings = [{"kernel": "rbf", "gamma": g, "C": c} for g in self.gammas for c in self.Cs]
        if self.linear:
            self.settings += [{"kernel": "linear", "gamma": None, "C": c} for c in self.Cs]
        if not self.settings:

            raise ConfigError(f"classifier {self.name!r} has no setting to fit (C={self.Cs}, gammas={self.gammas}, "
                              f"linear={self.linear}).\n  Fix: give classifier.C (and classifier.gammas) at least one value.")

    def edge(self, setting: dict) -> bool:
        """True when a selected value is an extreme of its axis (the grid may be too narrow)."""
        numeric = [g for g in self.gammas if g != "auto"]
        on_c = setting["C"] in (min(self.Cs), max(self.Cs))
        on_g = setting["gamma"] in (min(numeric), max(numeric)) if numeric and setting["gamma"] not in (None, "auto") else False
        return bool(on_c or on_g)

    def _fit_score(self, K_train, y_train, K_eval, y_eval, C) -> tuple[float, bool, bool, np.ndarray]:
        res = ovo.fit_predict(K_train, y_train, K_eval, C, self.tol, self.max_iter, self.smo_budget)
        return float(np.mean(res.predictions == y_eval)), res.capped, res.exact_pairs > 0, res.predictions

    def _fit_split(self, K_train, y_train, K_eval, y_eval, cols, result: GridScores, s: int) -> None:
        """Every C of one kernel on one split (the Cs in parallel threads; libsvm releases the GIL)."""
        fits = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._fit_score)(K_train, y_train, K_eval, y_eval, C) for C in self.Cs)
        for col, (acc, cap, exact, predicted) in zip(cols, fits):
            result.accuracy[s, col], result.capped[s, col], result.exact[s, col] = acc, cap, exact
            result.predictions[s, col] = predicted

    def scores(self, X: np.ndarray, y: np.ndarray, splits: list[Split], standardize: bool = False) -> GridScores:
        """Accuracy of every setting on every split (n_splits, n_settings), with the capped and exact-solve masks.

        Kernel blocks are sliced one split at a time and released, so memory stays at one
        full kernel plus one split's blocks whatever the number of splits (nested: k^2).
        """
        result = GridScores.empty(len(splits), len(self.settings))
        X = np.asarray(X, np.float64)
        gamma_values = [1.0 / X.shape[1] if g == "auto" else g for g in self.gammas]
        rbf_cols = [[gi * len(self.Cs) + ci for ci in range(len(self.Cs))] for gi in range(len(self.gammas))]
        lin_cols = [len(self.gammas) * len(self.Cs) + ci for ci in range(len(self.Cs))]

        if standardize:
            # kernels depend on each split's training statistics: compute them per split
            for s, sp in enumerate(splits):
                Xt, Xe = standardise(X[sp.train], X[sp.eval])
                y_t, y_e = y[sp.train], y[sp.eval]
                D_tt, D_et = squared_distances(Xt, Xt), squared_distances(Xe, Xt)
                for cols, g in zip(rbf_cols, gamma_values):
                    self._fit_split(np.exp(-g * D_tt), y_t, np.exp(-g * D_et), y_e, cols, result, s)
                if self.linear:
                    self._fit_split(Xt @ Xt.T, y_t, Xe @ Xt.T, y_e, lin_cols, result, s)
            return result

        # one full-data kernel per gamma (and one Gram matrix) serves every split
        full = [(cols, g) for cols, g in zip(rbf_cols, gamma_values)] + ([(lin_cols, None)] if self.linear else [])
        D = squared_distances(X, X)
        for cols, g in full:
            K = X @ X.T if g is None else np.exp(-g * D)
            for s, sp in enumerate(splits):
                self._fit_split(K[np.ix_(sp.train, sp.train)], y[sp.train], K[np.ix_(sp.eval, sp.train)], y[sp.eval],
                                cols, result, s)
            del K
        return result
