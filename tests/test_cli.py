"""The CLI end to end: a multirun with its report, cache hits, single runs, stage=report alone, errors."""
import re
import sys

import pandas as pd
import pytest

from elmarc.errors import UserError

from helpers import TINY, grid, log_text, run_cli, run_job, run_sweep

SWEEP = ["dataset.task=timbre", "dataset.n_classes=3"]


@pytest.mark.slow
def test_multirun_end_to_end_then_everything_cached(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    first = run_cli(["-m", *TINY, *SWEEP, "frontend=mfcc,7x96", "classifier=svm,elm", f"hydra.sweep.dir={sweep}"],
                    tmp_path / "cache")
    report = sweep / "report.md"                           # written by the Hydra callback at the end of the sweep
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

    caplog.set_level("INFO")
    jobs = [[*TINY, *SWEEP, *j] for j in grid(frontend=["mfcc", "7x96"], classifier=["svm", "elm"])]
    run_sweep(jobs, tmp_path / "sweep2", tmp_path / "cache")
    log = log_text(caplog)
    assert log.count("nothing to extract") == 4 and log.count("nothing to fit") == 4
    assert not re.search(r"extracted \d+ clips", log)
    again = pd.read_csv(tmp_path / "sweep2" / "results.csv")
    key = ["frontend", "classifier", "fold"]
    pd.testing.assert_frame_equal(rows.drop(columns="job").sort_values(key).reset_index(drop=True),
                                  again.drop(columns="job").sort_values(key).reset_index(drop=True))


def test_single_run_prints_report(tmp_path, capsys):
    run_job([*TINY, "frontend=temporal"], tmp_path / "run", tmp_path / "cache")
    out = capsys.readouterr().out
    assert "temporal" in out and "report written to" in out
    assert (tmp_path / "run" / "report.md").is_file()
    assert '"status": "ok"' in (tmp_path / "run" / "status.json").read_text()


def test_shared_mfcc_entry_is_labelled_with_each_jobs_width(tmp_path):
    """MFCC has no width: both widths share features and results, but each job's rows carry its own width."""
    sweep = run_sweep([[*TINY, "frontend=mfcc", f"features={w}"] for w in ("small", "large")],
                      tmp_path / "sweep", tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert sorted(rows.width.unique()) == ["large", "small"]
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 1          # one shared feature entry
    small, large = (rows[rows.width == w].sort_values("fold").accuracy.to_numpy() for w in ("small", "large"))
    assert (small == large).all()
    assert "width large" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_weightless_frontend_with_svm_is_fitted_once_and_counted_once(tmp_path, caplog):
    caplog.set_level("INFO")
    sweep = run_sweep([[*TINY, f"frontend={f}", f"classifier={c}", f"seed={s}"]
                       for f in ("mfcc", "7x96") for c in ("svm", "elm") for s in (0, 1, 2)],
                      tmp_path / "sweep", tmp_path / "cache")
    log = log_text(caplog)
    assert log.count("classification cached") == 2        # mfcc + svm: seeds 1 and 2 read seed 0's rows
    assert len(re.findall(r"^mfcc svm paper: accuracy", log, flags=re.M)) == 1
    rows = pd.read_csv(sweep / "results.csv")
    assert not rows[(rows.frontend == "mfcc") & (rows.classifier == "svm")].seeded.any()
    assert rows[(rows.frontend == "mfcc") & (rows.classifier == "elm")].seeded.all()     # the ELM has weights
    assert rows[rows.frontend == "7x96"].seeded.all()
    summary = pd.read_csv(sweep / "summary.csv").set_index(["frontend", "classifier"])
    assert summary.loc[("mfcc", "svm"), "n_seeds"] == 1
    assert summary.loc[("mfcc", "elm"), "n_seeds"] == 3 and summary.loc[("7x96", "svm"), "n_seeds"] == 3


def test_stage_report_alone_reads_the_cached_rows(tmp_path):
    job = [*TINY, "frontend=temporal", "classifier=elm"]
    with pytest.raises(UserError, match="run the classify stage first"):
        run_job([*job, "stage=report"], tmp_path / "early", tmp_path / "cache")
    run_job(job, tmp_path / "full", tmp_path / "cache")
    run_job([*job, "stage=report"], tmp_path / "report_only", tmp_path / "cache")
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in ("full", "report_only"))
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "report_only" / "report.md").read_text().count("temporal") >= 1


@pytest.mark.slow
def test_svm_wide_rows_are_not_pooled_with_the_paper_grid(tmp_path):
    sweep = run_sweep([[*TINY, "frontend=temporal", f"classifier={c}"] for c in ("svm", "svm_wide")],
                      tmp_path / "sweep", tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert sorted(rows.classifier.unique()) == ["svm", "svm_wide"]
    assert "SVM_WIDE" in (sweep / "report.md").read_text()


def _main_with(monkeypatch, tmp_path, error):
    """elmarc.main.main() in this process, its job raising `error`; returns (exit code, stderr)."""
    from elmarc import main as entry

    def boom(cfg, out_dir, *args, **kwargs):
        raise error

    monkeypatch.setattr("elmarc.pipeline.run_job", boom)
    monkeypatch.setattr(sys, "argv", ["elmarc", f"hydra.run.dir={tmp_path / 'r'}"])
    with pytest.raises(SystemExit) as ended:
        entry.main()
    return ended.value.code


def test_only_user_mistakes_get_the_one_line_message(tmp_path, monkeypatch, capsys):
    assert _main_with(monkeypatch, tmp_path, UserError("dataset.root is wrong: fix it")) == 2
    err = capsys.readouterr().err
    assert "elmarc: error: dataset.root is wrong: fix it" in err and "Traceback" not in err
    # a bug keeps its traceback (Hydra prints it) and is not dressed up as a user mistake
    assert _main_with(monkeypatch, tmp_path, ValueError("a bug deep inside")) == 1
    err = capsys.readouterr().err
    assert "elmarc: error" not in err and "Traceback" in err and "a bug deep inside" in err


@pytest.mark.parametrize("classifier,protocol", [("svm", "paper"), ("elm", "nested")])
def test_every_reported_fit_has_per_clip_predictions(tmp_path, classifier, protocol):
    run_job([*TINY, "frontend=temporal", f"classifier={classifier}", f"protocol={protocol}", "seed=2"],
            tmp_path / "run", tmp_path / "cache")
    rows = pd.read_csv(tmp_path / "run" / "results.csv", dtype={"fold": str})
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"fold": str, "clip_id": str})
    clips = pd.read_csv(tmp_path / "run" / "clips.csv", dtype={"clip_id": str})
    assert sorted(preds.clip_id) == sorted(clips.clip_id)                 # k folds: every clip tested once
    assert set(preds.seed) == {2} and set(preds.fold) == set(rows.fold)
    truth = dict(zip(clips.clip_id, clips.label))
    assert (preds.label == preds.clip_id.map(truth)).all()
    for fold, p in preds.groupby("fold"):
        accuracy = rows.loc[rows.fold == fold, "accuracy"].item()
        assert (p.label == p.predicted).mean() == pytest.approx(accuracy)
    # served from the cache too (stage=report alone), with this job's seed
    run_job([*TINY, "frontend=temporal", f"classifier={classifier}", f"protocol={protocol}", "seed=2", "stage=report"],
            tmp_path / "again", tmp_path / "cache")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "predictions.csv", dtype={"fold": str, "clip_id": str}), preds)
