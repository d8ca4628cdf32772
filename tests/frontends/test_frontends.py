"""SPEC section 2: lengths, intermediate shapes, initialisation, seeds, the paper's pitch-invariance property."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elmarc.frontends import build_frontend
from elmarc.frontends.base import fan_in, same_padding
from elmarc.frontends.musical import temporal_reduction

SPEC_DIMS = {  # name: (small, large)
    "sample_level": (161, 3584), "frame_level": (160, 3584), "frame_level_many": (160, 3584),
    "7x96": (160, 3585), "7x86": (160, 3585), "vgg": (160, 3585), "timbral": (112, 3584),
    "temporal": (112, 3584), "timbral_temporal": (112, 3584), "timbral_time": (112, 3584),
}
SPEC_NF = {"sample_level": (23, 512), "frame_level": (40, 896), "frame_level_many": (20, 448),
           "7x96": (160, 3585), "7x86": (160, 3585), "vgg": (32, 717), "timbral": (8, 256),
           "temporal": (8, 256), "timbral_temporal": (4, 128), "timbral_time": (4, 128)}


def paper_input(model, batch=1, device="meta"):
    if model.input_kind == "waveform":
        return torch.zeros(batch, 350000, device=device)
    return torch.zeros(batch, 1376, 96, device=device)


def test_every_spec_frontend_has_a_config(frontend_configs):
    assert set(SPEC_DIMS) | {"mfcc"} <= set(frontend_configs)


@pytest.mark.parametrize("name", sorted(SPEC_DIMS))
@pytest.mark.parametrize("width", ["small", "large"])
def test_feature_length_on_paper_inputs(frontend_configs, name, width):
    cfg = frontend_configs[name]
    assert cfg.widths[width] == SPEC_NF[name][width == "large"]
    model = build_frontend(cfg, width, seed=0).to("meta")     # shapes only: no arithmetic
    out = model(paper_input(model, batch=2))
    expect = SPEC_DIMS[name][width == "large"]
    assert model.feature_dim == expect and tuple(out.shape) == (2, expect)


@pytest.mark.parametrize("name", sorted(SPEC_DIMS))
def test_small_width_values_on_real_input(frontend_configs, name):
    model = build_frontend(frontend_configs[name], "small", seed=3)
    torch.manual_seed(0)
    x = torch.randn(2, 350000) * 0.1 if model.input_kind == "waveform" else torch.randn(2, 1376, 96) * 10 - 40
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (2, SPEC_DIMS[name][0])
    assert torch.isfinite(out).all()
    assert (out >= 0).all() or name == "vgg"          # averages of ReLU maps (residual sums of them too)
    assert not torch.equal(out[0], out[1])            # different clips, different features


def test_vgg_intermediate_shapes(frontend_configs):
    model = build_frontend(frontend_configs["vgg"], "small", 0)
    h = torch.zeros(1, 1, 1376, 96, device="meta")
    shapes = []
    model = model.to("meta")
    for conv, pool in zip(model.convs, model.pools):
        h = F.max_pool2d(conv(h), pool)
        shapes.append(tuple(h.shape[2:]))
    assert shapes == [(344, 48), (86, 16), (17, 8), (4, 4), (1, 1)]


def test_frame_level_shapes_and_backend_averages_each_map(frontend_configs):
    model = build_frontend(frontend_configs["frame_level"], "large", 0).to("meta")
    h = model.front(torch.zeros(1, 1, 350000, device="meta"))
    assert tuple(h.shape) == (1, 896, 10922)
    outs = model.backend(h)
    assert [tuple(o.shape) for o in outs] == [(1, 896, 10916), (1, 896, 10916), (1, 896, 5458)]
    # values: the vector is [mean of front maps, mean of each back-end output's maps]
    small = build_frontend(frontend_configs["frame_level"], "small", 1)
    x = torch.randn(1, 350000) * 0.1
    with torch.inference_mode():
        feats = small(x)[0]
        h = F.relu(small.front(x.unsqueeze(1)))
        ref = torch.cat([h.mean(-1)[0]] + [o.mean(-1)[0] for o in small.backend(h)])
    torch.testing.assert_close(feats, ref)
    assert (feats[40:] > 0).float().mean() > 0.5      # not the reference's mostly-zero vectors


def test_frame_level_many_same_padding():
    assert same_padding(512, 32, 350000) == (248, 248)
    assert same_padding(32, 32, 350000) == (8, 8)
    assert same_padding(128, 1, 1376) == (63, 64)     # even kernel: TensorFlow pads more on the right


def test_temporal_widths_follow_spec():
    assert [temporal_reduction(nf) for nf in (256, 128, 64, 32, 16, 8, 4)] == [64, 32, 16, 8, 4, 2, 1]


@pytest.mark.parametrize("name", sorted(SPEC_DIMS))
@pytest.mark.parametrize("width", ["small", "large"])
def test_init_truncated_normal_fan_in(frontend_configs, name, width):
    model = build_frontend(frontend_configs[name], width, seed=5)
    convs = model.conv_layers()
    assert convs and all(c.bias is None or torch.all(c.bias == 0) for c in convs)
    for conv in convs:
        w = conv.weight.detach().double()
        std = math.sqrt(1.3 * 2 / fan_in(conv))
        assert w.abs().max() <= 2 * std + 1e-7                 # redrawn beyond 2 std
        if w.numel() > 20000:
            # std of N(0, s^2) truncated at +-2s is 0.8796 s
            assert abs(w.std().item() / (0.8796 * std) - 1) < 0.03
            assert abs(w.mean().item()) < 0.05 * std
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in model.modules())


def test_fan_in_counts_kernel_and_input_channels(frontend_configs):
    model = build_frontend(frontend_configs["vgg"], "small", 0)
    assert fan_in(model.convs[0]) == 9 and fan_in(model.convs[1]) == 9 * 32
    m = build_frontend(frontend_configs["7x86"], "small", 0)
    assert fan_in(m.conv) == 7 * 86


@pytest.mark.parametrize("name", sorted(SPEC_DIMS))
def test_same_seed_same_weights_at_both_widths(frontend_configs, name):
    for width in ("small", "large"):
        a, b, c = (build_frontend(frontend_configs[name], width, seed=s) for s in (21, 21, 22))
        for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
            assert torch.equal(pa, pb) and not torch.equal(pa, pc)


@pytest.mark.parametrize("name", sorted(SPEC_DIMS))
def test_same_seed_bit_identical_different_seed_different(frontend_configs, name):
    a = build_frontend(frontend_configs[name], "small", seed=11)
    b = build_frontend(frontend_configs[name], "small", seed=11)
    c = build_frontend(frontend_configs[name], "small", seed=12)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    torch.manual_seed(1)
    x = torch.randn(2, 350000) * 0.1 if a.input_kind == "waveform" else torch.randn(2, 1376, 96) - 30
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), c(x))


def test_vgg_pool_before_elu_is_exact():
    torch.manual_seed(0)
    h = torch.randn(2, 8, 64, 32)
    torch.testing.assert_close(F.max_pool2d(F.elu(h), (4, 2)), F.elu(F.max_pool2d(h, (4, 2))), rtol=0, atol=0)


def test_7x86_is_more_pitch_invariant_than_7x96(frontend_configs):
    """Shifting the log-mel by a few bands changes 7x86 features much less than 7x96 features."""
    rng = np.random.default_rng(0)
    # harmonic-like spectro-temporal patterns, zero (floor) at the band edges so a shift loses nothing
    base = np.full((1376, 102), -80.0, np.float32)
    for _ in range(60):
        t0, f0 = rng.integers(0, 1300), rng.integers(10, 60)
        base[t0:t0 + rng.integers(20, 70), f0:f0 + 3] = rng.uniform(-30, 0)
        base[t0:t0 + 40, f0 + 20:f0 + 22] = rng.uniform(-40, -10)
    ratios = {}
    for name in ("7x96", "7x86"):
        diffs = []
        for seed in range(3):
            model = build_frontend(frontend_configs[name], "small", seed)
            with torch.inference_mode():
                ref = model(torch.from_numpy(base[None, :, 3:99]))
                moved = model(torch.from_numpy(base[None, :, 0:96]))       # 3 bands up
            diffs.append(((ref - moved).norm() / ref.norm()).item())
        ratios[name] = np.mean(diffs)
    assert ratios["7x86"] < 0.5 * ratios["7x96"], ratios


@pytest.mark.slow
def test_describe_counts_macs_from_the_model():
    from elmarc.describe import describe

    table = describe().set_index(["frontend", "width"])
    # closed forms: 7x96 = 1370 frames x (7 x 96) x nf; 7x86 adds 11 frequency positions
    assert table.loc[("7x96", "large"), "macs_per_clip"] == 1370 * 7 * 96 * 3585
    assert table.loc[("7x86", "small"), "macs_per_clip"] == 1370 * 11 * 7 * 86 * 160
    assert table.loc[("vgg", "large"), "parameters"] == 9 * 717 + 4 * 9 * 717 * 717
    for (name, width), dim in {("sample_level", "small"): 161, ("timbral", "large"): 3584,
                               ("mfcc", "any"): 120}.items():
        assert table.loc[(name, width), "feature_dim"] == dim
    # SPEC section 6 orders of magnitude
    assert 8e10 < table.loc[("vgg", "large"), "macs_per_clip"] < 9e10
    assert 1.5e11 < table.loc[("frame_level", "large"), "macs_per_clip"] < 1.7e11


@pytest.mark.slow
@pytest.mark.parametrize("name", ["7x96"])
def test_compiled_frontend_gives_the_eager_features(frontend_configs, name):
    from elmarc.extract.loop import compiled

    torch.manual_seed(0)
    x = torch.randn(2, 300, 96) * 10 - 40
    with torch.inference_mode():
        eager = build_frontend(frontend_configs[name], "small", seed=3)(x)
        model = compiled(build_frontend(frontend_configs[name], "small", seed=3))
        model(x)                                          # the first call runs eager (forms are chosen there)
        fast = model(x)
    assert not model.forward.failed and model.forward.calls == 2          # it really ran compiled
    assert fast.shape == eager.shape
    assert torch.allclose(fast, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))


def test_compile_null_follows_the_frontend_flag_at_the_large_width():
    from elmarc.config import ExtractConfig
    from elmarc.extract.settings import Extraction
    from elmarc.frontends import FrontendFactory

    from helpers import compose_cfg

    def compiles(choice, cpu, gpu, width, on_gpu=False):
        cfg = compose_cfg([f"frontend.compile.cpu={cpu}", f"frontend.compile.gpu={gpu}"])
        frontend = FrontendFactory.of(cfg.frontend, width, 0, {})
        if choice is None:
            return frontend.compile_pays(on_gpu)
        return Extraction.resolve(ExtractConfig(compile=choice, accelerator="cpu"), frontend, 1, None).compile

    assert compiles(None, True, True, "large") and not compiles(None, True, True, "small")
    assert not compiles(None, False, False, "large")
    assert compiles(True, False, False, "small") and not compiles(False, True, True, "large")
    assert not compiles(None, False, True, "large") and compiles(None, False, True, "large", on_gpu=True)
    assert not compiles(None, False, True, "small", on_gpu=True)
    # the shipped flags: 7x96 and timbral compile at the large width on a GPU only (on a CPU their eager
    # patch-product forms are the faster)
    for name in ("7x96", "timbral"):
        frontend = FrontendFactory.of(compose_cfg([f"frontend={name}"]).frontend, "large", 0, {})
        assert not frontend.compile_pays(False) and frontend.compile_pays(True)


REFERENCE = Path(__file__).parents[1] / "data" / "reference_features.npz"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPEC_DIMS) + ["mfcc"])
def test_features_equal_the_stored_reference(frontend_configs, example_inputs, name):
    """Features of every front-end at both widths (seed 1) equal values stored from an earlier release
    (tests/data/reference_features.npz), with the faster forms and with the plain convolutions.
    A change here changes every cache entry's meaning: bump elmarc.__version__ (part of the key) with it."""
    from elmarc.frontends.speed import ops

    stored = np.load(REFERENCE)
    for width in ("small", "large"):
        model = build_frontend(frontend_configs[name], width, seed=1)
        x = example_inputs[model.input_kind]
        if width == "large" and model.input_kind == "waveform":
            x = x[:1]                                          # one clip: the large waveform models are slow
        expected = torch.from_numpy(stored[f"{name}/{width}"])
        with torch.inference_mode():
            fast = model(x)
            with ops.direct_convolution():
                plain = model(x)
        scale = float(expected.abs().max())
        for got in (fast, plain):
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
