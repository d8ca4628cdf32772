"""SPEC section 3: the SVM grid equals scikit-learn's SVC; the ELM equals a direct NumPy computation."""
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.svm import SVC

from elmarc.classify import ELMClassifier, ELMGrid, SVMGrid
from elmarc.classify.splits import Split, standardise


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=150, n_features=12, n_informative=6, n_classes=3,
                               n_clusters_per_class=1, random_state=0)
    X = X * np.linspace(0.2, 5, 12)          # unequal scales, as random-CNN features have
    return X, np.array(["a", "b", "c"])[y]


def splits_of(n, k=3):
    fold = np.arange(n) % k
    return [Split(f"f{i}", np.flatnonzero(fold != i), np.flatnonzero(fold == i), i, "outer") for i in range(k)]


def test_svm_grid_has_spec_32_settings():
    grid = SVMGrid()
    assert len(grid.settings) == 32
    assert sum(s["kernel"] == "rbf" for s in grid.settings) == 28
    assert {s["gamma"] for s in grid.settings if s["kernel"] == "rbf"} == {2.0 ** -k for k in (3, 5, 7, 9, 11, 13)} | {"auto"}


@pytest.mark.parametrize("standardize", [False, True])
def test_svm_grid_equals_sklearn_svc(data, standardize):
    X, y = data
    grid = SVMGrid()
    splits = splits_of(len(y))
    res = grid.scores(X, y, splits, standardize=standardize)
    ours = res.accuracy
    assert ours.shape == (3, 32) and not res.capped.any()
    for s, sp in enumerate(splits):
        Xt, Xe = (standardise(X[sp.train], X[sp.eval]) if standardize else (X[sp.train], X[sp.eval]))
        for j, st in enumerate(grid.settings):
            gamma = 1.0 / X.shape[1] if st["gamma"] == "auto" else st["gamma"]
            ref = SVC(kernel=st["kernel"], C=st["C"], gamma=gamma if st["kernel"] == "rbf" else "scale")
            ref.fit(Xt, y[sp.train])
            assert ours[s, j] == np.mean(ref.predict(Xe) == y[sp.eval]), (s, st)


def test_svm_precomputed_decisions_equal_rbf(data):
    from elmarc.classify.svm import squared_distances

    X, y = data
    g = 2.0 ** -5
    K = np.exp(-g * squared_distances(X, X))
    a = SVC(kernel="precomputed", C=2).fit(K[:100, :100], y[:100]).decision_function(K[100:, :100])
    b = SVC(kernel="rbf", gamma=g, C=2).fit(X[:100], y[:100]).decision_function(X[100:])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_elm_equals_numpy_pinv(data):
    X, y = data
    clf = ELMClassifier(n_hidden=40, random_state=7).fit(X[:100], y[:100])
    W, b = clf.W_, clf.b_
    assert W.shape == (40, 12) and b.shape == (40,)
    H = np.maximum(X[:100] @ W.T + b, 0)
    T = np.where(y[:100, None] == np.array(["a", "b", "c"])[None, :], 1.0, -1.0)
    beta = np.linalg.pinv(H) @ T
    np.testing.assert_allclose(clf.beta_, beta, rtol=1e-6, atol=1e-8)
    ref = np.array(["a", "b", "c"])[np.argmax(np.maximum(X[100:] @ W.T + b, 0) @ beta, axis=1)]
    np.testing.assert_array_equal(clf.predict(X[100:]), ref)
    # W and b are N(0, 1) draws, unscaled
    big = ELMClassifier(n_hidden=2000, random_state=1).fit(X, y)
    assert abs(big.W_.std() - 1) < 0.02 and abs(big.b_.mean()) < 0.1


def test_elm_seeds(data):
    X, y = data
    a = ELMClassifier(50, random_state=3).fit(X, y)
    b = ELMClassifier(50, random_state=3).fit(X, y)
    c = ELMClassifier(50, random_state=4).fit(X, y)
    assert np.array_equal(a.W_, b.W_) and not np.array_equal(a.W_, c.W_)


def test_elm_grid_equals_estimator_per_size(data):
    X, y = data
    grid = ELMGrid(n_hidden=(10, 30, 80), seed=5)
    splits = splits_of(len(y))
    scores = grid.scores(X, y, splits).accuracy
    for s, sp in enumerate(splits):
        for j, k in enumerate(grid.sizes):
            clf = ELMClassifier(n_hidden=k, random_state=5).fit(X[sp.train], y[sp.train])
            assert scores[s, j] == np.mean(clf.predict(X[sp.eval]) == y[sp.eval])


def test_elm_get_params_and_clone():
    from sklearn.base import clone

    clf = ELMClassifier(n_hidden=123, random_state=9)
    assert clf.get_params() == {"n_hidden": 123, "random_state": 9}
    assert clone(clf).get_params() == clf.get_params()


def test_elm_passes_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    # pinv without ridge interpolates the training set: the 'fit on easy data' checks hold
    check_estimator(ELMClassifier(n_hidden=50, random_state=0))


def test_elm_rejects_bad_input():
    with pytest.raises(ValueError):
        ELMClassifier(n_hidden=0).fit(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError):
        ELMClassifier().fit(np.array([[np.nan, 1.0], [1.0, 2.0]]), [0, 1])


def test_a_job_takes_its_share_of_the_cores_under_a_parallel_launcher(monkeypatch):
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from elmarc import resources

    monkeypatch.setattr(resources, "available_cores", lambda: 16)
    monkeypatch.setattr(resources, "available_cores_of_machine", lambda: 16)
    assert resources.job_cores() == 16                                      # a plain run: every core

    def launched(**launcher):
        monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(launcher=OmegaConf.create(launcher))))
        return resources.job_cores()

    assert launched(n_jobs=4) == 4                       # joblib: 4 processes share 16 cores
    assert launched(n_jobs=-1) == 1                      # one process per core
    assert launched(cpus_per_task=3) == 3                # submitit / Slurm: what the job was given
    assert launched(_target_="hydra._internal.core_plugins.basic_launcher.BasicLauncher") == 16


def test_blas_threads_are_bounded_inside_the_block():
    from threadpoolctl import threadpool_info

    from elmarc.resources import blas_threads

    with blas_threads(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
