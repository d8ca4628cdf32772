"""The search space: its checks, the points Optuna asks for, the overrides that run a point, the honesty rule."""
import json

import numpy as np
import optuna
import pytest

from elmarc.datasets import DatasetError
from elmarc.frontends import FrontendFactory
from elmarc.search import space as spaces
from elmarc.search.sweeper import SearchError, SearchSweeperImpl, auto_holdout, predictor_overrides

from helpers import TINY, compose_cfg, run_job

SHAPE = {"n_samples": 350000, "n_frames": 1376, "n_mels": 96}


@pytest.mark.parametrize("name", ["spectrogram", "waveform", "audio"])
def test_packaged_spaces_compose_and_every_sampled_point_builds(name):
    space = spaces.check(compose_cfg([f"space={name}"]).space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
    seen = set()
    for _ in range(12):
        trial = study.ask()
        tname, point = spaces.suggest(trial, space)
        seen.add(tname)
        cfg = compose_cfg(spaces.frontend_overrides(space, tname, point))
        # the overrides give exactly the point's front-end config, and it builds against SPEC's input
        want = spaces.frontend_config(space, tname, point)
        assert cfg.frontend.name == want["name"] == spaces.name_of(tname, point)
        assert list(cfg.frontend.model.layers) == want["model"]["layers"]
        assert cfg.frontend.model.input == want["model"]["input"]
        factory = FrontendFactory.of(cfg.frontend, "small", 0, SHAPE)
        assert factory.nf == want["widths"]["small"] and factory.build().feature_dim > 0
        study.tell(trial, 0.0)
    assert seen <= set(space["templates"]) and len(seen) >= 2


def test_audio_space_is_the_union_and_counts_its_points():
    spec, wave, audio = (spaces.check(compose_cfg([f"space={n}"]).space) for n in ("spectrogram", "waveform", "audio"))
    assert list(audio["templates"]) == [*spec["templates"], *wave["templates"]]
    assert spaces.size(audio) == spaces.size(spec) + spaces.size(wave) == len(spaces.every_point(audio))
    # timbral: kt 1,3,5,7 x 6 kf x 3 nf; a range with a step and a log range enumerate every integer they allow
    assert spaces.values({"low": 1, "high": 7, "step": 2}) == [1, 3, 5, 7]
    assert len(spaces.values({"low": 16, "high": 192, "log": True})) == 177
    # the paper's 7x86 and 7x96 shapes and the temporal filter length 165 are points of it
    points = spaces.every_point(spec)
    assert ("timbral", {"kf": 86, "kt": 7, "nf": 32}) in points and ("timbral", {"kf": 96, "kt": 7, "nf": 32}) in points
    assert any(t == "temporal" and p["k"] == 165 for t, p in points)


@pytest.mark.parametrize("point, paper", [(("timbral", {"kt": 7, "kf": 86, "nf": 160}), "7x86"),
                                          (("timbral", {"kt": 7, "kf": 96, "nf": 160}), "7x96"),
                                          (("vgg", {"k": 3, "nf": 32}), "vgg")])
def test_the_spectrogram_space_holds_the_papers_designs(point, paper):
    """Those points are the paper's front-ends at the small width: the same weights and features (VGG's pool
    runs before its ELU, which rounds differently)."""
    import torch

    space = spaces.check(compose_cfg(["space=spectrogram"]).space)
    ours = FrontendFactory.of(compose_cfg(spaces.frontend_overrides(space, *point)).frontend, "small", 0, SHAPE).build()
    theirs = FrontendFactory.of(compose_cfg([f"frontend={paper}"]).frontend, "small", 0, SHAPE).build()
    x = torch.from_numpy(np.random.default_rng(0).normal(-40, 12, (2, 1376, 96)).astype(np.float32))
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == b.shape == (2, 160)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad, message", [
    ({"name": "x", "templates": {}}, "has no templates"),
    ({"templates": {"a": {"input": "logmel", "layers": []}}}, "lacks ['params']"),
    ({"templates": {"a": {"input": "logmel", "params": {"k": {"low": 5, "high": 2}}, "layers": []}}}, "is not a range"),
    ({"templates": {"a": {"input": "logmel", "params": {"k": {"lo": 1, "high": 2}}, "layers": []}}}, "a range is"),
    ({"templates": {"a": {"input": "logmel", "params": {"k": 3}, "layers": []}}}, "give a list of choices"),
    ({"templates": {"a": {"input": "logmel", "params": {"k": [3]}, "layers": [{"type": "conv1d", "kernel": "$j"}]}}},
     "$j is not a parameter"),
])
def test_a_space_that_cannot_work_is_told_in_one_line(bad, message):
    with pytest.raises(spaces.SpaceError, match=None) as info:
        spaces.check(bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_override_values_survive_hydras_grammar():
    layers = [{"type": "maxpool", "kernel": [1, "all"]}, {"type": "conv1d", "filters": "2*nf", "kernel": 3, "padding": "same"},
              {"type": "relu", "feature": True, "name": "it's"}]
    cfg = compose_cfg(["frontend=search/point", f"frontend.model.layers={spaces.override_value(layers)}"])
    assert list(cfg.frontend.model.layers) == layers


def test_point_of_reads_back_what_suggest_asked():
    space = spaces.check(compose_cfg(["space=waveform"]).space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        trial = study.ask()
        asked = spaces.suggest(trial, space)
        assert spaces.point_of(trial.params) == asked
        assert all(k == "template" or k.startswith(asked[0] + ".") for k in trial.params)
        study.tell(trial, 0.0)


def test_predictors_and_auto_holdout():
    assert predictor_overrides("elm")[0] == "classifier=elm"
    assert "objective=snip" in predictor_overrides("snip") and "proxies.names=[snip]" in predictor_overrides("snip")
    with pytest.raises(SearchError, match="predictor='bogus'"):
        predictor_overrides("bogus")
    assert auto_holdout([0, 1, 2, 3, 4]) == [3, 4] and auto_holdout([0, 1, 2, 3, 4, 5]) == [4, 5] and auto_holdout([0, 1]) == [1]


def test_the_search_refuses_what_it_sets_itself_and_sweeps():
    s = SearchSweeperImpl()
    for args, key in ((["frontend=7x86"], "frontend"), (["frontend.widths.small=3"], "frontend.widths.small"),
                      (["classifier=elm"], "classifier"), (["holdout_folds=[]"], "holdout_folds")):
        with pytest.raises(SearchError, match=f"sets {key} itself"):
            s.fixed_overrides(args)
    with pytest.raises(SearchError, match="one job per trial"):
        s.fixed_overrides(["seed=0,1"])
    assert s.fixed_overrides(["dataset=esc10", "seed=2"]) == ["dataset=esc10", "seed=2"]


def test_held_out_folds_are_never_read(tmp_path):
    """The honesty rule: a job with holdout_folds scores its candidate without the clips of those folds: they are
    not decoded (garbage there changes nothing), and their clips are in none of its fits."""
    from fixtures import esc10_tree

    root = esc10_tree(tmp_path / "esc10", per_fold=2)
    base = ["dataset=esc10", f"dataset.root={root}", "frontend=7x96", "extract.progress=false", "extract.num_workers=0",
            "extract.conv_forms=rule", "input.n_samples=12000", "input.n_frames=47"]
    held = [*base, "holdout_folds=[3,4]"]
    first = run_job(held, tmp_path / "a", tmp_path / "cache", single_run=False)
    for f in root.rglob("[45]-*.ogg"):           # ESC-10's folds 4 and 5 are folds 3 and 4 (0-based)
        f.write_bytes(b"not audio at all")
    again = run_job(held, tmp_path / "b", tmp_path / "cache2", single_run=False)
    assert again["accuracy"] == first["accuracy"] and again["feature_key"] == first["feature_key"]
    import pandas as pd

    rows = pd.read_csv(tmp_path / "b" / "results.csv")
    assert set(rows["fold"].astype(str)) == {"0", "1", "2"}
    clips = pd.read_csv(tmp_path / "b" / "clips.csv")
    assert len(clips) == 18 and set(clips["fold"]) == {0, 1, 2}
    assert json.loads((tmp_path / "b" / "status.json").read_text())["extract"]["extracted"] == 18
    # without the rule the damaged folds are read: their clips are skipped as unreadable
    whole = run_job(base, tmp_path / "c", tmp_path / "cache2", single_run=False)
    assert whole["extract"]["extracted"] == 30 and len(pd.read_csv(tmp_path / "c" / "skipped.csv")) == 12


def test_holdout_and_objective_mistakes_are_told_before_any_work(tmp_path):
    from elmarc.config import ConfigError
    from elmarc.job import plan_job

    with pytest.raises(DatasetError, match=r"has no fold \[7\]"):
        plan_job(compose_cfg([*TINY, "holdout_folds=[7]"], tmp_path))
    with pytest.raises(DatasetError, match="keeps 1 of its folds"):
        plan_job(compose_cfg([*TINY, "holdout_folds=[0,1]"], tmp_path))
    with pytest.raises(ConfigError, match="scores no proxies"):
        plan_job(compose_cfg([*TINY, "objective=snip"], tmp_path))
    with pytest.raises(ConfigError, match="objective='bogus'"):
        plan_job(compose_cfg([*TINY, "objective=bogus"], tmp_path))


def test_a_study_made_by_another_search_is_refused(tmp_path):
    """The study records its definition; the same one resumes it, another is refused naming what differs."""
    s = SearchSweeperImpl()
    s.sweep_dir = tmp_path
    study = optuna.create_study(study_name="st")
    first = s.definition({"name": "two"}, ["dataset=synthetic", "dataset.task=rhythm"], [3, 4])
    s.claim(study, first)
    s.claim(study, json.loads(json.dumps(first)))           # the same search: resumes
    with pytest.raises(SearchError, match=r"was made by another search \(its fixed_overrides, holdout_folds differ\)"):
        s.claim(study, s.definition({"name": "two"}, ["dataset=synthetic", "dataset.task=timbre"], [4]))
