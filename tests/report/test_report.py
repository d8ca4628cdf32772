"""The t-test table on fabricated result rows equals values computed independently."""
import math

import numpy as np
import pandas as pd
import pytest

from elmarc.report import write_report
from elmarc.report.stats import fold_accuracies, run_accuracies, summarise
from elmarc.results import result_row, rows_table


def row(dataset, frontend, width, **fields) -> dict:
    """A result row as the classify stage writes it; fields not given take a plain grid row's values."""
    defaults = {"classifier": "svm", "protocol": "paper", "standardize": False, "seed": 0, "seeded": True, "fold": "0",
                "setting": "{}", "accuracy": 0.5, "selection_score": "", "n_train": 400, "n_test": 100, "n_skipped": 0,
                "grid_seconds": 0.0, "feature_key": "k"}
    return result_row({"dataset": dataset, "frontend": frontend, "width": width}, **{**defaults, **fields})


def student_t_p(a, b):
    """Two-sided Student t-test from the textbook formulas (scipy only for the t CDF)."""
    from scipy.special import stdtr

    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    t = (a.mean() - b.mean()) / math.sqrt(sp2 * (1 / na + 1 / nb))
    return 2 * stdtr(na + nb - 2, -abs(t))


def fabricated_rows():
    per_seed = {"vgg": [0.60, 0.62, 0.61], "timbral": [0.59, 0.63, 0.60], "7x96": [0.45, 0.46, 0.44],
                "mfcc": [0.53, 0.53, 0.53]}
    rows = []
    for fe, accs in per_seed.items():
        for seed, acc in enumerate(accs):
            for fold, delta in enumerate((-0.01, 0.0, 0.01)):        # fold mean = acc
                rows.append(row("gtzan", fe, "large", seed=seed, fold=str(fold), accuracy=acc + delta,
                                on_grid_edge=fold == 0))
    return rows_table(rows), per_seed


def test_summary_matches_independent_ttests():
    rows, per_seed = fabricated_rows()
    s = summarise(run_accuracies(rows)).set_index("frontend")
    assert s.loc["vgg", "best"]
    for fe, accs in per_seed.items():
        assert s.loc[fe, "mean"] == pytest.approx(np.mean(accs))
        assert s.loc[fe, "std"] == pytest.approx(np.std(accs, ddof=1))
        if fe != "vgg":
            assert s.loc[fe, "p_vs_best"] == pytest.approx(student_t_p(per_seed["vgg"], accs), rel=1e-9)
    assert s.loc["timbral", "tied_with_best"] and not s.loc["7x96", "tied_with_best"]
    assert not s.loc["mfcc", "tied_with_best"]
    assert s.loc["vgg", "on_grid_edge"] == pytest.approx(1 / 3)


def test_report_files_and_paper_column(tmp_path):
    rows, _ = fabricated_rows()
    job = tmp_path / "0"
    job.mkdir()
    rows.to_csv(job / "results.csv", index=False)
    (job / "status.json").write_text('{"status": "ok", "overrides": ["frontend=vgg"]}')
    failed = tmp_path / "1"
    failed.mkdir()
    (failed / "status.json").write_text('{"status": "failed", "overrides": ["frontend=bad"], "error": "ValueError: boom"}')
    write_report(tmp_path, print_summary=False)
    text = (tmp_path / "report.md").read_text()
    assert "| **vgg** | 61.00 ± 1.00 | " in text and "| 3 | " in text
    assert "| 59.6 | +1.40 |" in text                      # the paper's GTZAN VGG SVM figure, and ours - paper
    assert "frontend=bad" in text and "ValueError: boom" in text
    assert (tmp_path / "plot_gtzan_large_paper_raw.png").is_file()
    assert len(pd.read_csv(tmp_path / "results.csv")) == len(rows)
    assert "pairwise p-values (the paper's t-test over seeds)" in text


def test_one_seed_has_no_table_of_empty_pairwise_p_values(tmp_path):
    rows, _ = fabricated_rows()
    job = tmp_path / "0"
    job.mkdir()
    rows[rows.seed == 0].to_csv(job / "results.csv", index=False)
    (job / "status.json").write_text('{"status": "ok", "overrides": ["frontend=vgg"]}')
    write_report(tmp_path, print_summary=False)
    text = (tmp_path / "report.md").read_text()
    assert "| **vgg** | 60.00 ± n/a | " in text and "pairwise p-values" not in text


def test_a_seed_free_run_is_counted_once_and_tested_as_one_value():
    """MFCC + SVM rows come once per job of a seed sweep, all equal, marked seeded=False: one run."""
    from scipy import stats

    rows, per_seed = fabricated_rows()
    rows["seeded"] = rows.frontend != "mfcc"
    s = summarise(run_accuracies(rows)).set_index("frontend")
    assert s.loc["mfcc", "n_seeds"] == 1 and np.isnan(s.loc["mfcc", "std"])
    assert s.loc["mfcc", "mean"] == pytest.approx(0.53)
    # the best front-end's three seeds against MFCC's one value: a one-sample t-test, not a zero-variance sample
    expected = stats.ttest_1samp(per_seed["vgg"], 0.53).pvalue
    assert s.loc["mfcc", "p_vs_best"] == pytest.approx(expected, rel=1e-9)
    assert s.loc["vgg", "n_seeds"] == 3
    # rows of other seeds of a seed-free run are dropped, not averaged in
    assert len(run_accuracies(rows).query("frontend == 'mfcc'")) == 1


def test_corrected_ttest_equals_a_hand_computation():
    """k = 3 folds x r = 2 seeds; n_test / n_train = 1/2 (3 folds)."""
    from elmarc.report.stats import corrected_interval, corrected_ttest

    d = np.array([0.02, 0.01, 0.03, -0.01, 0.02, 0.00])
    # by hand: mean = 0.07 / 6 = 0.0116667; squared deviations sum to 0.0010833; s^2 = 0.0010833 / 5 = 0.00021667
    # corrected variance = (1/6 + 1/2) * 0.00021667 = 0.00014444; t = 0.0116667 / 0.0120185 = 0.97073 on 5 df
    mean, s2 = 0.07 / 6, 0.0010833333333333333 / 5
    t = mean / math.sqrt((1 / 6 + 1 / 2) * s2)
    assert t == pytest.approx(0.97073, abs=1e-4)
    from scipy.special import stdtr

    assert corrected_ttest(d, 0.5) == pytest.approx(2 * stdtr(5, -t), rel=1e-9)
    assert corrected_ttest(d, 0.5) == pytest.approx(0.3763, abs=1e-3)
    low, high = corrected_interval(d, 0.5)
    half = 2.570582 * math.sqrt((1 / 6 + 1 / 2) * s2)                 # t(0.975, 5) = 2.570582
    assert (low, high) == (pytest.approx(mean - half, abs=1e-6), pytest.approx(mean + half, abs=1e-6))


def test_holm_adjustment_known_answer():
    from statsmodels.stats.multitest import multipletests

    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(1 x 0.04, 0.06) = 0.06
    np.testing.assert_allclose(multipletests([0.01, 0.04, 0.03], method="holm")[1], [0.03, 0.06, 0.06])


def test_fold_noise_is_not_called_a_difference_by_the_corrected_test():
    """Two front-ends whose accuracies differ only by fold noise (the same on every seed): the paper's
    t-test over seed means calls them different, the corrected k-fold test does not."""
    fold_diff = [0.08, -0.05, 0.06, -0.04, 0.03]
    rows = []
    for seed, jitter in enumerate((0.000, 0.001, -0.001)):
        for fold, d in enumerate(fold_diff):
            base = 0.70 + 0.02 * fold
            for fe, acc in (("a", base + d + jitter), ("b", base - jitter)):
                rows.append(row("d", fe, "small", seed=seed, fold=str(fold), accuracy=acc))
    rows = rows_table(rows)
    s = summarise(run_accuracies(rows), fold_accuracies(rows)).set_index("frontend")
    assert s.loc["a", "best"]
    assert s.loc["b", "p_vs_best"] < 0.01                       # the paper's test: "significant"
    assert s.loc["b", "p_protocol"] > 0.3                 # the corrected test: fold noise
    assert s.loc["b", "tied_with_best"]                         # and it decides the bold mark
    assert s.loc["a", "ci_low"] < s.loc["b", "mean"] < s.loc["a", "ci_high"]


def test_mcnemar_known_answer_and_seed_free_pairing():
    from elmarc.report.stats import mcnemar_vs_best

    rows = []
    for i in range(30):
        best_right = i < 28                   # clips 0-27 right for the best
        other_right = i < 20 or i >= 28       # 20 both right; best only: 20-27 (8); other only: 28-29 (2)
        for fe, right in (("best", best_right), ("other", other_right)):
            rows.append({"dataset": "gtzan", "width": "large", "classifier": "svm", "protocol": "predefined",
                         "standardize": False, "frontend": fe, "clip_id": f"c{i}", "fold": "test", "seed": 0,
                         "seeded": True, "label": "x", "predicted": "x" if right else "y"})
    p = mcnemar_vs_best(pd.DataFrame(rows), "best")
    # exact two-sided binomial: 2 * P(X <= 2 | n = 10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert p["other"] == pytest.approx(112 / 1024) and p["best"] == 1.0


def test_friedman_nemenyi_known_answer():
    from elmarc.report.ranks import friedman_nemenyi

    table = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.95], "b": [0.8, 0.7, 0.6, 0.9], "c": [0.7, 0.6, 0.5, 0.85]})
    p, nemenyi, ranks = friedman_nemenyi(table)
    # rank sums 4, 8, 12 over n = 4 blocks, k = 3: chi2 = 12 / (n k (k+1)) * 224 - 3 n (k+1) = 56 - 48 = 8 -> p = exp(-4)
    assert p == pytest.approx(math.exp(-4))
    assert ranks.to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert nemenyi.loc["a", "c"] < nemenyi.loc["a", "b"] and nemenyi.shape == (3, 3)


def test_two_datasets_give_a_critical_difference_diagram(tmp_path):
    rows, _ = fabricated_rows()
    other = rows.assign(dataset="ballroom", accuracy=rows.accuracy - 0.05)
    job = tmp_path / "0"
    job.mkdir()
    pd.concat([rows, other]).to_csv(job / "results.csv", index=False)
    (job / "status.json").write_text('{"status": "ok"}')
    write_report(tmp_path, print_summary=False)
    text = (tmp_path / "report.md").read_text()
    assert (tmp_path / "cd_svm_paper_raw.png").is_file()
    assert "Friedman p = " in text and "over 2 blocks" in text and "pairs of front-ends differ significantly" in text
