"""The CLI end to end on a tiny synthetic configuration: report, accuracies, cache hits."""
import re

import pandas as pd

from helpers import TINY, run_cli


def test_multirun_end_to_end_then_everything_cached(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "dataset.task=timbre", "dataset.n_classes=3", "frontend=mfcc,7x96",
            "classifier=svm,elm", f"hydra.sweep.dir={sweep}"]
    first = run_cli(args, tmp_path / "cache")
    report = sweep / "report.md"
    assert report.is_file(), first.stdout
    rows = pd.read_csv(sweep / "results.csv")
    assert len(rows) == 2 * 2 * 3                          # front-ends x classifiers x folds
    assert set(rows.frontend) == {"mfcc", "7x96"} and set(rows.classifier) == {"svm", "elm"}
    assert rows.accuracy.between(0, 1).all()
    mean = rows.groupby(["frontend", "classifier"]).accuracy.mean()
    assert mean[("mfcc", "svm")] > 0.6                     # 3 timbre classes: chance is 1/3
    assert (sweep / "plot_synthetic_timbre_small_paper_raw.png").is_file()
    text = report.read_text()
    assert "mfcc" in text and "7x96" in text and "None: every job finished." in text

    second = run_cli(args + [f"hydra.sweep.dir={tmp_path / 'sweep2'}"], tmp_path / "cache")
    log = second.stdout + second.stderr
    assert log.count("nothing to extract") == 4 and log.count("nothing to fit") == 4
    assert not re.search(r"extracted \d+ clips", log)
    again = pd.read_csv(tmp_path / "sweep2" / "results.csv")
    pd.testing.assert_frame_equal(rows.drop(columns="job"), again.drop(columns="job"))


def test_single_run_prints_report(tmp_path):
    out = run_cli([*TINY, "frontend=temporal", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path / "cache")
    assert "temporal" in out.stdout and "report written to" in out.stdout
    assert (tmp_path / "run" / "report.md").is_file()
    status = (tmp_path / "run" / "status.json").read_text()
    assert '"status": "ok"' in status


def test_shared_mfcc_entry_is_labelled_with_each_jobs_width(tmp_path):
    """MFCC has no width: both widths share features and results, but each job's rows carry its own width."""
    sweep = tmp_path / "sweep"
    run_cli(["-m", *TINY, "frontend=mfcc", "features=small,large", f"hydra.sweep.dir={sweep}"], tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert sorted(rows.width.unique()) == ["large", "small"]
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 1          # one shared feature entry
    small, large = (rows[rows.width == w].sort_values("fold").accuracy.to_numpy() for w in ("small", "large"))
    assert (small == large).all()
    assert "width large" in (sweep / "report.md").read_text()
