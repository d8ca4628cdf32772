"""The declared family: sampled reproducibly, written as usable front-end configs, every variant builds."""
import random

import pytest
import torch
from omegaconf import OmegaConf

from elmarc.config import FrontendConfig, with_schema
from elmarc.frontends import build_frontend
from elmarc.frontends import family as fam


def test_the_packaged_variants_are_what_the_family_file_samples(tmp_path):
    family = fam.load()
    written = fam.write(family, tmp_path, "elmarc/conf/family/audio24.yaml")
    packaged = sorted(fam.OUT.glob("*.yaml"))
    assert [p.name for p in sorted(written)] == [p.name for p in packaged]
    for a, b in zip(sorted(written), packaged):
        assert a.read_text() == b.read_text(), f"{b} differs: run python -m elmarc.frontends.family write"
    kinds = {v["template"]: v["config"]["model"]["input"] for v in fam.sample(family)}
    assert len(packaged) == 24 and {"waveform", "logmel", "envelope"} <= set(kinds.values())


def test_sampling_is_seeded_per_template_without_replacement():
    family = fam.load()
    variants = fam.sample(family)
    assert len({v["name"] for v in variants}) == len(variants)
    t = family["templates"]["timbral"]
    expected = random.Random(f"{family['seed']}:timbral").sample(fam.grid(t), t["count"])
    assert [v["params"] for v in variants if v["template"] == "timbral"] == expected
    other = fam.sample({**family, "seed": 1})
    assert [v["name"] for v in other] != [v["name"] for v in variants]


def test_interleaved_order_cycles_through_templates():
    variants = fam.sample(fam.load())
    order = fam.interleaved(variants)
    assert sorted(v["name"] for v in order) == sorted(v["name"] for v in variants)
    assert [v["template"] for v in order[:5]] == ["timbral", "temporal", "timbral_context", "frame", "sample"]
    # within a template the sampled order stays
    assert [v["name"] for v in order if v["template"] == "frame"] == [v["name"] for v in variants if v["template"] == "frame"]
    assert [v["template"] for v in order[-4:]] == ["timbral", "timbral_context", "frame", "timbral"]   # 6, 5, 5 variants


def test_placeholders_and_repeat_are_substituted():
    layers = fam.substitute([{"type": "conv1d", "kernel": "$k"}, {"repeat": "$n", "layers": [{"type": "relu"}]}],
                            {"k": 5, "n": 3}, "t")
    assert layers == [{"type": "conv1d", "kernel": 5}] + [{"type": "relu"}] * 3
    with pytest.raises(fam.FamilyError, match=r"t\[0\].kernel: \$q is not a parameter"):
        fam.substitute([{"kernel": "$q"}], {"k": 5}, "t")


def test_every_variant_builds_and_runs(example_inputs):
    for path in sorted(fam.OUT.glob("*.yaml")):
        cfg = with_schema(OmegaConf.load(path), FrontendConfig)
        model = build_frontend(cfg, "small", seed=0)
        with torch.no_grad():
            out = model(example_inputs[model.input_kind][:1])
        assert out.shape == (1, model.feature_dim) and torch.isfinite(out).all(), path.name
