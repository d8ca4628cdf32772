"""Config mistakes: each is named with its key and what is allowed, before any audio is read."""
import pytest
from omegaconf import OmegaConf

from elmarc.config import ConfigError, check_inputs, check_rules, parse_stages
from elmarc.datasets import build_dataset

from helpers import compose_cfg, run_cli


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




def test_an_argument_the_frontend_does_not_take_is_named_and_a_failure_inside_it_is_not(monkeypatch):
    """frontend.model keys are checked against the class's signature before it runs; a TypeError raised inside
    the class is its own failure and keeps its traceback, never dressed up as a misspelt key."""
    from elmarc.frontends import build_frontend
    from elmarc.frontends.spectrogram import VGG

    cfg = compose_cfg(["frontend=vgg", "+frontend.model.nff=3"])
    with pytest.raises(ConfigError, match="frontend.model: got an unexpected keyword argument 'nff'"):
        build_frontend(cfg.frontend, "small", 0)

    def broken_init(self, nf, *args, **kwargs):
        raise TypeError("a bug inside the class")

    monkeypatch.setattr(VGG, "__init__", broken_init)
    with pytest.raises(Exception) as info:
        build_frontend(compose_cfg(["frontend=vgg"]).frontend, "small", 0)
    assert not isinstance(info.value, ConfigError) and "a bug inside the class" in repr(info.value.__cause__ or info.value)
