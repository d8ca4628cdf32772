"""Ill-conditioned features that make libsvm's SMO crawl: the exact fallback gives libsvm's converged decisions."""
import numpy as np
import pytest
from sklearn.svm import SVC

from elmarc.classify import SVMGrid
from elmarc.classify.ovo import fit_predict, ovo_vote
from elmarc.classify.splits import Split
from elmarc.classify.svm import squared_distances

from fixtures import ill_conditioned


@pytest.fixture(scope="module")
def crawl():
    X, y = ill_conditioned()
    train = np.arange(len(y)) % 5 != 0          # every class in training and in evaluation
    return X, y, train


def kernels(X, train, setting):
    if setting["kernel"] == "linear":
        return X[train] @ X[train].T, X[~train] @ X[train].T
    gamma = 1.0 / X.shape[1] if setting["gamma"] == "auto" else setting["gamma"]
    return np.exp(-gamma * squared_distances(X[train], X[train])), np.exp(-gamma * squared_distances(X[~train], X[train]))


def test_every_setting_gives_libsvms_converged_decisions(crawl):
    X, y, train = crawl
    budget = 2000 * 100                     # iterations x clips of the largest pair (100 here)
    crawled = exact = 0
    for setting in SVMGrid().settings:
        K, Ke = kernels(X, train, setting)
        reference = SVC(kernel="precomputed", C=setting["C"]).fit(K, y[train])      # run to convergence
        crawled += int(reference.n_iter_.max() > budget)
        ours = fit_predict(K, y[train], Ke, setting["C"], budget=budget)
        exact += ours.exact_pairs > 0
        assert not ours.capped
        np.testing.assert_array_equal(ours.predictions, reference.predict(Ke), err_msg=str(setting))
    assert crawled >= 2 and exact >= 3          # the case really makes SMO crawl, and the fallback really ran


def test_grid_reports_exact_fits_and_the_same_accuracies(crawl):
    X, y, train = crawl
    split = [Split("s", np.flatnonzero(train), np.flatnonzero(~train), 0, "outer")]
    fast = SVMGrid(smo_budget=2000 * 80).scores(X, y, split)
    slow = SVMGrid(smo_budget=None).scores(X, y, split)                  # libsvm alone, to convergence
    np.testing.assert_array_equal(fast.accuracy, slow.accuracy)
    assert fast.exact.any() and not slow.exact.any() and not fast.capped.any()


def test_a_user_cap_is_flagged_not_replaced(crawl):
    X, y, train = crawl
    K, Ke = kernels(X, train, {"kernel": "linear"})
    capped = fit_predict(K, y[train], Ke, 32.0, max_iter=500)
    assert capped.capped and capped.exact_pairs == 0


def test_votes_follow_libsvm_including_ties():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = np.array(["b", "c", "a", "d"])[rng.integers(0, 4, 120)]                # first appearance not sorted
    K, Ke = X[:90] @ X[:90].T, X[90:] @ X[:90].T
    clf = SVC(kernel="precomputed", C=1.0, decision_function_shape="ovo").fit(K, y[:90])
    np.testing.assert_array_equal(ovo_vote(clf.decision_function(Ke), clf.classes_), clf.predict(Ke))
    classes = np.array(["a", "b", "c"])
    # pairs (a,b) (a,c) (b,c): a beats b, c beats a, b beats c -> one vote each: the first class wins
    assert ovo_vote(np.array([[1.0, -1.0, 1.0]]), classes)[0] == "a"
    assert ovo_vote(np.array([[-1.0, -1.0, 1.0]]), classes)[0] == "b"   # b two votes
    assert ovo_vote(np.array([[0.0, 0.0, 0.0]]), classes)[0] == "c"     # a zero decision votes the second class


def test_two_classes_use_libsvms_sign(crawl):
    X, y, train = crawl
    two = np.isin(y, ["c0", "c1"])
    Xb, yb, tb = X[two], y[two], train[two]
    K, Ke = Xb[tb] @ Xb[tb].T, Xb[~tb] @ Xb[tb].T
    reference = SVC(kernel="precomputed", C=8.0).fit(K, yb[tb]).predict(Ke)
    ours = fit_predict(K, yb[tb], Ke, 8.0, budget=1000 * 80)
    assert ours.exact_pairs == 1
    np.testing.assert_array_equal(ours.predictions, reference)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")      # the stopped SMO is the point
def test_working_set_solve_is_the_whole_pairs_optimum(monkeypatch):
    from elmarc.classify import ovo

    X, y = ill_conditioned(n=600, dim=40, seed=3)               # pairs of 320 training clips
    train = np.arange(len(y)) % 5 != 0
    pair = np.isin(y, ["c0", "c1"])
    Xp, yp = X[pair & train], np.where(y[pair & train] == "c0", 1.0, -1.0)
    Xe = X[pair & ~train]
    K, Ke = Xp @ Xp.T, Xe @ Xp.T
    sizes = []
    solve = ovo._qp
    monkeypatch.setattr(ovo, "_qp", lambda K_, y_, C_: (sizes.append(len(y_)), solve(K_, y_, C_))[1])
    for C in (0.1, 2.0, 32.0):
        whole_coef, whole_b = ovo.pair_dual(K, yp, C)
        stopped = SVC(kernel="precomputed", C=C, max_iter=2000).fit(K, yp)
        # a stopped SMO's support vectors, a poor start (the first 20 clips), one of a single class:
        # violators join until none is left
        for start in (ovo.smo_support(stopped, 0), np.arange(20), np.flatnonzero(yp > 0)[:20]):
            sizes.clear()
            coef, b = ovo.pair_dual(K, yp, C, start)
            if C > 1:                                            # few support vectors: never the whole pair
                assert max(sizes) < len(yp) / 2, sizes
            whole, ours = Ke @ whole_coef + whole_b, Ke @ coef + b
            np.testing.assert_allclose(ours, whole, atol=1e-5 * np.abs(whole).max())
            np.testing.assert_array_equal(np.sign(ours), np.sign(whole))
            margins = yp * (K @ coef + b)                        # the optimality conditions on every clip
            alpha = coef * yp
            assert (margins[alpha < 1e-9 * C] >= 1 - 1e-5).all() and (margins[alpha > C * (1 - 1e-9)] <= 1 + 1e-5).all()


def test_smo_support_reads_libsvms_layout():
    from elmarc.classify.ovo import smo_support

    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 3)) + np.repeat(np.eye(3) * 2, 30, axis=0)
    y = np.repeat(["a", "b", "c"], 30)
    K = X @ X.T
    clf = SVC(kernel="precomputed", C=1.0).fit(K, y)
    for p, (i, j) in enumerate([("a", "b"), ("a", "c"), ("b", "c")]):
        two = np.isin(y, [i, j])
        alone = SVC(kernel="precomputed", C=1.0).fit(K[np.ix_(two, two)], y[two])   # the pair by itself
        np.testing.assert_array_equal(np.sort(smo_support(clf, p)), np.flatnonzero(two)[np.sort(alone.support_)])
