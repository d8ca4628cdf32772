"""Same command, same machine, same bytes: whatever the load, the concurrency, classify.n_jobs, the launcher
and the cache's state; and a cache key that names exactly what was computed from exactly which input."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from elmarc.cache import main as verify_main
from elmarc.entry import CacheEntry
from elmarc.storage import npy_bytes

import fixtures
from fixtures import ill_conditioned
from helpers import ROOT, TINY, compose_cfg, log_text, run_job, run_sweep

TIMINGS = ["grid_seconds", "extract_seconds"]


def rows_of(folder):
    return pd.read_csv(folder / "results.csv").drop(columns=TIMINGS)


def features_of(cache):
    return {p.parent.name: p.read_bytes() for p in sorted((cache / "features").glob("*/features.npy"))}


# ----------------------------------------------------------------------------- one entry, one implementation
def test_an_entry_is_locked_finished_checked_set_aside_and_cleaned(tmp_path, caplog):
    entry = CacheEntry.keyed(tmp_path / "kind", "../x y", {"a": 1})
    assert entry.root.parent == tmp_path / "kind" and entry.root.name.startswith("_x_y-")   # a name never leaves its folder
    with entry.lock():
        entry.begin()
        entry.write_text("payload.csv", "a,b\n1,2\n")
        (entry.root / ".payload.csv.k3j.tmp").write_bytes(b"half")           # a writer killed mid-write
    caplog.set_level("INFO")
    with entry.lock():                                                       # the next holder cleans up
        assert not (entry.root / ".payload.csv.k3j.tmp").exists()
        entry.finish(["payload.csv"], n=1)
    assert "payload.csv.k3j.tmp, left by a writer that was stopped" in log_text(caplog)
    assert entry.read() == {"n": 1, "files": entry.info()["files"]} and not entry.problems()
    (entry.root / "payload.csv").write_text("a,b\n1,3\n")                    # same size, other bytes
    assert CacheEntry(entry.root).problems() == ["payload.csv does not match its checksum (changed on disk)"]
    assert entry.read() is None                                              # set aside, never read
    (aside,) = entry.root.glob("damaged-*")
    assert {p.name for p in aside.iterdir()} == {"payload.csv", "done.json"}
    with pytest.raises(Exception, match="holds another spec"):
        CacheEntry(entry.root, {"a": 2}).begin()


def test_verify_sees_every_kind_of_entry_and_what_killed_writers_left(tmp_path, capsys):
    run_job([*TINY, "frontend=7x96", "classifier=elm"], tmp_path / "a", tmp_path / "cache")
    cache = tmp_path / "cache"
    runs = CacheEntry(cache / "trained" / "x-budget-0123")                   # a training entry and one fold in it
    fold = CacheEntry(runs.root / "fold0")
    fold.write_text("trained.csv", "clip_id,predicted\n")
    fold.finish(["trained.csv"])
    assert verify_main([str(cache)]) == 0
    assert "5 entries checked, all intact" in capsys.readouterr().out        # audio, features, rows, training + fold
    (audio,) = (cache / "audio").iterdir()
    (audio / ".c0000000-0000023.npy.a1b2.tmp").write_bytes(b"\0" * 1000)
    (fold.root / "trained.csv").write_text("clip_id,predicted\nx,y\n")
    assert verify_main(["--verify", str(cache)]) == 1
    out = capsys.readouterr().out
    assert ".c0000000-0000023.npy.a1b2.tmp was left by a stopped writer" in out
    assert "trained.csv has" in out and "computed again" in out
    with CacheEntry(audio).lock():                                          # the next job to use it removes it
        pass
    assert not list(audio.glob(".*.tmp"))


# ----------------------------------------------------------------------------- the classifier stage
def test_svm_fits_in_threads_give_the_serial_answers():
    """A stopped SMO is read from the fit, not from a warning caught in a thread (catch_warnings is not
    thread-safe): fitting the Cs in 4 threads gives the serial fits' decisions, again and again."""
    from elmarc.classify import SVMGrid
    from elmarc.classify.splits import Split

    X, y = ill_conditioned(n=120)
    splits = [Split(f"s{k}", np.flatnonzero(np.arange(120) % 4 != k), np.flatnonzero(np.arange(120) % 4 == k), k, "outer")
              for k in range(4)]
    serial = SVMGrid(smo_budget=2000 * 60, n_jobs=1).scores(X, y, splits)
    assert serial.exact.any() and not serial.exact.all()                   # some pairs stop, others do not
    for _ in range(3):
        threaded = SVMGrid(smo_budget=2000 * 60, n_jobs=4).scores(X, y, splits)
        np.testing.assert_array_equal(threaded.accuracy, serial.accuracy)
        np.testing.assert_array_equal(threaded.exact, serial.exact)
        assert all(np.array_equal(a, b) for a, b in zip(threaded.predictions.ravel(), serial.predictions.ravel()))


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["svm", "elm"])
def test_rows_do_not_depend_on_n_jobs_or_the_jobs_cores(tmp_path, classifier, monkeypatch):
    args = [*TINY, "frontend=temporal", f"classifier={classifier}", "protocol=nested", "classify.standardize=true"]
    run_job([*args, "stage=extract"], tmp_path / "x", tmp_path / "cache")
    outs = []
    for name, extra, cores in (("a", ["classify.n_jobs=1"], 2), ("b", [], 2), ("c", ["classify.n_jobs=4"], 2), ("d", [], 1)):
        monkeypatch.setattr("elmarc.resources.job_cores", lambda cores=cores: cores)   # a parallel launcher's share
        shutil.rmtree(tmp_path / "cache" / "results", ignore_errors=True)
        run_job([*args, *extra], tmp_path / name, tmp_path / "cache")
        outs.append((rows_of(tmp_path / name), pd.read_csv(tmp_path / name / "predictions.csv")))
    for rows, preds in outs[1:]:
        pd.testing.assert_frame_equal(rows, outs[0][0])
        pd.testing.assert_frame_equal(preds, outs[0][1])


# ----------------------------------------------------------------------------- forms
def key_for(overrides, cache):
    from elmarc.job import plan_job

    return plan_job(compose_cfg(overrides, cache)).features


@pytest.mark.slow
def test_the_key_names_the_forms_and_auto_extracts_under_its_recorded_plan(tmp_path, monkeypatch):
    """rule is the default and in the key; auto's key holds every layer's chosen form, and
    extraction runs exactly that plan: a store that says 'plain' for every layer gives the plain mode's bits."""
    from elmarc.frontends.speed import measure

    monkeypatch.setattr(measure, "calibration", lambda device: 0.001)      # undisturbed: every choice is stored
    base = [*TINY[:-1], "frontend=7x86", "stage=extract", "extract.batch_size=4"]
    rule = key_for(base, tmp_path / "c")
    assert rule.spec["conv_forms"] == "rule"
    auto = key_for([*base, "extract.conv_forms=auto"], tmp_path / "c")
    plan = auto.spec["conv_forms"]["auto"]
    assert plan and all(k.startswith("conv2d_max_freq") for k in plan)
    store = next((tmp_path / "c" / "conv_forms").glob("*.json"))
    measured = json.loads(store.read_text())
    store.write_text(json.dumps({k: "plain" for k in measured}))             # another machine's (or run's) choices
    planned = key_for([*base, "extract.conv_forms=auto"], tmp_path / "c")
    assert set(planned.spec["conv_forms"]["auto"].values()) == {"plain"} and planned.root != auto.root
    run_job([*base, "extract.conv_forms=auto"], tmp_path / "a", tmp_path / "c")
    run_job([*base, "extract.conv_forms=plain"], tmp_path / "b", tmp_path / "c")
    feats = features_of(tmp_path / "c")
    assert len(feats) == 2 and len(set(feats.values())) == 1                # two keys, the same bits


class FakeClock:
    """Seconds advance by each call's cost times the load: deterministic 'timing' for the measuring tests."""

    def __init__(self, load):
        self.now, self.calls, self.load = 0.0, 0, load

    def __call__(self):
        return self.now

    def work(self, cost):
        def fn():
            self.calls += 1
            self.now += cost * self.load(self.calls)
        return fn


@pytest.mark.parametrize("case", ["idle", "hog for one call", "hog mid-measurement, stays",
                                  "hog mid-measurement, leaves during the retry", "hog before measuring"])
def test_measuring_keeps_no_choice_made_under_a_transient_load(monkeypatch, tmp_path, case):
    """Candidates: the rule's pick (10 ms), a faster form (6 ms), a slow one (30 ms), timed in interleaved rounds
    between two calibrations. A CPU hog (4x) during one call changes no choice. One that starts mid-measurement
    changes the calibration: the measurement is taken again, and while the machine stays slower than the
    fastest calibration seen on it (this process's, or the store's from an earlier job), the rule runs and
    nothing is stored; a later job on an idle machine measures."""
    from elmarc.frontends.speed import SpeedPolicy, measure
    from elmarc.frontends.speed.store import machine_id

    # call numbers: calibration 1, warm-ups 2-4, rounds 5-7 (rule, plain, fast), 8-9, 10-11, calibration 12; retry 13-24
    windows = {"idle": (0, 0), "hog for one call": (7, 8), "hog mid-measurement, stays": (8, 10**9),
               "hog mid-measurement, leaves during the retry": (8, 22), "hog before measuring": (0, 10**9)}
    start, end = windows[case]
    clock = FakeClock(lambda n: 4.0 if start <= n < end else 1.0)
    monkeypatch.setattr(measure, "clock", clock)
    monkeypatch.setattr(measure, "calibration", lambda device: clock.work(0.001)() or 0.001 * clock.load(clock.calls))
    store = tmp_path / "conv_forms" / f"{machine_id()}.json"
    if case == "hog before measuring":                                      # an earlier job calibrated the idle machine
        store.parent.mkdir(parents=True)
        store.write_text(json.dumps({measure.BASELINE: "0.001"}))
    policy = SpeedPolicy("auto", cache_dir=tmp_path)
    candidates = {"plain": clock.work(0.030), "rule": clock.work(0.010), "fast": clock.work(0.006)}
    chosen = policy.pick("k", candidates, "rule", torch.device("cpu"))
    if case in ("idle", "hog for one call"):
        assert chosen == "fast"
        assert json.loads(store.read_text()) == {"k|forms=fast,plain,rule": "fast", measure.BASELINE: "0.001"}
    else:                                                                   # disturbed twice: the rule, nothing kept
        assert chosen == "rule" and "k|forms=fast,plain,rule" not in (json.loads(store.read_text()) if store.exists() else {})


def test_a_damaged_conv_forms_file_is_named_set_aside_and_measured_again(tmp_path, caplog):
    from elmarc.frontends.speed import SpeedPolicy
    from elmarc.frontends.speed.store import machine_id

    store = tmp_path / "conv_forms" / f"{machine_id()}.json"
    store.parent.mkdir(parents=True)
    store.write_text("[1, 2, 3]")
    caplog.set_level("INFO")
    SpeedPolicy("auto", cache_dir=tmp_path)
    assert f"conv-forms file {store} is unusable" in log_text(caplog) and not store.exists()
    assert list(store.parent.glob("damaged-*/*.json"))


def test_features_do_not_depend_on_the_thread_count(frontend_configs):
    """A launcher gives each job its share of the cores: every front-end's features (each layer by its rule,
    the native kernel's per-part sums among them) are the same bits with 1 thread and with 2."""
    from elmarc.frontends import build_frontend

    g = torch.Generator().manual_seed(3)
    inputs = {"waveform": torch.randn(2, 60000, generator=g) * 0.1, "logmel": torch.randn(1, 1376, 96, generator=g) * 10 - 40}
    checked, before = [], torch.get_num_threads()
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))      # two threads on one pinned core would only spin
    try:
        for name, cfg in frontend_configs.items():
            if name in ("mfcc", "hear", "custom"):
                continue
            model = build_frontend(cfg, "small", seed=1)
            out = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                with torch.inference_mode():
                    out[threads] = model(inputs[model.input_kind]).numpy().tobytes()
            assert out[1] == out[2], name
            checked.append(name)
    finally:
        torch.set_num_threads(before)
        os.sched_setaffinity(0, cores)
    assert len(checked) == 10


# ----------------------------------------------------------------------------- the key covers content
def write_clips(root, kind):
    """Three classes x 6 clips, float WAV of 1 s: tones, or noise of the same names and byte sizes."""
    rng = np.random.default_rng(0)
    for c in range(3):
        for i in range(6):
            t = np.arange(8000) / 8000
            x = 0.5 * np.sin(2 * np.pi * (300 * (c + 1) + 15 * i) * t) if kind == "tones" else 0.5 * rng.standard_normal(8000)
            fixtures.write_audio(root / f"class{c}" / f"clip{i}.wav", x.astype(np.float32), 8000)


@pytest.mark.slow
def test_changed_audio_is_extracted_again_and_a_moved_copy_is_not(tmp_path, caplog):
    job = ["dataset=folder", "dataset.n_folds=3", "frontend=7x96", "extract.progress=false", "extract.num_workers=0"]
    data = tmp_path / "data"
    write_clips(data, "tones")
    run_job([*job, f"dataset.root={data}"], tmp_path / "tones", tmp_path / "cache")
    sizes = {p: p.stat().st_size for p in data.rglob("*.wav")}
    write_clips(data, "noise")                                              # in place: same names, same sizes
    assert {p: p.stat().st_size for p in data.rglob("*.wav")} == sizes
    caplog.set_level("INFO")
    run_job([*job, f"dataset.root={data}"], tmp_path / "noise", tmp_path / "cache")
    assert "nothing to extract" not in log_text(caplog) and "nothing to fit" not in log_text(caplog)
    run_job([*job, f"dataset.root={data}"], tmp_path / "fresh", tmp_path / "fresh_cache")
    pd.testing.assert_frame_equal(rows_of(tmp_path / "noise"), rows_of(tmp_path / "fresh"))
    assert rows_of(tmp_path / "tones").accuracy.mean() != rows_of(tmp_path / "noise").accuracy.mean()
    shutil.copytree(data, tmp_path / "elsewhere")                           # the same bytes under another root
    caplog.clear()
    run_job([*job, f"dataset.root={tmp_path / 'elsewhere'}"], tmp_path / "moved", tmp_path / "cache")
    assert "nothing to extract" in log_text(caplog) and "nothing to fit" in log_text(caplog)


# ----------------------------------------------------------------------------- the train stage
@pytest.mark.slow
def test_two_jobs_that_need_one_training_run_share_it(tmp_path, monkeypatch):
    """The svm and elm jobs of one front-end need the same training runs: one trains, the other waits for it."""
    from elmarc.train import trainer as train_stage

    trained = []

    def fold(self, split):
        entry = CacheEntry(self.root / split["name"])
        done = entry.read()
        if done is not None:
            return done
        trained.append(split["name"])
        time.sleep(0.3)                                                     # long enough for the other job to arrive
        test = split["test"]
        table = pd.DataFrame({"clip_id": self.clips["clip_id"].to_numpy()[test], "fold": str(split["outer"]),
                              "label": self.clips["label"].to_numpy()[test], "predicted": self.clips["label"].to_numpy()[test]})
        for name in ("trained.csv", "trained_1epoch.csv"):
            entry.write_text(name, table.to_csv(index=False))
        entry.write_bytes("features.npy", npy_bytes(np.random.default_rng(0).standard_normal((len(self.clips), 8)).astype(np.float32)))
        return entry.finish(["trained.csv", "trained_1epoch.csv", "features.npy"], lr=1e-3, proxy_lr=1e-3, best_epoch=0,
                            epochs=1, best_val_loss=1.0, seconds=0.3, proxy_seconds=0.3, n_train=len(split["train"]),
                            n_val=len(split["val"]), n_test=len(test))

    monkeypatch.setattr(train_stage.Trainer, "fold", fold)
    base = [*TINY, "frontend=temporal", "recipe=tiny"]
    run_job([*base, "stage=extract"], tmp_path / "x", tmp_path / "cache")
    from elmarc.pipeline import run_job as run_composed

    configs = {c: compose_cfg([*base, f"classifier={c}", "stage='train,report'"], tmp_path / "cache") for c in ("svm", "elm")}
    errors = []

    def job(classifier):
        try:
            run_composed(configs[classifier], tmp_path / classifier)
        except Exception as exc:                                            # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(c,)) for c in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(trained) == ["fold0", "fold1", "fold2"]     # each fold trained once, by one job


# ----------------------------------------------------------------------------- the whole: bytes of a sweep
SWEEP = [*TINY[:-2], "frontend=7x86,vgg", "classifier=svm,elm", "protocol=nested"]


def sweep_outputs(folder, cache):
    """What a sweep computed: features, rows and predictions of every job, the report's tables."""
    out = {"features": features_of(cache),
           "rows": pd.read_csv(folder / "results.csv").drop(columns=TIMINGS).sort_values(["frontend", "classifier", "fold"]).to_csv(),
           "summary": (folder / "summary.csv").read_text(),
           "report": (folder / "report.md").read_text().replace(str(folder), "<sweep>")}
    out["predictions"] = pd.concat(pd.read_csv(p) for p in sorted(folder.glob("*/predictions.csv"))).sort_values(
        ["frontend", "classifier", "fold", "clip_id"]).to_csv()
    return out


def cli_sweep(folder, cache):
    env = {**os.environ, "ELMARC_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "elmarc.main", "-m", *SWEEP, f"hydra.sweep.dir={folder}"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_sweep_gives_the_same_bytes_beside_a_cpu_hog_and_beside_another_sweep(tmp_path):
    """The default sweep run three ways into fresh caches: alone, with a CPU hog on every core beside it, and
    as two sweeps at once on one cache. Features, rows, predictions and the report's tables are the same bytes."""
    from helpers import grid

    jobs = [[*TINY[:-2], *j, "protocol=nested"] for j in grid(frontend=["7x86", "vgg"], classifier=["svm", "elm"])]
    reference = sweep_outputs(run_sweep(jobs, tmp_path / "alone", tmp_path / "c_alone"), tmp_path / "c_alone")
    hog = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        loaded = sweep_outputs(run_sweep(jobs, tmp_path / "hog", tmp_path / "c_hog"), tmp_path / "c_hog")
    finally:
        for p in hog:
            p.kill()
    assert loaded == reference
    procs = [cli_sweep(tmp_path / f"twin{i}", tmp_path / "c_shared") for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    for i in range(2):
        assert sweep_outputs(tmp_path / f"twin{i}", tmp_path / "c_shared") == reference


def test_names_in_the_config_never_write_outside_the_cache_and_the_run_folder(tmp_path):
    """A dataset or classifier name is a label, not a path: '../' in it changes no folder."""
    work = tmp_path / "work"
    run_job([*TINY, "frontend=temporal", "dataset.name=../../../escaped_dataset", "classifier=elm",
             "classifier.name=../../../../escaped_classifier"], work / "run", work / "cache")
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(work)]
    assert outside == [] and not list(tmp_path.parent.glob("escaped_*"))
    assert (work / "run" / "report.md").is_file()


@pytest.mark.parametrize("group", ["frontend", "dataset", "classifier"])
def test_a_yaml_target_is_checked_before_anything_is_built(tmp_path, group):
    """A _target_ that is not the kind its group needs (here a file handler that would truncate a file) is
    refused, naming the key, before it is built."""
    from elmarc.errors import UserError
    from elmarc.pipeline import run_job as run_composed

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    evil = {"_target_": "logging.FileHandler", "filename": str(victim), "mode": "w"}
    cfg = compose_cfg([*TINY, "frontend=temporal"], tmp_path / "cache")
    from omegaconf import OmegaConf, open_dict

    with open_dict(cfg):
        if group == "frontend":
            cfg.frontend.model = OmegaConf.create(evil)
        else:
            setattr(cfg, group, OmegaConf.merge(OmegaConf.create({"name": "x"}), OmegaConf.create(evil)))
    with pytest.raises(UserError, match=rf"{group}(\.model)?\._target_='logging.FileHandler' is not"):
        run_composed(cfg, tmp_path / "run")
    assert victim.read_text() == "precious" and not (tmp_path / "cache" / "audio").exists()


@pytest.mark.slow
def test_cache_files_follow_the_umask_so_a_group_can_share_a_cache(tmp_path):
    old = os.umask(0o002)                            # a lab's shared cache: group-writable folders and files
    try:
        run_job([*TINY, "frontend=temporal"], tmp_path / "run", tmp_path / "cache")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path / "cache"): p.stat().st_mode & 0o777 for p in (tmp_path / "cache").rglob("*")
             if p.is_file() and "native" not in p.parts}
    assert modes and all(m == 0o664 for m in modes.values()), {str(k): oct(m) for k, m in modes.items() if m != 0o664}
