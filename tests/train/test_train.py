"""The train stage: training learns, a killed run resumes to the same weights, and the rank agreement
between random and trained rankings (known answers, and the report section of a real sweep)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from elmarc.config import PROXY_NAMES
from elmarc.report.agreement import agreement, bootstrap_interval, rank_agreement

from helpers import ROOT, TINY, run_job, run_sweep

# 20 clips per class, 3 folds; a quarter of the paper's input length keeps the training to seconds
RHYTHM = [*TINY, "dataset.task=rhythm", "dataset.n_per_class=20", "input.n_frames=344", "recipe=tiny", "recipe.progress=false"]


def histories(cache):
    return [json.loads(p.read_text()) for p in sorted((cache / "trained").rglob("history.json"))]


@pytest.mark.slow
def test_tiny_recipe_learns_and_the_report_compares_the_rankings(tmp_path):
    cache = tmp_path / "cache"
    jobs = [[*RHYTHM, f"frontend={fe}", "stage='all,train'"] for fe in ("temporal", "7x96")]
    sweep = run_sweep(jobs, tmp_path / "sweep", cache)
    rows = pd.read_csv(sweep / "results.csv")
    for fe in ("temporal", "7x96"):
        r = rows[rows.frontend == fe]
        assert set(r.classifier) == {"svm", "svm@trained", "trained", "trained@1epoch"}
        assert (r.groupby("classifier").size() == 3).all()                         # 3 folds each
        trained = r[r.classifier == "trained"]
        assert trained.accuracy.mean() > {"temporal": 0.45, "7x96": 0.3}[fe], trained   # 4 classes: chance 0.25
        assert set(json.loads(s)["lr"] for s in trained.setting) == {0.003}
        assert (trained.grid_seconds > 0).all()
    for h in histories(cache):                                                      # every run lowered its loss
        assert min(r["train_loss"] for r in h[-3:]) < 0.9 * h[0]["train_loss"]
    # trained features: one matrix per fold, of the random features' shape
    feats = sorted((cache / "trained").rglob("features.npy"))
    assert len(feats) == 6 and np.load(feats[0]).shape[0] == 80
    report = (sweep / "report.md").read_text()
    assert "Random vs trained" in report and "random_vs_trained_synthetic_rhythm_small_paper.png" in report
    agree = pd.read_csv(sweep / "agreement.csv")
    assert set(agree.predictor) == {"svm", "svm@trained", "trained@1epoch", *PROXY_NAMES}
    assert agree.n_frontends.eq(2).all() and agree.n_units.eq(3).all()
    scores = pd.read_csv(sweep / "proxies.csv")                                     # 2 front-ends x 3 folds x 8
    assert len(scores) == 48 and scores.groupby(["frontend", "predictor"]).size().eq(3).all()
    assert "Proxy scores" in report
    # the study CSV holds every condition per fold, and the agreement made from it alone is the report's
    from elmarc.report import study
    table = study.study_rows(sweep, "two")
    assert set(table.condition) == {"svm", "svm@trained", "trained", "trained@1epoch", *PROXY_NAMES}
    assert table.groupby(["frontend", "condition"]).size().eq(3).all() and (table.seconds >= 0).all()
    path = study.write_csv(table, tmp_path / "study" / "synthetic-two.csv", "the command")
    assert path.read_text().startswith("# the command\n")
    from_csv = study.agreement_table(study.read_csv(path)).set_index("predictor")
    np.testing.assert_allclose(from_csv.loc[agree.predictor, "tau"], agree.tau)
    assert np.allclose(agree.rho.abs(), 1.0)                                        # two front-ends: +-1
    fronts = pd.read_csv(sweep / "random_vs_trained.csv")
    assert (fronts.training_seconds > 0).all() and (fronts.random_seconds > 0).all()
    assert (sweep / "random_vs_trained_synthetic_rhythm_small_paper.png").stat().st_size > 5000
    assert (sweep / "agreement_synthetic_rhythm_small_paper.png").stat().st_size > 5000
    # a second run reads every fold from the checkpoints: the same rows, nothing trained again
    before = {p: p.stat().st_mtime_ns for p in (cache / "trained").rglob("best.ckpt")}
    again = run_sweep(jobs, tmp_path / "sweep2", cache)
    pd.testing.assert_frame_equal(pd.read_csv(again / "results.csv").drop(columns="job"), rows.drop(columns="job"))
    assert before == {p: p.stat().st_mtime_ns for p in (cache / "trained").rglob("best.ckpt")}


def test_mfcc_has_nothing_to_train(tmp_path):
    from elmarc.errors import UserError

    with pytest.raises(UserError, match="no weights to train"):
        run_job([*RHYTHM, "frontend=mfcc", "stage='extract,train'"], tmp_path / "r", tmp_path / "cache")


KILLED = [*RHYTHM, "frontend=temporal", "dataset.n_folds=2", "recipe.max_epochs=8", "recipe.patience=8",
          "stage='extract,train'"]


def final_weights(cache):
    out = {}
    for p in sorted((cache / "trained").rglob("*.ckpt")):
        state = torch.load(p, map_location="cpu", weights_only=False)["state_dict"]
        out[p.relative_to(cache / "trained" / p.relative_to(cache / "trained").parts[0])] = state
    return out


@pytest.mark.slow
def test_sigkill_during_training_then_rerun_gives_the_same_weights(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "ELMARC_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elmarc.main", *KILLED, f"hydra.run.dir={tmp_path / 'r1'}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [h for h in histories(cache) if len(h) >= 3] if (cache / "trained").exists() else []
        if done and list((cache / "trained").rglob("last.ckpt")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((cache / "trained").rglob("fold0/done.json")), "training finished before it could be killed"
    first = histories(cache)[0]
    assert 3 <= len(first) < 8
    run_job(KILLED, tmp_path / "r2", cache)                            # resumes from last.ckpt
    # uninterrupted reference, in this process, its inputs made again at every use instead of kept in memory
    run_job([*KILLED, "recipe.input_memory_mib=0"], tmp_path / "r3", tmp_path / "clean")
    resumed, clean = final_weights(cache), final_weights(tmp_path / "clean")
    assert resumed.keys() == clean.keys() and len(clean) == 4          # 2 folds x (best, last)
    for name in clean:
        for k in clean[name]:
            assert torch.equal(resumed[name][k], clean[name][k]), (name, k)
    a = pd.read_csv(tmp_path / "r2" / "results.csv")
    b = pd.read_csv(tmp_path / "r3" / "results.csv")
    assert a.accuracy.tolist() == b.accuracy.tolist()
    assert [len(h) for h in histories(cache)] == [len(h) for h in histories(tmp_path / "clean")]


def test_kept_inputs_are_the_made_ones_within_the_budget():
    from elmarc.train.data import KeptInputs

    class Made:
        source, calls = None, 0

        def __len__(self):
            return 5

        def __getitem__(self, i):
            Made.calls += 1
            return i, torch.full((10, 4), float(i)), ""        # 160 bytes each

    kept = KeptInputs(Made(), budget_mib=400 / 2 ** 20)         # room for two inputs
    for _ in range(2):
        for i in range(5):
            j, x, reason = kept[i]
            assert j == i and reason == "" and torch.equal(x, torch.full((10, 4), float(i)))
    assert sorted(kept.kept) == [0, 1] and kept.used == 320
    assert Made.calls == 5 + 3                                  # the second pass made only the three not kept


# ----------------------------------------------------------------------------- rank agreement
def test_rank_agreement_known_answers():
    assert rank_agreement([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.9]) == (1.0, 1.0)
    assert rank_agreement([0.1, 0.2, 0.3, 0.4], [0.9, 0.7, 0.6, 0.5]) == (-1.0, -1.0)
    rho, tau = rank_agreement([1, 2, 3, 4], [1, 3, 2, 4])                # one adjacent swap
    assert rho == pytest.approx(0.8) and tau == pytest.approx(4 / 6)
    assert all(np.isnan(rank_agreement([1, 1, 1], [1, 2, 3])))          # no ranking, no correlation
    units = np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 0.8]])
    (rlo, rhi), (tlo, thi) = bootstrap_interval(units, units + 0.05, n_resamples=200)
    assert (rlo, rhi, tlo, thi) == (1.0, 1.0, 1.0, 1.0)


def fake_rows(random_order, trained_order, n_folds=5):
    """Rows of 4 front-ends: accuracies ordered as given, with fold noise that never changes the order."""
    rng = np.random.default_rng(0)
    rows = []
    fes = ["a", "b", "c", "d"]
    for name, order in (("svm", random_order), ("trained", trained_order)):
        for fe, rank in zip(fes, order):
            for fold in range(n_folds):
                rows.append({"dataset": "x", "width": "small", "protocol": "paper", "standardize": False, "seed": 0,
                             "fold": str(fold), "frontend": fe, "classifier": name,
                             "accuracy": 0.2 * rank + 0.01 * rng.random(), "grid_seconds": 1.0})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_agreement_of_perfect_and_reversed_rankings():
    same = agreement(fake_rows([1, 2, 3, 4], [1, 2, 3, 4])).iloc[0]
    assert (same.rho, same.tau, same.same_winner, same.winner_in_trained_top3) == (1.0, 1.0, True, True)
    assert (same.rho_low, same.rho_high) == (1.0, 1.0) and same.n_units == 5 and same.n_frontends == 4
    rev = agreement(fake_rows([4, 3, 2, 1], [1, 2, 3, 4])).iloc[0]
    assert (rev.rho, rev.tau, rev.same_winner, rev.winner_in_trained_top3) == (-1.0, -1.0, False, False)
    assert (rev.predictor_winner, rev.trained_winner) == ("a", "d")
    near = agreement(fake_rows([1, 2, 4, 3], [1, 2, 3, 4])).iloc[0]          # winner 2nd in trained: top 3
    assert near.rho == pytest.approx(0.8) and not near.same_winner and near.winner_in_trained_top3
    # a proxy's scores rank beside the classifiers: one per (seed, fold), its own scale, a non-finite one missing
    rows = fake_rows([1, 2, 3, 4], [1, 2, 3, 4])
    units = rows[rows.classifier == "trained"][["dataset", "width", "protocol", "seed", "fold", "frontend", "accuracy"]]
    scores = units.assign(predictor="params", score=-1e6 * units.accuracy, seconds=0.1).drop(columns="accuracy")
    scores.loc[scores.index[0], "score"] = float("-inf")
    by = agreement(rows, scores).set_index("predictor")
    assert list(by.index) == ["svm", "params"]
    assert (by.loc["params", "tau"], by.loc["params", "predictor_winner"], by.loc["params", "n_units"]) == (-1.0, "a", 4)


def test_the_bootstraps_vectorised_rank_agreement_is_scipys_per_draw():
    """Rows with ties, constant rows (no rank correlation: NaN) and two front-ends, each against scipy's."""
    from scipy import stats

    from elmarc.report.agreement import rank_agreements
    rng = np.random.default_rng(0)
    for n in (2, 3, 10):
        a = np.vstack([rng.integers(0, 4, (40, n)) / 4, rng.random((40, n)), np.full((1, n), 0.5)])
        b = np.vstack([rng.integers(0, 3, (81, n)) / 3])
        got = rank_agreements(a, b)
        want = np.array([(stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic)
                         if np.ptp(x) > 0 and np.ptp(y) > 0 else (np.nan, np.nan) for x, y in zip(a, b)])
        assert np.isnan(got[-1]).all() and np.array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.allclose(rank_agreements([[1, 2, 3, 4]], [[4, 3, 2, 1]]), [[-1, -1]])


def test_a_crafted_checkpoint_never_runs_its_payload(tmp_path):
    """Checkpoints are read as tensors and plain values only: a pickle that would run code is refused."""
    import pickle

    from elmarc.train.trainer import load_checkpoint

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    crafted = tmp_path / "best.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": {}, "x": Payload()}))
    with pytest.raises(Exception, match="(?i)weights only|unpickl"):
        load_checkpoint(crafted)
    assert not marker.exists()
    import pathlib

    package = pathlib.Path(__file__).resolve().parents[2] / "elmarc"
    assert not [p for p in package.rglob("*.py") if "weights_only=False" in p.read_text()]


@pytest.mark.slow
def test_train_folds_trains_only_those_and_a_full_job_reuses_them(tmp_path):
    """train_folds=[1]: one outer fold trained (a search's confirmation needs only its held-out folds); a job on
    every fold afterwards trains the others and reads fold 1's runs as they are."""
    cache = tmp_path / "cache"
    quick = [*KILLED, "recipe.max_epochs=2", "recipe.patience=2"]
    few = [*quick, "train_folds=[1]"]
    run_job(few, tmp_path / "few", cache)
    rows = pd.read_csv(tmp_path / "few" / "results.csv")
    trained = rows[rows.classifier.isin(["trained", "trained@1epoch"])]
    assert set(trained.fold.astype(str)) == {"1"} and not rows.classifier.str.endswith("@trained").any()
    (fold1,) = list((cache / "trained").rglob("fold1/done.json"))
    assert not list((cache / "trained").rglob("fold0/done.json"))
    stamp = fold1.stat().st_mtime_ns
    run_job(quick, tmp_path / "all", cache)
    full = pd.read_csv(tmp_path / "all" / "results.csv")
    assert set(full.loc[full.classifier == "trained", "fold"].astype(str)) == {"0", "1"}
    assert full.classifier.str.endswith("@trained").any() and fold1.stat().st_mtime_ns == stamp
    one = lambda t: t[(t.classifier == "trained") & (t.fold.astype(str) == "1")].accuracy.tolist()
    assert one(full) == one(rows)
