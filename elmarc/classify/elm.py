"""Extreme learning machine (SPEC section 3) as a scikit-learn estimator, and its grid."""
from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..config import PAPER_ELM_HIDDEN, ConfigError
from .splits import GridScores, standardise


def _hidden_weights(random_state, n_features: int, n_hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """W (n_hidden, n_features) and b (n_hidden,) from N(0, 1), no scaling.

    W and b come from two independent child streams of the seed, and W is drawn row
    by row, so the first k units of a wide layer equal the units of a k-unit layer:
    one 2500-unit draw serves the whole grid.
    """
    if isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(0, 2**31 - 1))
    elif random_state is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    else:
        seed = int(random_state)
    w_seq, b_seq = np.random.SeedSequence(seed).spawn(2)
    W = np.random.default_rng(w_seq).standard_normal((n_hidden, n_features))
    b = np.random.default_rng(b_seq).standard_normal(n_hidden)
    return W, b


def hidden_layer(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """relu(X W^T + b): (n_samples, n_hidden)"""
    return np.maximum(X @ W.T + b, 0.0)


def signed_targets(y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """+1 for the clip's class, -1 elsewhere: (n_samples, n_classes)"""
    T = -np.ones((len(y_index), n_classes))
    T[np.arange(len(y_index)), y_index] = 1.0
    return T


def output_weights(H: np.ndarray, T: np.ndarray) -> np.ndarray:
    """pinv(H) @ T, the minimum-norm least-squares solution (no ridge): (n_hidden, n_classes)"""
    beta, *_ = np.linalg.lstsq(H, T, rcond=None)
    return beta


class ELMClassifier(ClassifierMixin, BaseEstimator):
    """Single-hidden-layer ELM: H = relu(X W^T + b), W, b ~ N(0, 1); beta = pinv(H) T; predict argmax(H beta).

    Parameters
    ----------
    n_hidden : int, hidden units.
    random_state : int, RandomState or None; fixes W and b.

    Attributes after fit: classes_ (n_classes,), W_ (n_hidden, n_features), b_ (n_hidden,),
    beta_ (n_hidden, n_classes), n_features_in_.
    """

    def __init__(self, n_hidden: int = 500, random_state=None):
        self.n_hidden = n_hidden
        self.random_state = random_state

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if not isinstance(self.n_hidden, (int, np.integer)) or self.n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive integer, got {self.n_hidden!r}")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        self.W_, self.b_ = _hidden_weights(self.random_state, X.shape[1], int(self.n_hidden))
        H = hidden_layer(X, self.W_, self.b_)
        self.beta_ = output_weights(H, signed_targets(y_index, len(self.classes_)))
        return self

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return hidden_layer(X, self.W_, self.b_) @ self.beta_

    def decision_function(self, X) -> np.ndarray:
        """(n_samples, n_classes) outputs; (n_samples,) = output[1] - output[0] for two classes (sklearn convention)."""
        out = self._outputs(X)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def predict(self, X) -> np.ndarray:
        out = self._outputs(X)                      # checks fitted-ness before classes_ is read
        return self.classes_[np.argmax(out, axis=1)]


class ELMGrid:
    """All ELM sizes of SPEC's grid for one seed, from one random projection.

    Each size k uses the first k units of one 2500-unit layer, which equals
    ELMClassifier(n_hidden=k, random_state=seed) (tested).
    """

    uses_seed = True             # the hidden layer is drawn from the seed

    def __init__(self, n_hidden=PAPER_ELM_HIDDEN, seed: int = 0, n_jobs: int = 1, name: str = "elm"):
        self.name, self.n_jobs = str(name), int(n_jobs)
        self.sizes = [int(k) for k in n_hidden]
        self.seed = int(seed)
        self.settings = [{"n_hidden": k} for k in self.sizes]
        if not self.sizes or min(self.sizes) < 1:

            raise ConfigError(f"classifier {self.name!r}: n_hidden={self.sizes} needs at least one size, each >= 1.\n"
                              f"  Fix: classifier.n_hidden=[100,250,500] (the paper's: {list(PAPER_ELM_HIDDEN)}).")

    def edge(self, setting: dict) -> bool:
        return setting["n_hidden"] in (min(self.sizes), max(self.sizes))

    def _split_predictions(self, H_train, y_train, H_eval) -> list[np.ndarray]:
        classes, y_index = np.unique(y_train, return_inverse=True)
        T = signed_targets(y_index, len(classes))
        return [classes[np.argmax(H_eval[:, :k] @ output_weights(H_train[:, :k], T), axis=1)] for k in self.sizes]

    def scores(self, X: np.ndarray, y: np.ndarray, splits: list, standardize: bool = False) -> GridScores:
        """Accuracy of every size on every split (n_splits, n_sizes); an ELM fit is never capped."""
        X = np.asarray(X, np.float64)
        W, b = _hidden_weights(self.seed, X.shape[1], max(self.sizes))
        result = GridScores.empty(len(splits), len(self.sizes))
        H = None if standardize else hidden_layer(X, W, b)   # one projection serves every split

        def split_predictions(sp):
            if standardize:
                Xt, Xe = standardise(X[sp.train], X[sp.eval])
                return self._split_predictions(hidden_layer(Xt, W, b), y[sp.train], hidden_layer(Xe, W, b))
            return self._split_predictions(H[sp.train], y[sp.train], H[sp.eval])


        # splits in parallel threads (numpy releases the GIL), each in the caller's BLAS threads: same values
        per_split = Parallel(n_jobs=self.n_jobs, prefer="threads")(delayed(split_predictions)(sp) for sp in splits)
        for s, (sp, predictions) in enumerate(zip(splits, per_split)):
            for j, predicted in enumerate(predictions):
                result.accuracy[s, j] = float(np.mean(predicted == y[sp.eval]))
                result.predictions[s, j] = predicted
        return result
