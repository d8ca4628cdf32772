"""Feature maps along time (frontends.time_maps): averaged over all positions they are the front-end's output,
and pooling them per window is a plain mean (or standard deviation) over the positions in it."""
import numpy as np
import pytest
import torch

from elmarc.config import InputConfig, compose
from elmarc.frontends import build_frontend
from elmarc.frontends.time_maps import TimeMap, pool_windows, time_maps
from elmarc.hear import load_model

BUILT_IN = ["mfcc", "7x96", "7x86", "vgg", "timbral", "temporal", "timbral_temporal", "timbral_time",
            "sample_level", "frame_level", "frame_level_many"]
CFG = InputConfig()
SHAPE = {"n_samples": CFG.n_samples, "n_frames": CFG.n_frames, "n_mels": CFG.n_mels}


@pytest.mark.parametrize("name", BUILT_IN)
def test_maps_averaged_whole_are_the_front_ends_features(name):
    model = load_model(name, sample_rate=12000)
    frontend = model.frontend
    rng = np.random.default_rng(1)
    clips = [(rng.standard_normal(CFG.n_samples) * 0.1).astype(np.float32) for _ in range(2)]
    x = model.inputs(clips)
    x = x[:1] if isinstance(x, list) else x                  # MFCC maps come one clip at a time
    with torch.no_grad():
        expected = frontend(x)
    maps = time_maps(frontend, x)
    assert sum(m.values.shape[1] for m in maps) == frontend.feature_dim
    torch.testing.assert_close(torch.cat([m.pooled() for m in maps], dim=1), expected, rtol=2e-5, atol=2e-6)


def test_positions_sit_where_the_layers_put_them():
    """A click at one input frame peaks the 7x96 map at the position centred there, and sample_level's
    deepest map at the position whose centre is nearest the click."""
    frontend = build_frontend(compose(["frontend=7x96"]).frontend, "small", 0, SHAPE)
    mel = torch.full((1, 200, CFG.n_mels), -80.0)
    mel[0, 120] = 0.0
    (tm,) = time_maps(frontend, mel)
    response = (tm.values[0] - tm.values[0, :, :1]).abs().sum(dim=0)     # change from the silent positions
    touched = tm.centres()[response > 1e-4]
    assert touched.min() == 117 and touched.max() == 123                  # a 7-frame kernel: 120 +- 3


def test_pooling_is_the_mean_or_std_of_the_positions_in_each_window():
    g = torch.Generator().manual_seed(0)
    maps = [TimeMap(torch.randn(2, 3, 50, generator=g), 1.5, 2.0),
            TimeMap(torch.randn(2, 4, 7, generator=g) * 5 + 3, 10.0, 15.0, "std")]
    lo = torch.tensor([0.0, 20.0, 40.0, 11.0, 95.0])
    hi = torch.tensor([99.0, 30.0, 41.0, 12.0, 200.0])
    got = pool_windows(maps, lo, hi)
    assert got.shape == (2, 5, 7)
    for w in range(len(lo)):
        parts = []
        for tm in maps:
            c = tm.centres()
            inside = (c >= lo[w]) & (c <= hi[w])
            if not inside.any():                                          # nearest the window's middle
                inside = torch.zeros_like(inside)
                inside[(c - (lo[w] + hi[w]) / 2).abs().argmin()] = True
            v = tm.values[:, :, inside]
            parts.append(v.std(dim=2, unbiased=False) if tm.stat == "std" else v.mean(dim=2))
        torch.testing.assert_close(got[:, w], torch.cat(parts, dim=1), rtol=1e-5, atol=1e-5)


def test_declared_front_ends_have_no_maps():
    from importlib.resources import files

    from omegaconf import OmegaConf

    cfg = OmegaConf.load(files("elmarc.conf") / "frontend" / "custom.yaml")
    frontend = build_frontend(cfg, "small", 0, SHAPE)
    assert time_maps(frontend, torch.zeros(1, CFG.n_frames, CFG.n_mels)) is None
