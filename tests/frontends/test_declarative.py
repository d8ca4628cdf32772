"""Front-ends declared in config: built-ins expressed with it, build-time errors, a YAML-only architecture in a sweep."""
import pandas as pd
import pytest
import torch

from elmarc.frontends import build_frontend
from elmarc.frontends.base import FrontendConfigError, init_random_
from elmarc.frontends.declarative import Declared

from helpers import TINY, run_cli, run_job

# The paper's 7x96, temporal and timbral written as layer lists: the declarative mechanism must
# reproduce the shipped (Python) definitions bit for bit, weights and features.
DECLARED_EQUIVALENT = {
    "7x96": {"input": "logmel", "layers": [
        {"type": "conv2d", "filters": "nf", "kernel": [7, 96]}, {"type": "maxpool", "kernel": [1, "all"]},
        {"type": "relu", "feature": True}]},
    "temporal": {"input": "envelope", "layers": [{"type": "branches", "merge": "none", "branches": [
        [{"type": "conv1d", "filters": f"{m}*nf - nf//4", "kernel": k, "padding": "same"}, {"type": "relu", "feature": True}]
        for m, k in ((1, 165), (2, 128), (4, 64), (8, 32))]}]},
    "timbral": {"input": "logmel", "layers": [{"type": "branches", "merge": "none", "branches": [
        [{"type": "conv2d", "filters": f"{m}*nf", "kernel": [rows, bands], "padding": [[rows // 2, rows // 2], [0, 0]]},
         {"type": "maxpool", "kernel": [1, "all"]}, {"type": "relu", "feature": True}]
        for bands in (86, 38) for m, rows in ((1, 7), (2, 3), (4, 1))]}]},
}


@pytest.mark.parametrize("name", sorted(DECLARED_EQUIVALENT))
@pytest.mark.parametrize("width", ["small", "large"])
def test_declared_forms_of_builtins_are_bit_identical(frontend_configs, name, width):
    shipped = build_frontend(frontend_configs[name], width, seed=4)
    nf = frontend_configs[name].widths[width]
    declared = init_random_(Declared(**DECLARED_EQUIVALENT[name], nf=nf, name=name), 4)
    for a, b in zip(shipped.parameters(), declared.parameters(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(1, 1376, 96, generator=torch.Generator().manual_seed(0)) * 10 - 40
    with torch.inference_mode():
        assert torch.equal(declared(x), shipped(x))


def test_declared_timbral_fuses_each_conv_with_its_frequency_max_relu_and_average():
    from elmarc.frontends.declarative import ConvMaxFreq, ConvMaxFreqReluMean

    model = Declared(**DECLARED_EQUIVALENT["timbral"], nf=8)
    fused = [m for m in model.modules() if isinstance(m, ConvMaxFreqReluMean)]
    assert sorted(m.time_pad for m in fused) == [(0, 0)] * 2 + [(1, 1)] * 2 + [(3, 3)] * 2
    # where the maps feed a further layer only the conv and its max are fused
    kept = declared([{"type": "conv2d", "filters": 4, "kernel": [3, 38], "padding": [[1, 1], [0, 0]]},
                     {"type": "maxpool", "kernel": [1, "all"]}, {"type": "relu", "feature": True},
                     {"type": "conv2d", "filters": 2, "kernel": [3, 1], "feature": True}])
    assert [type(m) for m in kept.modules()].count(ConvMaxFreq) == 1
    assert not any(isinstance(m, ConvMaxFreqReluMean) for m in kept.modules())


def declared(layers, input="logmel", nf=8, **kw):
    return Declared(layers=layers, input=input, nf=nf, name="my_net", **kw)


def test_declared_shapes_filters_and_residual():
    m = declared([
        {"type": "conv2d", "filters": "2*nf - nf//4", "kernel": [3, 3], "padding": "same", "feature": True},
        {"type": "maxpool", "kernel": [4, 2]},
        {"type": "residual", "layers": [{"type": "conv2d", "filters": 14, "kernel": [3, 3], "padding": "same"},
                                        {"type": "elu"}], "feature": True},
        {"type": "branches", "branches": [[{"type": "conv2d", "filters": 3, "kernel": [1, 48]}],
                                          [{"type": "conv2d", "filters": 5, "kernel": [5, 48], "padding": [[2, 2], [0, 0]]}]],
         "feature": True},
    ])
    assert m.output_shape == (8, 344, 1) and m.feature_dim == 14 + 14 + 8
    out = m(torch.randn(2, 1376, 96))
    assert out.shape == (2, 36) and torch.isfinite(out).all()


@pytest.mark.parametrize("layers,input,needle", [
    ([{"type": "conv2d", "filters": 4, "kernel": [7, 100], "feature": True}], "logmel",
     ["layers[0] (conv2d)", "kernel [7, 100]", "1 channel(s) x 1376 x 96", "frontend.model.layers[0].kernel"]),
    ([{"type": "conv1d", "filters": 4, "kernel": 3}, {"type": "maxpool", "kernel": 500000, "feature": True}], "waveform",
     ["layers[1] (maxpool)", "larger than its input", "4 channel(s) x 349998", "frontend.model.layers[1].kernel"]),
    ([{"type": "branches", "branches": [[{"type": "conv1d", "filters": 2, "kernel": 3}],
                                        [{"type": "conv1d", "filters": 2, "kernel": 5}]]},
      {"type": "relu", "feature": True}], "envelope",
     ["layers[0] (branches)", "branches[0] -> 2 channel(s) x 1374", "branches[1] -> 2 channel(s) x 1372", "merge: none"]),
    ([{"type": "lstm", "filters": 4}], "logmel", ["unknown layer type 'lstm'", "conv2d", "frontend.model.layers[0].type"]),
    ([{"type": "conv2d", "filters": 4, "kernel": 3, "dilation": 2, "feature": True}], "logmel",
     ["unknown key(s) ['dilation']", "layers[0] (conv2d)"]),
    ([{"type": "residual", "layers": [{"type": "conv2d", "filters": 4, "kernel": 3}]}, {"type": "relu", "feature": True}],
     "logmel", ["residual body maps 1 channel(s) x 1376 x 96 to 4 channel(s) x 1374 x 94", "must match"]),
    ([{"type": "conv2d", "filters": 4, "kernel": [3, 3], "feature": True}], "waveform",
     ["2-D conv cannot take a 1-D input", "conv1d"]),
    ([{"type": "conv2d", "filters": "nf**2", "kernel": [3, 3], "feature": True}], "logmel",
     ["filters='nf**2'", "only integers, nf"]),
    ([{"type": "conv2d", "filters": 4, "kernel": [3, 3]}], "logmel", ["no layer has feature: true"]),
])
def test_build_time_errors_name_layer_shapes_and_key(layers, input, needle):
    with pytest.raises(FrontendConfigError) as err:
        declared(layers, input=input)
    for piece in needle:
        assert piece in str(err.value), (piece, str(err.value))


def test_unknown_input_kind():
    with pytest.raises(FrontendConfigError, match="input='spectrum'.*frontend.model.input"):
        declared([{"type": "relu", "feature": True}], input="spectrum")


def test_bad_declared_config_fails_before_any_audio(tmp_path):
    # the dataset root does not exist: opening it first would raise a DatasetError instead
    with pytest.raises(FrontendConfigError, match=r"kernel \[5, 200\].*frontend.model.layers\[0\].kernel"):
        run_job(["frontend=custom", "frontend.model.layers.0.kernel=[5,200]", "dataset=gtzan",
                 f"dataset.root={tmp_path}/nope"], tmp_path / "r", tmp_path / "cache")


@pytest.mark.slow
def test_yaml_only_architecture_in_a_sweep_beside_a_builtin(tmp_path):
    conf = tmp_path / "myconf" / "frontend"
    conf.mkdir(parents=True)
    (conf / "stripes.yaml").write_text("""
name: stripes
model:
  _target_: elmarc.frontends.declarative.Declared
  input: logmel
  layers:
    - type: branches
      branches:
        - [{type: conv2d, filters: nf, kernel: [1, 96]}, {type: relu, feature: true}]
        - [{type: conv2d, filters: "2*nf", kernel: [31, 1], padding: same}, {type: maxpool, kernel: [1, all]}, {type: relu, feature: true}]
    - {type: avgpool, kernel: [8, 1]}
    - {type: conv2d, filters: nf, kernel: [3, 1], feature: true}
widths: {small: 16, large: 256}
batch_size: {small: 8, large: 2}
""")
    sweep = tmp_path / "sweep"
    run_cli(["-m", *TINY, f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "frontend=stripes,7x96",
             "classifier=svm", f"hydra.sweep.dir={sweep}"], tmp_path / "cache")
    rows = pd.read_csv(sweep / "results.csv")
    assert set(rows.frontend) == {"stripes", "7x96"} and rows.accuracy.between(0, 1).all()
    assert "stripes" in (sweep / "report.md").read_text()
    entry = next(p for p in (tmp_path / "cache" / "features").iterdir() if "stripes" in p.name)
    import json
    layers = json.loads((entry / "spec.json").read_text())["frontend"]["model"]["layers"]   # the key covers the layer list
    assert layers[0]["branches"][1][0]["kernel"] == [31, 1] and layers[2]["type"] == "conv2d"
    from elmarc.describe import describe, frontend_configs
    table = describe(frontend_configs(conf)).set_index(["frontend", "width"])
    assert table.loc[("stripes", "small"), "feature_dim"] == 16 + 32 + 16
    assert table.loc[("stripes", "small"), "macs_per_clip"] == 1376 * 96 * 16 + 1376 * 96 * 31 * 32 + 170 * 3 * 48 * 16


@pytest.mark.slow
def test_custom_example_config_builds_at_both_widths(frontend_configs):
    for width, dim in (("small", 160), ("large", 3584)):
        assert build_frontend(frontend_configs["custom"], width, 0).feature_dim == dim


def test_a_conv_relu_that_only_feeds_the_average_is_fused_and_one_that_feeds_on_is_not():
    from elmarc.frontends.declarative import ConvReluMean
    from elmarc.frontends.speed import ops

    path = [{"type": "conv1d", "filters": 6, "kernel": 16, "padding": "same"}, {"type": "relu", "feature": True}]
    only_averaged = declared([{"type": "branches", "merge": "none", "branches": [path, path[:1] + [{"type": "relu", "feature": True}]]}],
                             input="envelope")
    fed_on = declared([{"type": "branches", "merge": "concat", "branches": [path, path]},
                       {"type": "conv1d", "filters": 3, "kernel": 5, "feature": True}], input="envelope")
    assert sum(isinstance(m, ConvReluMean) for m in only_averaged.modules()) == 2
    assert not any(isinstance(m, ConvReluMean) for m in fed_on.modules())
    x = torch.randn(3, 1376, 96, generator=torch.Generator().manual_seed(0)) * 10 - 40
    for model in (only_averaged, fed_on):
        init_random_(model, 1)
        with torch.inference_mode():
            fast = model(x)
            with ops.direct_convolution():
                direct = model(x)
        assert fast.shape == direct.shape == (3, model.feature_dim)
        torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-6)
