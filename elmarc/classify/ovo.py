"""libsvm's one-vs-one SVC on a precomputed kernel, with an exact fallback for the pairs where SMO crawls.

libsvm solves each pair's dual with SMO. On unscaled, strongly correlated features (the
temporal front-end's, say) the linear kernel's dual is so ill-conditioned that SMO needs
hundreds of millions of iterations at large C. Here libsvm runs with an iteration budget per
pair; a pair that exhausts it is solved again by an interior-point method (cvxopt's QP solver:
a maintained library, and one whose iteration count hardly depends on the conditioning) to
the optimum of the same problem, on a working set grown from SMO's support vectors (pair_dual).
SMO's own stopping rule (KKT violation under tol) can leave
it short of that optimum on such problems, so these answers can differ from what libsvm would
have returned; the caller reports them. The votes are counted as libsvm counts them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from cvxopt import matrix, solvers, spmatrix
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC

# a stopped SMO is read from n_iter_ (fit_predict); libsvm's warning about it says nothing more
warnings.filterwarnings("ignore", message=".*Solver terminated early.*", category=ConvergenceWarning)

# SMO's work per pair, in iterations x training clips of the pair (an iteration updates the gradient of
# every clip): 100 000 iterations for a pair of 160 clips. Features that do not crawl converge well
# within it (make bench, section svmconv); past it, the interior-point solve is the cheaper route.
SMO_BUDGET = 16_000_000


@dataclass
class OvOResult:
    predictions: np.ndarray         # (n_eval,) class labels
    exact_pairs: int                # pairs solved by the interior-point method (SMO over its budget)
    capped: bool                    # a pair stopped at the user's max_iter (approximate; flagged)


# Tolerance ladder of the interior-point solve: the first rung is tried; an end short of it ("unknown": the
# residuals' float floor grows with the kernel's scale) is accepted at the first rung its residuals meet,
# all far below libsvm's 1e-3 on the KKT conditions.
QP_RUNGS = ((1e-10, 1e-8), (1e-8, 1e-7), (1e-7, 1e-6))
# A working-set solve that grows past this fraction of the pair is finished on the whole pair.
WHOLE_PAIR_FRACTION = 0.5
MARGIN_TOL = 1e-6               # a clip outside the working set is optimal at alpha = 0 when y f(x) >= 1 - this


def pair_order(k: int) -> list[tuple[int, int]]:
    """libsvm's one-vs-one pairs of k classes: (0,1), (0,2), ..., (1,2), ..."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def _qp(K: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """cvxopt's interior-point solve of one pair's dual: (alpha, b)."""
    m = len(y)
    P = matrix(np.outer(y, y) * K)
    G = spmatrix([-1.0] * m + [1.0] * m, list(range(2 * m)), list(range(m)) * 2, (2 * m, m))   # -a <= 0, a <= C
    h = matrix(np.concatenate([np.zeros(m), np.full(m, float(C))]))
    A = matrix(y.astype(np.float64)[None, :])
    gap, feas = QP_RUNGS[0]
    options = {"show_progress": False, "abstol": gap, "reltol": gap, "feastol": feas, "maxiters": 100}
    sol = solvers.qp(P, matrix(-np.ones(m)), G, h, A, matrix(0.0), options=options)
    if sol["status"] != "optimal" and not _meets_a_rung(sol):
        # near the float floor the method can wander off: a looser stop may end it before that
        for gap, feas in QP_RUNGS[1:]:
            options.update(abstol=gap, reltol=gap, feastol=feas)
            sol = solvers.qp(P, matrix(-np.ones(m)), G, h, A, matrix(0.0), options=options)
            if sol["status"] == "optimal" or _meets_a_rung(sol):
                break
        else:
            raise RuntimeError(f"interior-point SVC solve ended with status {sol['status']!r}")
    alpha = np.clip(np.asarray(sol["x"]).ravel(), 0.0, float(C))
    return alpha, float(np.asarray(sol["y"]).ravel()[0])      # the equality constraint's multiplier is the bias


def _meets_a_rung(sol: dict) -> bool:
    """cvxopt's own test for 'optimal' (both residuals under feastol, and the gap under abstol or the
    relative gap under reltol), at any rung of the ladder."""
    gap, rel = sol["gap"], sol["relative gap"]
    for tol, feas in QP_RUNGS:
        if (sol["primal infeasibility"] <= feas and sol["dual infeasibility"] <= feas
                and ((gap is not None and gap <= tol) or (rel is not None and rel <= tol))):
            return True
    return False


def pair_dual(K: np.ndarray, y: np.ndarray, C: float, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Solve one pair's SVC dual exactly: min 1/2 a'(yy'*K)a - 1'a, 0 <= a <= C, y'a = 0.

    K (m, m) kernel of the pair's training clips, y (m,) in {+1, -1}. Returns (a * y, b) so that
    the decision value of a clip with kernel row k is k @ (a * y) + b (b = -rho in libsvm's terms).

    start: a first working set (clip indices, e.g. SMO's support vectors so far). The dual is then
    solved on the working set with every other alpha at 0, and the clips outside it that violate
    their optimality condition (y f(x) >= 1 at alpha = 0) join it until none does: the classical
    decomposition (Osuna et al. 1997), whose answer is the whole problem's optimum, with each solve
    the size of the support vectors rather than of the pair. Past WHOLE_PAIR_FRACTION of the pair
    it solves the whole pair.
    """
    m = len(y)
    work = np.zeros(m, bool)
    if start is not None:
        work[np.asarray(start, dtype=int)] = True
        for side in (1.0, -1.0):                # y'a = 0 needs both classes in the set, or every alpha is 0
            if not (work & (y == side)).any():
                work[np.flatnonzero(y == side)[:1]] = True
    while 0 < work.sum() <= WHOLE_PAIR_FRACTION * m:
        idx = np.flatnonzero(work)
        a, b = _qp(K[np.ix_(idx, idx)], y[idx], C)
        margin = y * (K[:, idx] @ (a * y[idx]) + b)
        violated = np.flatnonzero(~work & (margin < 1.0 - MARGIN_TOL))
        if len(violated) == 0:
            alpha = np.zeros(m)
            alpha[idx] = a
            return alpha * y, b
        worst = violated[np.argsort(margin[violated], kind="stable")]
        work[worst[: max(20, len(idx) // 2)]] = True
    alpha, b = _qp(K, y, C)
    return alpha * y, b


def smo_support(clf: SVC, pair: int) -> np.ndarray:
    """Training-clip indices of a fitted (possibly stopped) SVC's support vectors in one one-vs-one pair.

    libsvm stores the support vectors grouped by class; a vector of class c holds one coefficient per
    other class, in row j - 1 of dual_coef_ for a class j after c and row j for one before it.
    """
    i, j = pair_order(len(clf.classes_))[pair]
    bounds = np.concatenate([[0], np.cumsum(clf.n_support_)])
    first = np.arange(bounds[i], bounds[i + 1])
    second = np.arange(bounds[j], bounds[j + 1])
    used = np.concatenate([first[clf.dual_coef_[j - 1, first] != 0], second[clf.dual_coef_[i, second] != 0]])
    return clf.support_[used]


def ovo_decisions_exact(K_train: np.ndarray, y_train: np.ndarray, K_eval: np.ndarray, C: float,
                        classes: np.ndarray, pairs: list[int] | None = None,
                        starts: dict | None = None) -> np.ndarray:
    """Decision values (n_eval, n_pairs) of the one-vs-one pairs in libsvm's order (0,1), (0,2), ..., (1,2), ...

    Positive: a vote for the pair's first class. pairs: only these pair indices (the others stay NaN).
    starts: pair index -> training-clip indices that start its working set (a stopped SMO's support
    vectors); a pair without one is solved whole.
    """
    order = pair_order(len(classes))
    out = np.full((K_eval.shape[0], len(order)), np.nan)
    for p in range(len(order)) if pairs is None else pairs:
        i, j = order[p]
        idx = np.flatnonzero((y_train == classes[i]) | (y_train == classes[j]))
        y = np.where(y_train[idx] == classes[i], 1.0, -1.0)
        start = None if starts is None or p not in starts else np.flatnonzero(np.isin(idx, starts[p]))
        coef, b = pair_dual(K_train[np.ix_(idx, idx)], y, C, start)
        out[:, p] = K_eval[:, idx] @ coef + b
    return out


def ovo_vote(decisions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """libsvm's vote: pair (i, j) votes i when its decision is > 0, else j; the most votes win, ties to
    the first class in order."""
    votes = np.zeros((decisions.shape[0], len(classes)), dtype=int)
    for p, (i, j) in enumerate(pair_order(len(classes))):
        first = decisions[:, p] > 0
        votes[first, i] += 1
        votes[~first, j] += 1
    return classes[np.argmax(votes, axis=1)]            # argmax: the first of equal maxima


def _ovo_decisions(clf: SVC, K: np.ndarray) -> np.ndarray:
    """(n, n_pairs) decisions, positive for the pair's first class (sklearn flips the binary case's sign)."""
    d = clf.decision_function(K)
    return np.array(-d[:, None] if len(clf.classes_) == 2 else d, dtype=np.float64, copy=True)


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
    clf.fit(K_train, y_train)
    # from the fit itself, not a caught warning: catch_warnings is not thread-safe, and fits run in threads
    stopped = cap > 0 and bool((np.atleast_1d(clf.n_iter_) >= cap).any())
    if not stopped:
        return OvOResult(clf.predict(K_eval), 0, False)
    if max_iter > 0:
        return OvOResult(clf.predict(K_eval), 0, True)
    classes = clf.classes_
    over = [p for p, n in enumerate(np.atleast_1d(clf.n_iter_)) if n >= cap]
    decisions = _ovo_decisions(clf, K_eval)
    exact = ovo_decisions_exact(K_train, y_train, K_eval, C, classes, over, {p: smo_support(clf, p) for p in over})
    decisions[:, over] = exact[:, over]
    return OvOResult(ovo_vote(decisions, classes), len(over), False)
