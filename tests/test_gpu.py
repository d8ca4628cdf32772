"""The GPU path: same features as the CPU (fp32, TF32 off), through the model and through the CLI.

The CUDA tests are skipped on machines without a GPU (CI has none); they run where one is lent.
"""
import glob

import numpy as np
import pytest
import torch

from elmarc.describe import frontend_configs
from elmarc.extract.loop import float32_math
from elmarc.frontends import build_frontend

from helpers import TINY, run_cli

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_float32_math_switches_tf32_off_and_restores_the_flags():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with float32_math(False):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with float32_math(True):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def _features(model, x, device, tf32=False):
    with torch.inference_mode(), float32_math(tf32):
        return model.to(device)(x.to(device)).float().cpu().numpy()


@cuda
@pytest.mark.parametrize("name", ["vgg", "7x86", "7x96", "timbral", "temporal", "sample_level", "frame_level"])
def test_gpu_features_equal_cpu_features(name):
    cfg = frontend_configs()[name]
    model = build_frontend(cfg, "small", seed=1)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 350000, generator=g) * 0.1 if model.input_kind == "waveform"
         else torch.randn(3, 1376, 96, generator=g) * 10 - 40)
    cpu = _features(model, x, "cpu")
    gpu = _features(model, x, "cuda")
    scale = np.abs(cpu).max()
    assert cpu.shape == gpu.shape and np.isfinite(gpu).all()
    # fp32 on both: rounding only (TF32 would be ~1e-3)
    assert np.abs(gpu - cpu).max() <= 1e-4 * scale, (name, np.abs(gpu - cpu).max() / scale)


@cuda
def test_cli_on_gpu_gives_the_cpu_features(tmp_path):
    args = [*TINY, "frontend=7x86", "classifier=elm"]
    run_cli([*args, "extract.accelerator=cpu", f"hydra.run.dir={tmp_path / 'cpu'}"], tmp_path / "cache_cpu")
    out = run_cli([*args, "extract.accelerator=gpu", f"hydra.run.dir={tmp_path / 'gpu'}"], tmp_path / "cache_gpu")
    assert "report written to" in out.stdout
    (cpu_file,) = glob.glob(str(tmp_path / "cache_cpu" / "features" / "*" / "features.npy"))
    (gpu_file,) = glob.glob(str(tmp_path / "cache_gpu" / "features" / "*" / "features.npy"))
    cpu, gpu = np.load(cpu_file), np.load(gpu_file)
    assert cpu.shape == gpu.shape and np.abs(gpu - cpu).max() <= 1e-4 * np.abs(cpu).max()


def _train_on(accelerator, tmp_path):
    from helpers import run_job

    rhythm = [*TINY, "dataset.task=rhythm", "dataset.n_per_class=8", "input.n_frames=344", "recipe=tiny",
              "recipe.progress=false", "recipe.max_epochs=2", "frontend=temporal", "stage='extract,train'",
              f"recipe.accelerator={accelerator}"]
    run_job(rhythm, tmp_path / accelerator, tmp_path / f"cache_{accelerator}")
    import pandas as pd

    return pd.read_csv(tmp_path / accelerator / "results.csv")


@cuda
def test_the_train_stage_runs_on_the_gpu(tmp_path):
    rows = _train_on("gpu", tmp_path)          # the same call with "cpu" is what tests/test_train.py runs
    trained = rows[rows.classifier == "trained"]
    assert len(trained) == 3 and trained.accuracy.between(0, 1).all() and (trained.grid_seconds > 0).all()
    assert set(rows.classifier) == {"trained", "trained@1epoch", "svm@trained"}
