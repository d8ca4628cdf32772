"""The study: seeds, the report over a sweep, parallel launchers, failed jobs."""
import pandas as pd
import pytest

from elmarc.report.__main__ import main as report_main

from helpers import TINY, grid, run_cli, run_sweep


# Every launcher of conf/hydra/launcher with its defaults and the extraction's (DataLoader workers in a
# decode pass, threads from the job's share of the cores), on a fresh cache. submitit starts a process
# per job (each importing torch): two jobs show it as well as four.
@pytest.mark.slow
@pytest.mark.parametrize("launcher,seeds", [pytest.param("local_parallel", [0, 1], id="local_parallel"),
                                            pytest.param("local_submitit", [0], id="local_submitit")])
def test_sweep_through_parallel_launcher_with_report(tmp_path, launcher, seeds):
    sweep = tmp_path / "sweep"
    defaults = [o for o in TINY if not o.startswith("extract.num_workers")]
    run_cli(["-m", *defaults, f"hydra/launcher={launcher}", "frontend=mfcc,temporal",
             "classifier=svm", f"seed={','.join(map(str, seeds))}", f"hydra.sweep.dir={sweep}"], tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert sorted(rows.groupby(["frontend", "seed"]).size().index.tolist()) == [
        (fe, s) for fe in ("mfcc", "temporal") for s in seeds]
    assert (sweep / "report.md").is_file() and "every job finished" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_three_seeds_both_classifiers_report_and_plots(tmp_path):
    jobs = [[*TINY, *j] for j in grid(frontend=["7x96", "temporal"], classifier=["svm", "elm"], seed=[0, 1, 2])]
    sweep = run_sweep(jobs, tmp_path / "sweep", tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert len(rows) == 2 * 2 * 3 * 3                  # front-ends x classifiers x seeds x folds
    # CNN weights and ELM weights differ per seed: features and accuracies are not all equal
    per_seed = rows.groupby(["frontend", "classifier", "seed"]).accuracy.mean().unstack("seed")
    assert (per_seed.nunique(axis=1) > 1).any()
    # the data splits do not depend on the seed
    folds = [pd.read_csv(p).fold.tolist() for p in sorted(sweep.glob("*/clips.csv"))]
    assert len(folds) == 12 and all(f == folds[0] for f in folds)
    summary = pd.read_csv(sweep / "summary.csv")
    assert set(summary.n_seeds) == {3} and summary.p_vs_best.between(0, 1).all()
    text = (sweep / "report.md").read_text()
    assert "pairwise p-values" in text and "± " in text
    assert (sweep / "plot_synthetic_rhythm_small_paper_raw.png").is_file()
    # confusion matrices and per-class accuracy of the selected settings, folds and seeds pooled
    assert (sweep / "confusion_synthetic_rhythm_small_svm_paper_raw_7x96.png").is_file()
    per_class = pd.read_csv(sweep / "per_class_synthetic_rhythm_small_elm_paper_raw.csv")
    assert set(per_class.frontend) == {"7x96", "temporal"} and (per_class.n == 6 * 3).all()   # 6 clips a class x 3 seeds
    assert (per_class.accuracy == per_class.correct / per_class.n).all()


def test_failed_job_listed_by_standalone_report(tmp_path):
    sweep, failures = run_sweep([[*TINY, "frontend=mfcc", f"input.n_mels={n}"] for n in (0, 96)],
                                tmp_path / "sweep", tmp_path / "cache", report=False)
    assert [i for i, _ in failures] == [0]
    assert report_main([str(sweep)]) == 0               # python -m elmarc.report <sweep>
    text = (sweep / "report.md").read_text()
    assert "input.n_mels" in text and "failed" in text
    assert "mfcc" in text
