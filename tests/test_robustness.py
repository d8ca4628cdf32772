"""Nothing lost: bad audio, cache keys, SIGKILL and resume, concurrent jobs, determinism, config mistakes."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from elmarc.audio import AudioError
from elmarc.config import ConfigError, check_inputs, check_rules, parse_stages
from elmarc.datasets import build_dataset
from elmarc.errors import UserError
from elmarc.job import plan_job

import fixtures
from helpers import ROOT, TINY, compose_cfg, log_text, run_cli, run_job


# ----------------------------------------------------------------------------- 1. bad audio
def bad_audio_tree(root):
    """Good clips per class, plus every kind of bad file; returns {name: expected outcome}."""
    sr = 22050
    for c, label in enumerate(["a", "b"]):
        for j in range(4):
            fixtures.write_audio(root / label / f"good{j}.wav", fixtures.tone(c, sr, sr, 10 * c + j), sr)
    good = fixtures.tone(0, sr, sr, 99)
    d = root / "a"
    (d / "empty.wav").write_bytes(b"")
    full = (d / "good0.wav").read_bytes()
    (d / "truncated.wav").write_bytes(full[: len(full) // 3])
    (d / "corrupt.ogg").write_bytes(np.random.default_rng(0).bytes(4000))
    (d / "notaudio.mp3").write_text("definitely not audio\n" * 40)
    sf.write(d / "zerolength.wav", np.zeros(0, np.float32), sr)
    nan = good.copy()
    nan[50] = np.nan
    sf.write(d / "nan.wav", nan, sr, subtype="FLOAT")
    inf = good.copy()
    inf[50] = np.inf
    sf.write(d / "inf.wav", inf, sr, subtype="FLOAT")
    b = root / "b"
    sf.write(b / "silent.wav", np.zeros(sr, np.float32), sr)
    sf.write(b / "sixchannels.wav", np.tile(good[:, None], (1, 6)), sr)
    sf.write(b / "rate8k.wav", good[:8000], 8000)
    sf.write(b / "rate96k.flac", np.tile(good, 5)[:96000], 96000)
    sf.write(b / "short.wav", good[:1000], sr)            # 45 ms
    skipped = {"empty": "cannot decode", "truncated": "truncated", "corrupt": "cannot decode",
               "notaudio": "cannot decode", "zerolength": "no samples", "nan": "NaN", "inf": "NaN or infinite"}
    handled = ["silent", "sixchannels", "rate8k", "rate96k", "short"]
    return skipped, handled


@pytest.mark.parametrize("frontend", ["7x96", "sample_level", "mfcc"])
def test_bad_audio_is_skipped_with_reasons_and_the_run_goes_on(tmp_path, frontend):
    skipped, handled = bad_audio_tree(tmp_path / "data")
    run = tmp_path / "run"
    run_job(["dataset=folder", f"dataset.root={tmp_path / 'data'}", "dataset.n_folds=2", f"frontend={frontend}",
             "extract.progress=false"], run, tmp_path / "cache")
    table = pd.read_csv(run / "skipped.csv")
    got = {r.clip_id.split("/")[-1]: r.reason for r in table.itertuples()}
    assert set(got) == set(skipped)
    for name, text in skipped.items():
        assert text in got[name] and name in got[name]          # the reason names the file
    entry = next((tmp_path / "cache" / "features").iterdir())
    feats = np.load(entry / "features.npy")
    clips = pd.read_csv(entry / "clips.csv", keep_default_na=False)
    ok = clips.ok.astype(str) == "True"
    assert np.isfinite(feats[ok.to_numpy()]).all() and np.isnan(feats[~ok.to_numpy()]).all()
    for name in handled:
        assert ok[clips.clip_id.str.endswith(name)].all()
    rows = pd.read_csv(run / "results.csv")
    assert (rows.n_skipped == len(skipped)).all()
    assert f"{len(skipped)} clips could not be used" in (run / "report.md").read_text()


def test_bad_audio_hard_error_option(tmp_path):
    bad_audio_tree(tmp_path / "data")
    with pytest.raises(AudioError, match=r"(corrupt\.ogg|empty\.wav|inf\.wav|nan\.wav|notaudio\.mp3|truncated\.wav|zerolength\.wav)"):
        run_job(["dataset=folder", f"dataset.root={tmp_path / 'data'}", "dataset.n_folds=2", "frontend=mfcc",
                 "extract.on_error=raise", "extract.num_workers=0", "extract.progress=false"], tmp_path / "run", tmp_path / "cache")


# ----------------------------------------------------------------------------- 2. cache key
def key_for(overrides):
    return plan_job(compose_cfg(["dataset.n_per_class=5", *overrides], "/tmp/c")).features.key


@pytest.mark.slow
def test_cache_key_covers_what_makes_the_features():
    base = key_for(["frontend=vgg"])
    assert key_for(["frontend=vgg"]) == base
    changed = [["frontend=vgg", "seed=1"], ["frontend=vgg", "features=large"], ["frontend=7x96"],
               ["frontend=vgg", "input.n_mels=64"], ["frontend=vgg", "input.top_db=60"],
               ["frontend=vgg", "input.resampler=polyphase"], ["frontend=vgg", "dataset.n_per_class=6"],
               ["frontend=vgg", "dataset.task=timbre"], ["frontend=vgg", "dataset.data_seed=7"],
               ["frontend=vgg", "extract.precision=bf16-mixed"], ["frontend=vgg", "extract.conv_forms=plain"],
               ["frontend=vgg", "extract.compile=true"], ["frontend=vgg", "extract.tf32=true"]]
    keys = [key_for(o) for o in changed]
    assert base not in keys and len(set(keys)) == len(keys)
    # what does not change features does not change the key
    same = [["frontend=vgg", "extract.batch_size=3"], ["frontend=vgg", "extract.num_workers=0"], ["frontend=vgg", "extract.threads=1"],
            ["frontend=vgg", "classifier=elm"], ["frontend=vgg", "classify.standardize=true"]]
    assert all(key_for(o) == base for o in same)
    # the MFCC baseline has no weights: every seed and width shares one entry
    assert key_for(["frontend=mfcc"]) == key_for(["frontend=mfcc", "seed=2", "features=large"])


def test_cache_key_covers_the_file_list(tmp_path):
    root = fixtures.folder_tree(tmp_path / "f")
    cfg = {"_target_": "elmarc.datasets.folder.build", "root": str(root), "n_folds": 3}   # over the schema's defaults
    a = build_dataset(cfg).identity()
    fixtures.write_audio(root / "bird" / "extra.wav", fixtures.tone(0, 800, 8000, 1), 8000)
    b = build_dataset(cfg).identity()
    target = root / "bird" / "extra.wav"
    fixtures.write_audio(target, fixtures.tone(0, 1600, 8000, 1), 8000)            # same name, new content size
    c = build_dataset(cfg).identity()
    fixtures.write_audio(target, fixtures.tone(0, 1600, 8000, 2), 8000)            # same name and size, new content
    d = build_dataset(cfg).identity()
    assert len({str(x) for x in (a, b, c, d)}) == 4


# ----------------------------------------------------------------------------- 3. interruption
EXTRACT = [*TINY, "dataset.n_per_class=12", "dataset.n_classes=4", "frontend=sample_level",
           "extract.batch_size=2", "stage=extract"]


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_features(tmp_path, caplog):
    env = {**os.environ, "ELMARC_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elmarc.main", *EXTRACT, f"hydra.run.dir={tmp_path / 'r1'}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "cache" / "features"
    deadline = time.time() + 240
    while time.time() < deadline:
        found = list(shards.glob("*/shards/b*.npz")) if shards.exists() else []
        if len(found) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    entry = next(shards.iterdir())
    assert not (entry / "done.json").exists(), "extraction finished before it could be killed"
    n_before = len(list((entry / "shards").glob("b*.npz")))
    assert 3 <= n_before < 24
    caplog.set_level("INFO")
    run_job(EXTRACT, tmp_path / "r2", tmp_path / "cache")
    log = log_text(caplog)
    assert "resuming" in log and f"extracted {48 - 2 * n_before} clips" in log
    run_job(EXTRACT, tmp_path / "r3", tmp_path / "clean")      # uninterrupted reference
    a = np.load(entry / "features.npy")
    b = np.load(next((tmp_path / "clean" / "features").iterdir()) / "features.npy")
    assert a.shape == (48, 161) and np.array_equal(a, b)


# ----------------------------------------------------------------------------- 4. concurrency
@pytest.mark.slow
def test_two_processes_share_one_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ELMARC_NATIVE_DIR"}       # the kernel goes to the cache's folder
    env.update(ELMARC_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    args = [*TINY, "dataset.n_per_class=10", "frontend=7x86", "extract.batch_size=4", "stage=extract"]
    procs = [subprocess.Popen([sys.executable, "-m", "elmarc.main", *args, f"hydra.run.dir={tmp_path / f'r{i}'}"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    joined = "\n".join(logs)
    assert len(re.findall(r"extracted \d+ clips", joined)) == 1       # one extracted, the other waited
    assert "features cached" in joined
    entries = list((tmp_path / "cache" / "features").iterdir())
    assert len(entries) == 1
    feats = np.load(entries[0] / "features.npy")
    assert feats.shape == (40, 160) and np.isfinite(feats).all()
    assert not list(entries[0].rglob("*.tmp"))
    from elmarc.frontends.speed import native

    # 7x86's kernel, built into this user's folder of the shared cache once
    built = sorted(p.name for p in (tmp_path / "cache" / "native" / f"u{os.getuid()}").glob("*")) if native.compiler() else []
    assert len(built) == (1 if native.compiler() else 0) and all(n.startswith("patch_max-") and n.endswith(".so") for n in built)


# ----------------------------------------------------------------------------- 5. determinism
@pytest.mark.slow
def test_same_command_twice_same_rows(tmp_path):
    args = [*TINY, "frontend=timbral", "classifier=elm", "protocol=nested"]
    run_job(args, tmp_path / "a", tmp_path / "c1")
    run_job(args, tmp_path / "b", tmp_path / "c2")        # recomputed from scratch
    a, b = (pd.read_csv(tmp_path / d / "results.csv").drop(columns=["grid_seconds", "extract_seconds"]) for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    fa = np.load(next((tmp_path / "c1" / "features").iterdir()) / "features.npy")
    fb = np.load(next((tmp_path / "c2" / "features").iterdir()) / "features.npy")
    assert np.array_equal(fa, fb)


# ----------------------------------------------------------------------------- 6. config mistakes
def mistake_text(override) -> str:
    """What composing the config and checking its rules says about one wrong override ('' if nothing)."""
    try:
        cfg = compose_cfg([override])
        check_rules(cfg)
        parse_stages(cfg.stage)
        check_inputs(OmegaConf.to_object(cfg.input))
    except Exception as exc:          # Hydra's composition errors carry the detail in their cause
        parts, e = [], exc
        while e is not None:
            parts.append(str(e))
            e = e.__cause__
        return "\n".join(parts)
    return ""


@pytest.mark.parametrize("override,expected", [
    ("frontend=resnet", ["Could not find 'frontend/resnet'", "vgg", "temporal", "mfcc"]),
    ("dataset=imagenet", ["Could not find 'dataset/imagenet'", "gtzan", "ballroom", "urbansound8k"]),
    ("classifier=knn", ["Could not find 'classifier/knn'", "svm", "elm"]),
    ("protocol=loo", ["Could not find 'protocol/loo'", "nested", "paper"]),
    ("seed=-3", ["seed=-3", ">= 0"]),
    ("seed=abc", ["seed", "abc"]),
    ("features.width=medium", ["features.width", "medium", "small", "large"]),
    ("extract.batch_size=0", ["extract.batch_size=0", ">= 1"]),
    ("extract.on_error=ignore", ["extract.on_error", "ignore", "skip", "raise"]),
    ("extract.compile=maybe", ["extract.compile", "maybe"]),
    ("input.f_max=9000", ["input.f_max=9000", "Nyquist"]),
    ("input.resampler=linear", ["input.resampler", "linear", "soxr_hq", "polyphase"]),
    ("stage=fit", ["stage='fit'", "extract", "classify", "train", "report"]),
    ("recipe.lrs=[0]", ["recipe.lrs", "positive"]),
    ("dataset.rooot=/x", ["dataset.rooot"]),                     # a misspelt key
    ("classifier.gamma=[1]", ["classifier.gamma"]),
    ("extract.batchsize=4", ["extract.batchsize"]),
    ("classifier.C=[0,1]", ["classifier.C", "positive"]),
])
def test_config_mistakes_are_explained(override, expected):
    text = mistake_text(override)
    for piece in expected:
        assert piece in text, (piece, text[-1500:])


def test_a_misspelt_key_in_a_yaml_fails_before_any_audio(tmp_path):
    conf = tmp_path / "myconf" / "dataset"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("defaults:\n  - /schema/dataset/folder@_here_\n  - _self_\nroot: /data\nn_fold: 3\n")
    from hydra import compose, initialize_config_module
    from hydra.errors import ConfigCompositionException

    from elmarc.config import register_configs

    register_configs()
    with initialize_config_module("elmarc.conf", version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as err:
            compose("config", overrides=[f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "dataset=mine"])
    assert "n_fold" in repr(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigError, match="rooot"):          # and a plain dict handed to the builder
        build_dataset({"_target_": "elmarc.datasets.folder.build", "rooot": "/data"})


@pytest.mark.slow
def test_config_mistakes_on_the_command_line(tmp_path):
    out = run_cli(["seed=-3", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path / "cache", check=False)
    assert out.returncode == 2 and "elmarc: error: seed=-3 is out of range" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli(["dataset.rooot=/x", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path / "cache", check=False)
    assert out.returncode != 0 and "dataset.rooot" in out.stderr


def test_loader_workers_default_to_the_device_and_the_pass():
    from elmarc.extract.inputs import default_workers

    # the job's cores (its share under a launcher): on a CPU every core decodes once, extraction makes its
    # inputs in-process; a GPU is fed by up to 8 workers
    assert (default_workers(False, 16, decode_pass=True), default_workers(False, 16)) == (16, 0)
    assert (default_workers(True, 16, decode_pass=True), default_workers(True, 16)) == (8, 8)
    assert (default_workers(True, 2), default_workers(False, 2, decode_pass=True)) == (1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_job_with_one_line_and_the_rerun_resumes(tmp_path, caplog, signum, status):
    env = {**os.environ, "ELMARC_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elmarc.main", *EXTRACT, f"hydra.run.dir={tmp_path / 'r1'}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "cache" / "features"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(shards.glob("*/shards/b*.npz")) if shards.exists() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signum)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status and time.time() - t0 < 10
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Rerun the same command to resume" in lines[0] and "Traceback" not in err
    assert json.loads((tmp_path / "r1" / "status.json").read_text())["status"] == "interrupted"
    entry = next(shards.iterdir())
    assert not (entry / "done.json").exists() and not list(entry.rglob(".*.tmp"))
    if signum == signal.SIGTERM:
        caplog.set_level("INFO")
        run_job(EXTRACT, tmp_path / "r2", tmp_path / "cache")
        assert "resuming" in log_text(caplog) and (entry / "done.json").is_file()


def one_class_tree(root):
    for j in range(6):
        fixtures.write_audio(root / "bird" / f"c{j}.wav", fixtures.tone(0, 4000, 8000, j), 8000)
    return root


def unseen_class_list(root):
    tree = fixtures.folder_tree(root / "audio")
    rows = ["path,label,fold"] + [f"{p.relative_to(root)},{p.relative_to(tree).parts[0]},{0 if p.relative_to(tree).parts[0] == 'voice' else i % 2 + 1}"
                                  for i, p in enumerate(sorted(tree.rglob("*.*")))]
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return [f"dataset.root={root}", f"dataset.list={root / 'list.csv'}"]


def twin_files_tree(root):
    tree = fixtures.folder_tree(root)
    fixtures.write_audio(tree / "bird" / "clip0.wav", fixtures.tone(0, 8000, 22050, 99), 22050)   # beside clip0.flac
    return tree


@pytest.mark.parametrize("case,expected", [
    ("classifier.C=[]", "has no setting to fit"),
    ("classifier.n_hidden=[]", "needs at least one size"),
    ("one class", "has one class"),
    ("unseen class", "classes never in its training part ('voice')"),
    ("two files, one clip", "files share a clip id, e.g. 'bird/clip0'"),
    ("vgg, a width too many", "frontend 'vgg' at width small cannot fit: its weights take 1341.1 GiB"),
    ("temporal, a width too many", "frontend 'temporal' at width small cannot fit"),
])
def test_bad_input_is_refused_before_any_extraction(tmp_path, case, expected):
    folder = ["dataset=folder", "dataset.n_folds=2", "frontend=temporal", "extract.progress=false"]
    overrides = {
        "classifier.C=[]": lambda: [*TINY, "frontend=temporal", "classifier.C=[]"],
        "classifier.n_hidden=[]": lambda: [*TINY, "frontend=temporal", "classifier=elm", "classifier.n_hidden=[]"],
        "one class": lambda: [*folder, f"dataset.root={one_class_tree(tmp_path / 'd')}"],
        "unseen class": lambda: [*folder, *unseen_class_list(tmp_path / "d")],
        "two files, one clip": lambda: [*folder, f"dataset.root={twin_files_tree(tmp_path / 'd')}"],
        "vgg, a width too many": lambda: [*TINY, "frontend=vgg", "frontend.widths.small=100000"],
        "temporal, a width too many": lambda: [*TINY, "frontend=temporal", "frontend.widths.small=1000000"],
    }[case]()
    with pytest.raises(UserError, match=re.escape(expected)):
        run_job(overrides, tmp_path / "run", tmp_path / "cache")
    assert not (tmp_path / "cache" / "audio").exists() and not (tmp_path / "cache" / "features").exists()
