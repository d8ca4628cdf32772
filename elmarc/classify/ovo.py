"""libsvm's one-vs-one SVC on a precomputed kernel, with an exact fallback for the pairs where SMO crawls.

libsvm solves each pair's dual with SMO. On unscaled, strongly correlated features (the
temporal front-end's, say) the linear kernel's dual is so ill-conditioned that SMO needs
hundreds of millions of iterations at large C. Here libsvm runs with an iteration budget per
pair; a pair that exhausts it is solved again by an interior-point method (cvxopt's QP solver:
a maintained library, and one whose iteration count hardly depends on the conditioning) to
the optimum of the same problem. SMO's own stopping rule (KKT violation under tol) can leave
it short of that optimum on such problems, so these answers can differ from what libsvm would
have returned; the caller reports them. The votes are counted as libsvm counts them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

# SMO's work per pair, in iterations x training clips of the pair (an iteration updates the gradient of
# every clip): 100 000 iterations for a pair of 160 clips. Features that do not crawl converge well
# within it (make bench, section svmconv); past it, the interior-point solve is the cheaper route.
SMO_BUDGET = 16_000_000


@dataclass
class OvOResult:
    predictions: np.ndarray         # (n_eval,) class labels
    exact_pairs: int                # pairs solved by the interior-point method (SMO over its budget)
    capped: bool                    # a pair stopped at the user's max_iter (approximate; flagged)


def pair_dual(K: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Solve one pair's SVC dual exactly: min 1/2 a'(yy'*K)a - 1'a, 0 <= a <= C, y'a = 0.

    K (m, m) kernel of the pair's training clips, y (m,) in {+1, -1}. Returns (a * y, b) so that
    the decision value of a clip with kernel row k is k @ (a * y) + b (b = -rho in libsvm's terms).
    """
    from cvxopt import matrix, solvers, spmatrix

    m = len(y)
    P = matrix(np.outer(y, y) * K)
    G = spmatrix([-1.0] * m + [1.0] * m, list(range(2 * m)), list(range(m)) * 2, (2 * m, m))   # -a <= 0, a <= C
    h = matrix(np.concatenate([np.zeros(m), np.full(m, float(C))]))
    A = matrix(y.astype(np.float64)[None, :])
    # tight tolerances first; the residuals' float floor grows with the kernel's scale, and near it
    # the method can wander off, so a looser (still far below libsvm's 1e-3) pass follows if needed
    for gap, feas in ((1e-10, 1e-8), (1e-8, 1e-7), (1e-7, 1e-6)):
        options = {"show_progress": False, "abstol": gap, "reltol": gap, "feastol": feas, "maxiters": 100}
        sol = solvers.qp(P, matrix(-np.ones(m)), G, h, A, matrix(0.0), options=options)
        worst = max(sol["relative gap"] if sol["relative gap"] is not None else np.inf,
                    sol["primal infeasibility"], sol["dual infeasibility"])
        if sol["status"] == "optimal" or worst < 1e-6:
            break
    else:
        raise RuntimeError(f"interior-point SVC solve ended with status {sol['status']!r} (worst residual {worst:.2g})")
    alpha = np.asarray(sol["x"]).ravel()
    b = float(np.asarray(sol["y"]).ravel()[0])      # the equality constraint's multiplier is the bias
    return alpha * y, b


def ovo_decisions_exact(K_train: np.ndarray, y_train: np.ndarray, K_eval: np.ndarray, C: float,
                        classes: np.ndarray, pairs: list[int] | None = None) -> np.ndarray:
    """Decision values (n_eval, n_pairs) of the one-vs-one pairs in libsvm's order (0,1), (0,2), ..., (1,2), ...

    Positive: a vote for the pair's first class. pairs: only these pair indices (the others stay NaN).
    """
    k = len(classes)
    order = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out = np.full((K_eval.shape[0], len(order)), np.nan)
    for p in range(len(order)) if pairs is None else pairs:
        i, j = order[p]
        idx = np.flatnonzero((y_train == classes[i]) | (y_train == classes[j]))
        y = np.where(y_train[idx] == classes[i], 1.0, -1.0)
        coef, b = pair_dual(K_train[np.ix_(idx, idx)], y, C)
        out[:, p] = K_eval[:, idx] @ coef + b
    return out


def ovo_vote(decisions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """libsvm's vote: pair (i, j) votes i when its decision is > 0, else j; the most votes win, ties to
    the first class in order."""
    k = len(classes)
    votes = np.zeros((decisions.shape[0], k), dtype=int)
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            first = decisions[:, p] > 0
            votes[first, i] += 1
            votes[~first, j] += 1
            p += 1
    return classes[np.argmax(votes, axis=1)]            # argmax: the first of equal maxima


def fit_predict(K_train: np.ndarray, y_train: np.ndarray, K_eval: np.ndarray, C: float, tol: float = 1e-3,
                max_iter: int = -1, budget: int | None = SMO_BUDGET) -> OvOResult:
    """SVC(kernel='precomputed', C=C) fitted on K_train and applied to K_eval.

    max_iter -1: libsvm's answer where SMO converges within `budget` (iterations x clips of the largest
    pair), the exact optimum (interior point) for the pairs where it does not; budget None: libsvm
    to its own convergence everywhere (the reference). max_iter > 0: the user's cap, as libsvm
    applies it (an approximate fit, reported as capped).
    """
    largest_pair = int(np.sum(np.sort(np.unique(y_train, return_counts=True)[1])[-2:]))
    cap = max_iter if max_iter > 0 else (-1 if budget is None else max(1000, budget // max(largest_pair, 1)))
    clf = SVC(kernel="precomputed", C=C, tol=tol, max_iter=cap, decision_function_shape="ovo")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(K_train, y_train)
    stopped = cap > 0 and any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not stopped:
        return OvOResult(clf.predict(K_eval), 0, False)
    if max_iter > 0:
        return OvOResult(clf.predict(K_eval), 0, True)
    classes = clf.classes_
    over = [p for p, n in enumerate(np.atleast_1d(clf.n_iter_)) if n >= cap]
    decisions = clf.decision_function(K_eval)
    if len(classes) == 2:                               # sklearn reports binary decisions with the opposite sign
        decisions = -decisions[:, None]
    decisions = np.array(decisions, dtype=np.float64, copy=True)
    exact = ovo_decisions_exact(K_train, y_train, K_eval, C, classes, over)
    decisions[:, over] = exact[:, over]
    return OvOResult(ovo_vote(decisions, classes), len(over), False)
