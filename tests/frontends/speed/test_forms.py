"""The speed wing: every form of every layer gives the plain form's values, and the policy picks the form."""
import json

import pytest
import torch
import torch.nn.functional as F

from elmarc.frontends import build_frontend
from elmarc.frontends.speed import SpeedPolicy, current, measure, ops
from elmarc.frontends.speed.store import machine_id


@pytest.mark.parametrize("shape,time_pad", [((5, 1, 7, 86), (3, 3)), ((4, 1, 3, 38), (1, 1)), ((6, 1, 1, 38), (0, 0)),
                                            ((3, 1, 7, 96), (0, 0)), ((2, 1, 2, 50), (0, 1))])
def test_conv2d_max_freq_is_the_conv_then_the_max_over_frequency(shape, time_pad):
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
        with current().with_pinned(form):
            got = ops.conv2d_max_freq_relu_mean(x, w, time_pad)
        torch.testing.assert_close(got, F.relu(expected).mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    for form in ("plain", "offsets", "onerow", "conv1d", "patches", "native"):   # and the map op's (those its shape has)
        with current().with_pinned(form):
            got = ops.conv2d_max_freq(x, w, time_pad)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_patch_products_follow_bf16_autocast():
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
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(4, 1, length, generator=g), torch.randn(9, 1, kernel, generator=g)
    expected = F.relu(F.conv1d(F.pad(x, pad), w)).mean(dim=2)
    for form in ("window_products", "plain"):
        with SpeedPolicy().with_pinned(form):
            got = ops.conv1d_relu_mean(x, w, pad, block=256)
        assert got.shape == (4, 9)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["vgg", "7x96", "7x86", "timbral", "timbral_temporal", "timbral_time", "temporal",
                                  "custom", "sample_level", "frame_level", "frame_level_many"])
def test_faster_conv_forms_equal_the_direct_convolution(frontend_configs, name):
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
                                       ("vgg", "one_channel"), ("vgg", "shifted"), ("vgg", "native")])
def test_each_named_form_equals_the_direct_convolution(frontend_configs, name, form):
    """Every form a layer may be measured into (extract.conv_forms=auto), not only the rule's default."""
    model = build_frontend(frontend_configs[name], "small", seed=2)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 7001, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(2, 1376, 96, generator=g) * 10 - 40)
    with torch.inference_mode():
        with current().with_pinned(*form.split()):
            fast = model(x)
        with ops.direct_convolution():
            direct = model(x)
    torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["vgg", "7x86", "timbral", "timbral_time", "temporal", "sample_level", "frame_level_many"])
def test_faster_forms_run_under_bf16_autocast_close_to_fp32(frontend_configs, name):
    """extract.precision=bf16-mixed is an option: the faster forms must take bf16 and stay near fp32."""
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


@pytest.mark.parametrize("name", ["vgg", "7x86", "timbral_time", "sample_level"])
def test_measured_forms_are_chosen_remembered_and_give_the_same_features(frontend_configs, name, tmp_path, monkeypatch):
    """extract.conv_forms=auto: every layer with several forms times them on first use, keeps the fastest
    (plain always a candidate), stores the choice per machine, and a later job reuses it untimed."""
    model = build_frontend(frontend_configs[name], "small", seed=2)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 20001, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(2, 1376, 96, generator=g) * 10 - 40)
    monkeypatch.setattr(measure, "calibration", lambda device: 0.001)   # undisturbed (the disturbed case: test_same_bytes)
    policy = SpeedPolicy("auto", cache_dir=tmp_path)
    with torch.inference_mode():
        with policy.active():
            measured = model(x)
        with ops.direct_convolution():
            plain = model(x)
    timed = policy.timings
    assert timed and all("plain" in secs and len(secs) >= 2 for secs in timed.values())
    # the fastest; a measurement the machine's load disturbed twice keeps nothing (the rule ran)
    assert all(policy.choices.get(k, min(secs, key=secs.get)) == min(secs, key=secs.get) for k, secs in timed.items())
    torch.testing.assert_close(measured, plain, rtol=1e-5, atol=1e-5)
    stored = json.loads((tmp_path / "conv_forms" / f"{machine_id()}.json").read_text())
    assert float(stored.pop(measure.BASELINE)) == 0.001 and stored == policy.choices
    # a later job on this machine: loads the choices, times nothing
    later = SpeedPolicy("auto", cache_dir=tmp_path)
    with torch.inference_mode(), later.active():
        model(x)
    assert later.choices == stored and not later.timings


def test_measuring_drops_a_candidate_that_cannot_win_after_two_rounds(monkeypatch):
    """Candidates are timed in interleaved rounds, the rule's pick first; one whose best of two rounds is over
    1.5x the best is not timed again, one that is close (or faster) is timed in every round, the fastest is chosen."""
    import time

    calls = {"rule": 0, "close": 0, "slow": 0}

    def sleeper(name, seconds):
        def fn():
            calls[name] += 1
            time.sleep(seconds)
        return fn

    candidates = {"slow": sleeper("slow", 0.1), "close": sleeper("close", 0.008), "rule": sleeper("rule", 0.01)}
    monkeypatch.setattr(measure, "calibration", lambda device: 0.001)        # an undisturbed machine
    policy = SpeedPolicy("auto")
    policy.run("op", "k-drop", candidates, "rule", torch.device("cpu"))
    assert calls["slow"] == 3                                  # warm-up + two rounds
    assert calls["rule"] == 4 and calls["close"] == 5          # warm-up + 3 rounds (+ the run, for the chosen one)
    seconds = policy.timings["k-drop|forms=close,rule,slow"]
    assert list(seconds)[0] == "rule" and seconds["slow"] >= 0.1
    assert policy.choices["k-drop|forms=close,rule,slow"] == "close"


def test_conv_forms_modes_pick_plain_the_rule_or_the_measurement(monkeypatch):
    calls = []
    candidates = {"plain": lambda: calls.append("plain"), "fast": lambda: calls.append("fast")}
    cpu = torch.device("cpu")
    for mode, expected in (("plain", "plain"), ("rule", "fast")):
        SpeedPolicy(mode).run("op", f"k-{mode}", candidates, "fast", cpu)
        assert calls[-1] == expected
    monkeypatch.setattr(measure, "seconds_of", lambda fn, device, **_: 0.001 if fn is candidates["plain"] else 0.002)
    policy = SpeedPolicy("auto")
    policy.run("op", "k-auto", candidates, "fast", cpu)
    assert policy.choices["k-auto|forms=fast,plain"] == "plain" and calls[-1] == "plain"   # plain wins when faster
    # a stored choice holds for the candidates it was measured among: a new form is measured again
    candidates["newer"] = lambda: calls.append("newer")
    monkeypatch.setattr(measure, "seconds_of", lambda fn, device, **_: 0.0005 if fn is candidates["newer"] else 0.001)
    policy.run("op", "k-auto", candidates, "fast", cpu)
    assert policy.choices["k-auto|forms=fast,newer,plain"] == "newer" and calls[-1] == "newer"


def test_a_policy_holds_for_its_block_only_and_models_see_no_setting():
    """The active policy is the block's: outside every block the rule runs; a nested block's policy ends with it."""
    calls = []
    candidates = {"plain": lambda: calls.append("plain"), "fast": lambda: calls.append("fast")}
    cpu = torch.device("cpu")
    assert current().mode == "rule"
    with SpeedPolicy("plain").active():
        current().run("op", "k", candidates, "fast", cpu)
        with current().using("rule"):
            current().run("op", "k", candidates, "fast", cpu)
        current().run("op", "k", candidates, "fast", cpu)
    current().run("op", "k", candidates, "fast", cpu)
    assert calls == ["plain", "fast", "plain", "fast"]
    with SpeedPolicy("rule").frozen({"k": "plain"}):
        current().run("op", "k", candidates, "fast", cpu)
        current().run("op", "other", candidates, "fast", cpu)       # not in the plan: the rule's
    assert calls[-2:] == ["plain", "fast"]
