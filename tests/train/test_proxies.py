"""The training-free proxies against values worked out by hand on a two-layer network, and their invariants
on the real front-ends."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elmarc.train import proxies
from elmarc.train.proxies import ProxyNet

# x -> relu(W1 x) -> W2 . + b; two inputs, two classes
W1 = [[1.0, -1.0], [0.5, 2.0]]
W2 = [[2.0, 0.0], [-1.0, 1.0]]
X = [[1.0, 2.0], [2.0, -1.0]]
Y = [0, 1]


class OneLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(W1, dtype=torch.float64))

    def forward(self, x):
        return F.relu(x @ self.weight.T)


def two_layer() -> ProxyNet:
    head = nn.Linear(2, 2).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor(W2))
        head.bias.zero_()
    return ProxyNet(OneLayer(), head)


def batch():
    return torch.tensor(X, dtype=torch.float64), torch.tensor(Y)


# By hand: pre-activations h1 = [-1, 4.5], h2 = [3, -1]; codes [0, 1], [1, 0]; logits z1 = [0, 4.5], z2 = [6, -3].
# d(loss_n)/dz: sample 1 (class 0) [-s, s], s = sigmoid(4.5); sample 2 (class 1) [r, -r], r = 1 - sigmoid(-9).
S = 1 / (1 + math.exp(-4.5))
R = 1 - 1 / (1 + math.exp(9))


def test_naswot_two_inputs_with_disjoint_codes():
    # K = [[2, 0], [0, 2]]: each input agrees with itself on both units and with the other on none
    K, units = proxies.naswot_kernel(two_layer(), batch()[0])
    assert units == 2
    np.testing.assert_array_equal(K.numpy(), [[2, 0], [0, 2]])
    assert proxies.naswot(two_layer(), batch()[0]) == pytest.approx(math.log(4))


def test_synflow_by_hand():
    # |W1| ones = [2, 2.5] = h; z = |W2| h = [4, 4.5], R = 8.5; dR/dW2 = h per row -> 2*2 + 1*2 + 1*2.5 = 8.5;
    # dR/dh = column sums of |W2| = [3, 1]; dR/dW1 = [[3, 3], [1, 1]] -> 3 + 3 + 0.5 + 2 = 8.5
    assert proxies.synflow(two_layer(), batch()[0]) == pytest.approx(17.0)


def test_gradient_proxies_by_hand():
    # mean loss: dW1 = [[3r, -1.5r], [0.5s, s]], dW2 = [[1.5r, -2.25s], [-1.5r, 2.25s]]
    g1 = np.array([[3 * R, -1.5 * R], [0.5 * S, S]])
    g2 = np.array([[1.5 * R, -2.25 * S], [-1.5 * R, 2.25 * S]])
    scores = proxies.gradient_scores(two_layer(), *batch())
    assert scores.grad_norm == pytest.approx(np.linalg.norm(g1) + np.linalg.norm(g2), rel=1e-12)
    assert scores.snip == pytest.approx(9 * R + 4.5 * S, rel=1e-12)
    # fisher, per channel 0.5 * mean_n (a * dL/da)^2: layer 1 a*g = [0, 2.25s], [4.5r, 0]; head [0, 2.25s], [3r, 1.5r];
    # every channel's term counted for each of its 2 weights (zero-cost-nas's per-weight sum)
    assert scores.fisher == pytest.approx(2 * 0.25 * (31.5 * R ** 2 + 10.125 * S ** 2), rel=1e-12)
    # Jacobians of sum(z): W1' (code * W2' 1) = [0.5, 2] and [1, -1]; their correlation is -1, eigenvalues 0 and 2
    k = proxies.JACOB_K
    assert scores.jacob_cov == pytest.approx(-(math.log(k) + 1 / k + math.log(2 + k) + 1 / (2 + k)), rel=1e-9)


# zero-cost-nas (SamsungLabs, commit a43bfbc) on the CNN of tools/zero_cost_nas_check.py, float64: its measures
# summed as its find_measures does (`python tools/zero_cost_nas_check.py <checkout>` prints both codes' values)
ZERO_COST_NAS = {"synflow": 61.853744658595176, "snip": 0.5201028071630013, "grad_norm": 0.6207973870062439,
                 "fisher": 0.022677505388855934, "jacob_cov": -8.59054943462515}


def test_agrees_with_zero_cost_nas_on_a_small_cnn():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "tools" / "zero_cost_nas_check.py"
    spec = importlib.util.spec_from_file_location("zero_cost_nas_check", path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    mine = check.ours(list(ZERO_COST_NAS))
    for name, value in ZERO_COST_NAS.items():
        assert mine[name] == pytest.approx(value, rel=1e-7), name


def test_size_proxies_by_hand():
    net = two_layer()
    assert proxies.n_params(net) == 10                      # W1, W2 and the head's bias
    assert proxies.macs(net, batch()[0]) == 8               # two 2x2 products per input


def test_score_returns_every_proxy_and_refuses_unknown():
    out = proxies.score(two_layer(), *batch())
    assert list(out) == list(proxies.NAMES)
    assert out["naswot"]["value"] == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="unknown proxies"):
        proxies.score(two_layer(), *batch(), names=("naswot", "zen"))


# depth: conv layers on every path to the features, plus the head; None where the features average several depths
@pytest.mark.parametrize("name, depth", [("7x96", 2), ("temporal", 2), ("timbral_time", 2), ("sample_level", None), ("vgg", None)])
def test_invariants_on_real_frontends(name, depth, frontend_configs, example_inputs):
    from elmarc.frontends import build_frontend
    fe = build_frontend(frontend_configs[name], "small", seed=0)
    fe.requires_grad_(True)                 # as the train stage's model (the random front-end is built frozen)
    head = nn.Linear(fe.feature_dim, 3)
    nn.init.zeros_(head.bias)               # as the train stage's head
    net = ProxyNet(fe, head)
    x = example_inputs[fe.input_kind]
    K, units = proxies.naswot_kernel(net, x)
    assert units > 0
    np.testing.assert_array_equal(np.diag(K.numpy()), units)        # each input agrees with itself on every unit
    # the linearised network is positively homogeneous of degree 1 in each layer's weights (relu, max and mean
    # pools, zero padding, ELU on positive inputs), so by Euler's theorem the synflow of every layer (or of the
    # parallel branches that make one layer) equals R: the head's is R, and the whole is R times the depth
    per_weight, total = proxies.synflow_per_weight(net, x)
    assert total > 0
    assert per_weight[-1] == pytest.approx(total, rel=1e-9)
    if depth is not None:
        assert sum(per_weight) == pytest.approx(depth * total, rel=1e-9)
    assert proxies.n_params(net) == sum(p.numel() for p in fe.parameters()) + fe.feature_dim * 3 + 3


# ----------------------------------------------------------------------------- the stage
def test_proxies_stage_scores_every_fold_without_training_and_caches(tmp_path):
    import pandas as pd

    from helpers import TINY, run_job

    cache = tmp_path / "cache"
    job = [*TINY, "dataset.n_per_class=10", "recipe=tiny", "frontend=temporal", "input.n_frames=344",
           "stage='all,proxies'", "proxies.batch_size=8"]
    run_job(job, tmp_path / "a", cache)
    scores = pd.read_csv(tmp_path / "a" / "scores.csv", dtype={"fold": str})
    assert len(scores) == 3 * len(proxies.NAMES) and set(scores.fold) == {"0", "1", "2"}
    assert set(scores.predictor) == set(proxies.NAMES) and scores.batch.eq(8).all()
    assert scores.score.notna().all() and (scores.seconds >= 0).all()
    # size proxies do not depend on the fold; the data-dependent ones do (another minibatch per fold)
    by = scores.pivot(index="fold", columns="predictor", values="score")
    assert by["params"].nunique() == 1 and by["flops"].nunique() == 1 and by["snip"].nunique() == 3
    assert not list((cache / "trained").rglob("*.ckpt"))                        # nothing was trained
    stored = next((cache / "proxies").rglob("scores.json"))
    mtime = stored.stat().st_mtime_ns
    run_job(job, tmp_path / "b", cache)                                         # read, not scored again
    again = pd.read_csv(tmp_path / "b" / "scores.csv", dtype={"fold": str})
    pd.testing.assert_frame_equal(again, scores)
    assert stored.stat().st_mtime_ns == mtime


def test_unknown_proxy_name_fails_before_any_work(tmp_path):
    from elmarc.errors import UserError

    from helpers import TINY, run_job

    with pytest.raises(UserError, match=r"proxies.names=\['naswot', 'zen'\]: unknown \['zen'\]"):
        run_job([*TINY, "stage='all,proxies'", "proxies.names=[naswot,zen]"], tmp_path / "a", tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))
