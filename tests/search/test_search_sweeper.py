"""The search as a user runs it (elmarc -m hydra/sweeper=search ...): it finds the design a synthetic task was built
for, keeps its study in the sweep folder, and resumes after a kill without running a finished trial again."""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest

from helpers import ROOT, compose_cfg, run_cli

pytestmark = pytest.mark.slow
USER_CONF = ROOT / "tests" / "userconf"        # a user's config folder with its own space (space/two_designs.yaml)


def search_args(task, sweep, trials=6, compare="[]"):
    return ["-m", "--config-dir", str(USER_CONF), "hydra/sweeper=search", "space=two_designs", "dataset=synthetic",
            f"dataset.task={task}", "input.n_samples=72000", "input.n_frames=282", "extract.progress=false",
            "extract.num_workers=0", "extract.conv_forms=rule", f"hydra.sweeper.n_trials={trials}",
            "hydra.sweeper.n_startup_trials=4", f"hydra.sweeper.compare={compare}", f"hydra.sweep.dir={sweep}"]


def load(sweep):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep / "search.journal")))
    return optuna.load_study(study_name="elmarc-two_designs-svm", storage=storage)


@pytest.mark.parametrize("task, design, compare", [("rhythm", "temporal", ["temporal", "7x96"]), ("timbre", "timbral", [])])
def test_a_small_search_finds_the_design_the_task_was_built_for(tmp_path, task, design, compare):
    sweep = tmp_path / "search"
    run_cli(search_args(task, sweep, compare=f"[{','.join(compare)}]"), tmp_path / "cache")
    trials = pd.read_csv(sweep / "trials.csv", keep_default_na=False)
    assert len(trials) == 6 and set(trials["state"]) == {"complete"}
    assert set(trials["template"]) == {"temporal", "timbral"}          # both designs were tried
    best = trials.sort_values(["score", "trial"], ascending=[False, True]).iloc[0]
    assert best["template"] == design, trials[["frontend", "score"]]
    # the study in the sweep folder says the same; every score saw folds 0-2 only (3 and 4 are held out)
    study = load(sweep)
    assert study.best_value == best["score"] and study.user_attrs["definition"]["holdout_folds"] == [3, 4]
    for job in trials.loc[trials["same_as"] == "", "job_dir"]:
        rows = pd.read_csv(sweep / job / "results.csv")
        assert set(rows["fold"].astype(str)) == {"0", "1", "2"}
    # a repeated point ran no job and kept its first score
    for r in trials[trials["same_as"] != ""].itertuples():
        assert r.score == trials.set_index("trial").loc[int(r.same_as), "score"] and r.job_dir == ""
    # the best is written as a front-end config, ready for frontend= from the sweep's best/ folder
    name = best["frontend"].split("/", 1)[1]
    cfg = compose_cfg([f"hydra.searchpath=[file://{sweep / 'best'}]", f"frontend=search/{name}"])
    assert cfg.frontend.name == f"search/{name}" and cfg.frontend.model.input in ("logmel", "envelope")
    # the compared front-ends were scored as a trial is: same predictor, the same three folds
    scored = study.user_attrs.get("compare", {})
    assert sorted(scored) == sorted(compare)
    for other in compare:
        rows = pd.read_csv(sweep / f"compare-{other}" / "results.csv")
        assert set(rows["fold"].astype(str)) == {"0", "1", "2"} and scored[other]["score"] == rows["accuracy"].mean()
    text = (sweep / "search.md").read_text()
    assert ("Where the compared front-ends stand" in text) == bool(compare)
    if compare:       # the results-as-data summary: one row per kept search
        from elmarc.search.report import summary

        kept = tmp_path / "kept"
        kept.mkdir()
        (kept / "s.csv").write_bytes((sweep / "trials.csv").read_bytes())
        (kept / "s-compare.csv").write_bytes((sweep / "compare.csv").read_bytes())
        row = summary(kept).splitlines()[2].split(" | ")
        best_other = max(compare, key=lambda c: scored[c]["score"])
        assert row[4] == best["frontend"] and row[6] == best_other and float(row[5]) == round(100 * best["score"], 1)
    assert "without folds [3, 4]" in text and f"search/{name}" in text and (sweep / "trajectory.png").stat().st_size > 0


def test_a_killed_search_resumes_where_it_stopped(tmp_path):
    sweep, cache = tmp_path / "search", tmp_path / "cache"
    env = {**os.environ, "ELMARC_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elmarc.main", *search_args("rhythm", sweep, trials=4)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not (sweep / "trial-0002").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)          # trial 2 is running: it is told interrupted, its point asked again
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out[-3000:]
    # stopped inside the job: told interrupted at once; before the job's handler was in place: left running by
    # a process that is gone, which the next run tells apart from a live one
    stopped = load(sweep)
    assert stopped.user_attrs.get("interrupted", [2]) == [2] and stopped.trials[2].state.name in ("FAIL", "RUNNING")
    first = {n: (sweep / f"trial-{n:04d}" / "status.json").stat().st_mtime_ns for n in (0, 1)}

    run_cli(search_args("rhythm", sweep, trials=4), cache)
    study = load(sweep)
    trials = pd.read_csv(sweep / "trials.csv", keep_default_na=False)
    counted = trials[trials["state"] != "interrupted"]
    assert len(counted) == 4 and set(counted["state"]) == {"complete"}
    assert trials.set_index("trial").loc[2, "state"] == "interrupted"
    assert trials.set_index("trial").loc[3, "point"] == trials.set_index("trial").loc[2, "point"]   # asked again, first
    assert {n: (sweep / f"trial-{n:04d}" / "status.json").stat().st_mtime_ns for n in (0, 1)} == first  # not rerun
    assert json.loads((sweep / "trial-0003" / "status.json").read_text())["status"] == "ok"
    assert len(study.trials) == 5 and study.user_attrs["interrupted"] == [2]
    # the same command once more has nothing left to do
    run_cli(search_args("rhythm", sweep, trials=4), cache)
    assert len(load(sweep).trials) == 5


def test_two_processes_share_one_study_through_a_parallel_launcher(tmp_path):
    """Two commands on one sweep folder, each launching two trials at a time through joblib, ask distinct trials
    of one study: with the random sampler a trial's point depends only on the seed and its number, so together
    they ask exactly the points one process alone asks, and score them the same."""
    args = [*search_args("rhythm", tmp_path / "alone", trials=4), "hydra.sweeper.sampler=random"]
    run_cli(args, tmp_path / "cache")
    alone = pd.read_csv(tmp_path / "alone" / "trials.csv", keep_default_na=False).set_index("trial")
    shared = tmp_path / "shared"
    env = {**os.environ, "ELMARC_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    both = [[a if not a.startswith("hydra.sweep.dir=") else f"hydra.sweep.dir={shared}" for a in args]
            + ["hydra/launcher=local_parallel", "hydra.sweeper.n_jobs=2"] for _ in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "elmarc.main", *a], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for a in both]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    study = load(shared)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and 4 <= len(numbers) <= 6      # each may ask one batch past the budget
    together = pd.read_csv(shared / "trials.csv", keep_default_na=False).set_index("trial")
    common = alone.index.intersection(together.index)
    assert list(common) == list(range(4)) and set(together["state"]) == {"complete"}
    # the shared run's jobs were served by the first run's cache, yet the cost they report is what computing them took
    columns = ["point", "score", "compute_seconds"]
    pd.testing.assert_frame_equal(together.loc[common, columns], alone.loc[common, columns])
    assert (alone.loc[alone["same_as"] == "", "compute_seconds"] > 0).all()


def test_a_proxy_scores_the_candidates_when_named(tmp_path):
    """predictor=params: each trial's score is the parameter count of the model the proxies score, the front-end
    and its linear read-out over the 4 classes (a known answer)."""
    from elmarc.frontends import FrontendFactory
    from elmarc.search import space as spaces

    sweep = tmp_path / "search"
    run_cli([*search_args("rhythm", sweep, trials=3), "hydra.sweeper.predictor=params"], tmp_path / "cache")
    trials = pd.read_csv(sweep / "trials.csv", keep_default_na=False)
    space = spaces.check(load_space())
    shape = {"n_samples": 72000, "n_frames": 282, "n_mels": 96}
    for r in trials.itertuples():
        cfg = compose_cfg(spaces.frontend_overrides(space, r.template, json.loads(r.point)))
        model = FrontendFactory.of(cfg.frontend, "small", 0, shape).build()
        assert r.score == sum(p.numel() for p in model.parameters()) + model.feature_dim * 4 + 4
        assert r.same_as != "" or r.compute_seconds > 0       # a proxy job writes no results.csv: extraction + proxy
    overrides = json.loads((sweep / "trial-0000" / "status.json").read_text())["overrides"]
    assert {"stage='extract,proxies'", "proxies.names=[params]", "objective=params"} <= set(overrides)


def load_space():
    import yaml

    return yaml.safe_load((USER_CONF / "space" / "two_designs.yaml").read_text())
