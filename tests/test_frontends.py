"""SPEC section 2: lengths, intermediate shapes, initialisation, seeds, the paper's pitch-invariance property."""
import json
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


@pytest.mark.parametrize("shape,time_pad", [((5, 1, 7, 86), (3, 3)), ((4, 1, 3, 38), (1, 1)), ((6, 1, 1, 38), (0, 0)),
                                            ((3, 1, 7, 96), (0, 0)), ((2, 1, 2, 50), (0, 1))])
def test_conv2d_max_freq_is_the_conv_then_the_max_over_frequency(shape, time_pad):
    from elmarc.frontends import ops

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 1, 40, 96, generator=g), torch.randn(*shape, generator=g)
    expected = F.conv2d(F.pad(x, (0, 0, *time_pad)), w).amax(dim=3, keepdim=True)
    got = ops.conv2d_max_freq(x, w, time_pad)
    assert got.shape == expected.shape == (3, shape[0], 40 + sum(time_pad) - shape[2] + 1, 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)   # sums of up to 672 products of N(0, 1)


@pytest.mark.parametrize("shape,time_pad", [((5, 1, 7, 86), (3, 3)), ((4, 1, 3, 38), (1, 1)), ((6, 1, 1, 38), (0, 0)),
                                            ((3, 1, 7, 96), (0, 0)), ((2, 1, 2, 50), (0, 1))])
@pytest.mark.parametrize("rows", [512, 7])             # one block per call; blocks that straddle clips (7 does not divide 40)
def test_patch_products_give_the_max_over_frequency_and_its_rectified_average(shape, time_pad, rows):
    from elmarc.frontends import forms, ops

    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(3, 1, 40, 96, generator=g), torch.randn(*shape, generator=g)
    expected = F.conv2d(F.pad(x, (0, 0, *time_pad)), w).amax(dim=3, keepdim=True)
    maps = ops._patch_products_max(x, w, time_pad, rows=rows)
    assert maps.shape == expected.shape
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-4)
    averaged = ops._patch_products_max(x, w, time_pad, rows=rows, relu_mean=True)
    assert averaged.shape == (3, shape[0]) and averaged.dtype == torch.float32
    torch.testing.assert_close(averaged, F.relu(expected).mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    for form in ("plain", "maps", "patches", "native"):                # the op's every form (native: where compiled)
        with forms.pinned(form):
            got = ops.conv2d_max_freq_relu_mean(x, w, time_pad)
        torch.testing.assert_close(got, F.relu(expected).mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    for form in ("plain", "offsets", "onerow", "conv1d", "patches", "native"):   # and the map op's (those its shape has)
        with forms.pinned(form):
            got = ops.conv2d_max_freq(x, w, time_pad)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_patch_products_follow_bf16_autocast():
    from elmarc.frontends import ops

    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(2, 1, 30, 96, generator=g), torch.randn(6, 1, 3, 38, generator=g)
    expected = F.relu(F.conv2d(F.pad(x, (0, 0, 1, 1)), w).amax(dim=3)).mean(dim=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps = ops._patch_products_max(x, w, (1, 1))
        averaged = ops._patch_products_max(x, w, (1, 1), relu_mean=True)
    assert maps.dtype == torch.bfloat16 and averaged.dtype == torch.float32
    assert 0 < (averaged - expected).abs().max() < 0.02 * expected.abs().max()


@pytest.mark.parametrize("kernel,pad,length", [(165, (82, 82), 1376), (32, (15, 16), 1376), (7, (0, 0), 600), (300, (0, 0), 300)])
def test_conv1d_relu_mean_is_the_average_of_the_rectified_conv(kernel, pad, length):
    from elmarc.frontends import ops

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(4, 1, length, generator=g), torch.randn(9, 1, kernel, generator=g)
    expected = F.relu(F.conv1d(F.pad(x, pad), w)).mean(dim=2)
    for plain_up_to in (0, 2 ** 21):                      # the fused blocks, and the plain conv for small maps
        got = ops.conv1d_relu_mean(x, w, pad, block=256, plain_up_to=plain_up_to)
        assert got.shape == (4, 9)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["vgg", "7x96", "7x86", "timbral", "timbral_temporal", "timbral_time", "temporal",
                                  "custom", "sample_level", "frame_level", "frame_level_many"])
def test_faster_conv_forms_equal_the_direct_convolution(frontend_configs, name):
    from elmarc.frontends import ops

    model = build_frontend(frontend_configs[name], "small", seed=2)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 7001, generator=g) * 0.1 if model.input_kind == "waveform"      # 7001: not a multiple of 3
         else torch.randn(3, 1376, 96, generator=g) * 10 - 40)
    with torch.inference_mode():
        fast = model(x)
        with ops.direct_convolution():
            direct = model(x)
    torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,form", [("sample_level", "time_major"), ("sample_level", "blocked"),
                                       ("frame_level", "time_major"), ("frame_level_many", "time_major"),
                                       ("7x86", "maps offsets"), ("7x86", "maps patches"), ("7x86", "patches"),
                                       ("7x86", "maps native"), ("7x86", "native"), ("timbral", "native"),
                                       ("7x96", "maps conv1d"), ("timbral", "maps onerow"), ("timbral", "maps offsets"),
                                       ("vgg", "fused"), ("vgg", "shifted"), ("vgg", "native")])
def test_each_named_form_equals_the_direct_convolution(frontend_configs, name, form):
    """Every form a layer may be measured into (extract.conv_forms=auto), not only the rule's default."""
    from elmarc.frontends import forms, ops

    model = build_frontend(frontend_configs[name], "small", seed=2)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 7001, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(2, 1376, 96, generator=g) * 10 - 40)
    with torch.inference_mode():
        with forms.pinned(*form.split()):
            fast = model(x)
        with ops.direct_convolution():
            direct = model(x)
    torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-5)


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
    from elmarc.extract.stage import use_compile

    from helpers import compose_cfg

    def cfg(choice, cpu, gpu, width):
        return compose_cfg([f"extract.compile={choice}", f"frontend.compile.cpu={cpu}", f"frontend.compile.gpu={gpu}",
                            f"features={width}"])

    assert use_compile(cfg("null", True, True, "large")) and not use_compile(cfg("null", True, True, "small"))
    assert not use_compile(cfg("null", False, False, "large"))
    assert use_compile(cfg(True, False, False, "small")) and not use_compile(cfg(False, True, True, "large"))
    assert not use_compile(cfg("null", False, True, "large")) and use_compile(cfg("null", False, True, "large"), gpu=True)
    assert not use_compile(cfg("null", False, True, "small"), gpu=True)
    # the shipped flags: 7x96 and timbral compile at the large width on a GPU only (on a CPU their eager
    # patch-product forms are the faster)
    seven = compose_cfg(["frontend=7x96", "features=large"])
    assert not use_compile(seven) and use_compile(seven, gpu=True)
    timbral = compose_cfg(["frontend=timbral", "features=large"])
    assert not use_compile(timbral) and use_compile(timbral, gpu=True)


@pytest.mark.parametrize("name", ["vgg", "7x86", "timbral", "timbral_time", "temporal", "sample_level", "frame_level_many"])
def test_faster_forms_run_under_bf16_autocast_close_to_fp32(frontend_configs, name):
    """extract.precision=bf16-mixed is an option: the fused forms must take bf16 and stay near fp32."""
    model = build_frontend(frontend_configs[name], "small", seed=0)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 30001, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(2, 1376, 96, generator=g) * 10 - 40)
    with torch.inference_mode():
        fp32 = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x).float()
    assert bf16.shape == fp32.shape and torch.isfinite(bf16).all()
    assert 0 < (bf16 - fp32).abs().max() < 0.02 * fp32.abs().max()     # rounded (so it ran in bf16), not wrong


REFERENCE = Path(__file__).parent / "data" / "reference_features.npz"


@pytest.mark.parametrize("name", sorted(SPEC_DIMS) + ["mfcc"])
def test_features_equal_the_stored_reference(frontend_configs, example_inputs, name):
    """Features of every front-end at both widths (seed 1) equal values stored from an earlier release
    (tests/data/reference_features.npz), with the faster forms and with the plain convolutions.
    A change here changes every cache entry's meaning: bump elmarc.__version__ (part of the key) with it."""
    from elmarc.frontends import ops

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


@pytest.mark.parametrize("name", ["vgg", "7x86", "timbral_time", "sample_level"])
def test_measured_forms_are_chosen_remembered_and_give_the_same_features(frontend_configs, name, tmp_path, monkeypatch):
    """extract.conv_forms=auto: every layer with several forms times them on first use, keeps the fastest
    (plain always a candidate), stores the choice per machine, and a later process reuses it untimed."""
    from elmarc.frontends import forms, ops

    model = build_frontend(frontend_configs[name], "small", seed=2)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 20001, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(2, 1376, 96, generator=g) * 10 - 40)
    monkeypatch.setattr(forms, "_choices", {})
    monkeypatch.setattr(forms, "_timings", {})
    monkeypatch.setattr(forms, "_calibration", lambda device: 0.001)   # undisturbed (the disturbed case: test_same_bytes)
    forms.configure("auto", tmp_path)
    try:
        with torch.inference_mode():
            measured = model(x)
            with ops.direct_convolution():
                plain = model(x)
        timed = forms.timings()
        assert timed and all("plain" in secs and len(secs) >= 2 for secs in timed.values())
        # the fastest; a measurement the machine's load disturbed twice keeps nothing (the rule ran)
        assert all(forms.choices().get(k, min(secs, key=secs.get)) == min(secs, key=secs.get) for k, secs in timed.items())
        torch.testing.assert_close(measured, plain, rtol=1e-5, atol=1e-5)
        stored = json.loads((tmp_path / "conv_forms" / f"{forms.machine_id()}.json").read_text())
        assert float(stored.pop(forms.BASELINE)) == 0.001 and stored == forms.choices()
        # a later job on this machine: loads the choices, times nothing
        monkeypatch.setattr(forms, "_choices", {})
        monkeypatch.setattr(forms, "_timings", {})
        forms.configure("auto", tmp_path)
        with torch.inference_mode():
            model(x)
        assert forms.choices() == stored and not forms.timings()
    finally:
        forms.configure("fused")


def test_measuring_drops_a_candidate_that_cannot_win_after_two_rounds(monkeypatch):
    """Candidates are timed in interleaved rounds, the rule's pick first; one whose best of two rounds is over
    1.5x the best is not timed again, one that is close (or faster) is timed in every round, the fastest is chosen."""
    import time

    from elmarc.frontends import forms

    calls = {"rule": 0, "close": 0, "slow": 0}

    def sleeper(name, seconds):
        def fn():
            calls[name] += 1
            time.sleep(seconds)
        return fn

    candidates = {"slow": sleeper("slow", 0.1), "close": sleeper("close", 0.008), "rule": sleeper("rule", 0.01)}
    monkeypatch.setattr(forms, "_calibration", lambda device: 0.001)        # an undisturbed machine
    monkeypatch.setattr(forms, "_choices", {})
    monkeypatch.setattr(forms, "_timings", {})
    with forms.forced("auto"):
        forms.run("op", "k-drop", candidates, "rule", torch.device("cpu"))
    assert calls["slow"] == 3                                  # warm-up + two rounds
    assert calls["rule"] == 4 and calls["close"] == 5          # warm-up + 3 rounds (+ the run, for the chosen one)
    seconds = forms.timings()["k-drop|forms=close,rule,slow"]
    assert list(seconds)[0] == "rule" and seconds["slow"] >= 0.1
    assert forms.choices()["k-drop|forms=close,rule,slow"] == "close"


def test_conv_forms_modes_pick_plain_the_rule_or_the_measurement(monkeypatch):
    from elmarc.frontends import forms

    calls = []
    candidates = {"plain": lambda: calls.append("plain"), "fast": lambda: calls.append("fast")}
    cpu = torch.device("cpu")
    for mode, expected in (("plain", "plain"), ("fused", "fast")):
        with forms.forced(mode):
            forms.run("op", f"k-{mode}", candidates, "fast", cpu)
        assert calls[-1] == expected
    monkeypatch.setattr(forms, "_choices", {})
    monkeypatch.setattr(forms, "_time", lambda fn, device, **_: 0.001 if fn is candidates["plain"] else 0.002)
    with forms.forced("auto"):
        forms.run("op", "k-auto", candidates, "fast", cpu)
    assert forms.choices()["k-auto|forms=fast,plain"] == "plain" and calls[-1] == "plain"   # plain wins when faster
    # a stored choice holds for the candidates it was measured among: a new form is measured again
    candidates["newer"] = lambda: calls.append("newer")
    monkeypatch.setattr(forms, "_time", lambda fn, device, **_: 0.0005 if fn is candidates["newer"] else 0.001)
    with forms.forced("auto"):
        forms.run("op", "k-auto", candidates, "fast", cpu)
    assert forms.choices()["k-auto|forms=fast,newer,plain"] == "newer" and calls[-1] == "newer"
