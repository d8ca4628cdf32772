"""HEAR 2021 in both directions: elmarc's front-ends as a HEAR module, and a HEAR module as a front-end."""
import numpy as np
import pandas as pd
import pytest
import torch

import elmarc.hear as hear
from elmarc.errors import UserError

from helpers import TINY, compose_cfg, run_job, run_sweep

BUILT_IN = ["mfcc", "7x96", "7x86", "vgg", "timbral", "temporal", "timbral_temporal", "timbral_time",
            "sample_level", "frame_level", "frame_level_many"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_front_end_passes_the_hear_validators_checks(name, tmp_path):
    """hear-validator's checks, both versions (tests/hear_checks.py, written from its source), with the spec as
    a file, as `hear-validator elmarc.hear --model <file>` passes it."""
    from hear_checks import validate

    spec = tmp_path / "spec.txt"
    spec.write_text(f"{name}:small:0\n")
    for version in ("2021.0.2", "2021.0.6"):
        warnings = validate("elmarc.hear", str(spec), version)
        assert not any("50ms" in w or "end at" in w or "begin at" in w for w in warnings), warnings


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_window_spanning_a_whole_clip_is_its_scene_embedding(name):
    """Timestamp embeddings pool the whole clip's maps, computed once: over a clip of the paper's input length
    (waveform: 350 000 samples; log-mel: 1376 frames) a window spanning it gives the scene embedding."""
    model = hear.load_model(name, window_ms=1e9, sample_rate=12000)
    n = 350000 if model.frontend.input_kind == "waveform" else 1375 * 256
    audio = (torch.rand(2, n, generator=torch.Generator().manual_seed(0)) * 2 - 1).float() * 0.3
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, len(ts[0]), model.timestamp_embedding_size) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[:, 0], hear.get_scene_embeddings(audio, model), rtol=2e-5, atol=2e-6)


def test_timestamps_every_hop_within_the_clip_at_a_hear_rate():
    model = hear.load_model("7x96")
    assert model.sample_rate == 16000 and model.hop_ms == 50.0
    emb, ts = hear.get_timestamp_embeddings(torch.rand(3, 16000 + 8000) * 2 - 1, model)       # 1.5 s
    assert ts.shape == (3, 30) and ts[0, :3].tolist() == [0.0, 50.0, 100.0] and ts[0, -1] == 1450.0
    assert torch.equal(ts[0], ts[2]) and emb.shape == (3, 30, 160) and torch.isfinite(emb).all()
    short = hear.get_timestamp_embeddings(torch.rand(1, 5) * 2 - 1, model)                    # under a hop
    assert short[1].tolist() == [[0.0]]
    with pytest.raises(ValueError, match="not a HEAR rate"):
        hear.load_model("7x96", sample_rate=8000)


def test_audio_at_a_hear_rate_is_resampled_as_elmarcs_loader_does():
    """A clip at 16 kHz embeds as the clip elmarc's loader makes from it (soxr HQ to 12 kHz)."""
    from elmarc.audio import resample

    clip = np.random.default_rng(0).uniform(-1, 1, 16000 * 2).astype(np.float32)
    at_16k = hear.get_scene_embeddings(torch.from_numpy(clip)[None], hear.load_model("timbral"))
    at_12k = hear.get_scene_embeddings(torch.from_numpy(resample(clip, 16000, 12000))[None],
                                       hear.load_model("timbral", sample_rate=12000))
    assert torch.equal(at_16k, at_12k)


def test_declared_front_ends_run_each_window(tmp_path):
    from importlib.resources import files

    declared = str(files("elmarc.conf") / "frontend" / "custom.yaml")
    model = hear.load_model(f"{declared}:small:0", hop_ms=500.0, sample_rate=12000)
    audio = (torch.rand(1, 18000, generator=torch.Generator().manual_seed(0)) * 2 - 1).float()
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert ts[0].tolist() == [0.0, 500.0, 1000.0]
    first = hear.get_scene_embeddings(audio[:, :6000], model)          # the window at 0 ms: the first half second
    torch.testing.assert_close(emb[:, 0], first, rtol=1e-5, atol=1e-5)


def test_model_spec_width_seed_and_declared_yaml(tmp_path):
    assert hear.parse_model_spec("") == ("vgg", "small", 0)
    assert hear.parse_model_spec("vgg:large:1") == ("vgg", "large", 1)
    assert hear.load_model("7x96:large").scene_embedding_size == 3585
    audio = torch.rand(1, 6000) * 2 - 1
    a, b, c = (hear.get_scene_embeddings(audio, hear.load_model(s)) for s in ("7x96:small:0", "7x96:small:0", "7x96:small:1"))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    from importlib.resources import files

    declared = str(files("elmarc.conf") / "frontend" / "custom.yaml")
    assert hear.load_model(f"{declared}:small:0").scene_embedding_size == 160
    spec_file = tmp_path / "model.txt"                  # what hear-eval-kit's runner passes as --model
    spec_file.write_text("7x96:small:1\n")
    assert torch.equal(hear.get_scene_embeddings(audio, hear.load_model(str(spec_file))), c)
    keywords = hear.load_model(frontend="7x96", seed=1)                 # its --model-options
    assert keywords.spec == "7x96:small:1" and torch.equal(hear.get_scene_embeddings(audio, keywords), c)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["7x96", "sample_level", "mfcc"])
def test_scene_embeddings_are_the_cached_features(tmp_path, name):
    from elmarc.extract.audio_cache import AudioCache
    from elmarc.job import plan_job

    overrides = [*TINY, f"frontend={name}", "stage=extract"]
    run_job(overrides, tmp_path / "run", tmp_path / "cache")
    job = plan_job(compose_cfg(overrides, tmp_path / "cache"))
    source = job.source
    X, _ = job.features.load()
    audio = AudioCache(tmp_path / "cache", source, job.inputs)              # the 12 kHz clips extraction read
    model = hear.load_model(name, sample_rate=12000)
    for i in range(0, len(source), 7):
        emb = hear.get_scene_embeddings(torch.from_numpy(audio.load(i))[None], model)
        np.testing.assert_allclose(emb[0].numpy(), X[i], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- HEAR module as a front-end
TINYMEL = ["frontend=hear", "frontend.model.module=hearmods.tinymel"]


@pytest.mark.slow
def test_hear_module_beside_random_front_ends_to_the_report(tmp_path):
    cache = tmp_path / "cache"
    jobs = [[*TINY, "dataset.task=timbre", *front, f"seed={s}"] for front in (TINYMEL, ["frontend=7x96"]) for s in (0, 1)]
    sweep = run_sweep(jobs, tmp_path / "sweep", cache)
    rows = pd.read_csv(sweep / "results.csv")
    assert set(rows.frontend) == {"hear:hearmods.tinymel", "7x96"}
    mod = rows[rows.frontend == "hear:hearmods.tinymel"]
    assert set(mod.seeded.astype(str)) == {"False"}                      # a module's weights are its own: no seed
    assert mod.accuracy.mean() > 0.5                                     # 4 timbres: chance 0.25
    assert "hear:hearmods.tinymel" in (sweep / "report.md").read_text()
    entries = sorted(p.name for p in (cache / "features").iterdir())
    assert len(entries) == 3 and sum("hear" in e for e in entries) == 1  # one entry for both seeds
    audio = sorted(p.name for p in (cache / "audio").iterdir())
    assert len(audio) == 2                                               # clips decoded at 16 kHz for it, 12 kHz for 7x96
    import json

    spec = json.loads(next(p for p in (cache / "features").iterdir() if "hear" in p.name).joinpath("spec.json").read_text())
    assert spec["frontend_identity"]["module"] == "hearmods.tinymel" and spec["frontend_identity"]["version"] == "0.1"
    assert spec["input"]["sample_rate"] == 16000


def test_model_file_hash_is_in_the_key(tmp_path):
    from elmarc.job import plan_job

    keys = []
    for seed_text in ("1", "2"):
        f = tmp_path / f"weights{seed_text}.txt"
        f.write_text(seed_text)
        job = plan_job(compose_cfg([*TINY, *TINYMEL, f"frontend.model.model_file={f}"], tmp_path / "cache"))
        keys.append(job.features.spec["frontend_identity"]["model_file_sha256"])
    assert keys[0] != keys[1] and all(len(k) == 64 for k in keys)


@pytest.mark.parametrize("defect,message", [
    ("shape", r"shape \(1, 7\).*\(1, scene_embedding_size=8\)"),
    ("dtype", "torch.float64; the API needs torch.float32"),
    ("nan", "NaN or infinite"),
    # its own failures: a TypeError inside the module is the module's, not a misspelt config key
    ("load", r"HEAR module 'hearmods.broken': load_model raised TypeError: melspectrogram\(\) takes 0 positional"),
    ("raise", r"HEAR module 'hearmods.broken': get_scene_embeddings raised ValueError: the window is longer")])
def test_a_module_that_breaks_the_api_or_fails_gets_a_clear_error_and_no_cache_entry(tmp_path, defect, message):
    f = tmp_path / "defect.txt"
    f.write_text(defect)
    with pytest.raises(UserError, match=message) as info:
        run_job([*TINY, "frontend=hear", "frontend.model.module=hearmods.broken", f"frontend.model.model_file={f}"],
                tmp_path / "run", tmp_path / "cache")
    assert "hearmods.broken" in str(info.value) and "frontend.model:" not in str(info.value)
    assert not (tmp_path / "cache" / "features").exists() or not any((tmp_path / "cache" / "features").iterdir())


def test_load_model_works_inside_a_running_hydra_app():
    """HEAR tools, and elmarc itself (frontend=hear frontend.model.module=elmarc.hear), call load_model while a
    Hydra app runs: it composes its own config and leaves the app's Hydra state as it was."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_module("elmarc.conf", version_base="1.3"):
        before = GlobalHydra.instance().hydra
        model = hear.load_model("7x96:small:1")
        assert GlobalHydra.instance().is_initialized() and GlobalHydra.instance().hydra is not None
        assert type(GlobalHydra.instance().hydra) is type(before)
    assert model.spec == "7x96:small:1"


def test_elmarc_as_a_hear_module_is_a_front_end(tmp_path):
    run_job([*TINY, "frontend=hear", "frontend.model.module=elmarc.hear"], tmp_path / "run", tmp_path / "cache")
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(rows.frontend) == {"hear:elmarc.hear"} and rows.accuracy.notna().all()


def test_an_edited_local_module_is_extracted_again(tmp_path, monkeypatch, caplog):
    """A module without a version: its source is in the key, so editing it makes new features."""
    import shutil
    import sys
    from pathlib import Path

    from helpers import log_text

    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "localmel.py"
    shutil.copy(Path(__file__).parent / "hearmods" / "tinymel.py", source)
    source.write_text(source.read_text().replace('__version__ = "0.1"\n', ""))
    job = [*TINY, "frontend=hear", "frontend.model.module=localmel", "stage=extract"]
    run_job(job, tmp_path / "a", tmp_path / "cache")
    source.write_text(source.read_text() + "\nN_MELS = N_MELS // 2\n")      # an edit that changes the embeddings
    sys.modules.pop("localmel", None)                                     # a new process imports it afresh
    caplog.set_level("INFO")
    run_job(job, tmp_path / "b", tmp_path / "cache")
    assert "nothing to extract" not in log_text(caplog)
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2


def test_scene_embeddings_follow_the_models_device():
    """HEAR's runners move the model to a GPU when there is one: the inputs go where its weights are."""
    model = hear.load_model("7x96")
    model.frontend.to("meta")
    seen = []
    model.frontend.forward = lambda x: seen.append(x.device) or torch.zeros(x.shape[0], model.scene_embedding_size)
    hear.get_scene_embeddings(torch.zeros(2, 6000), model)
    assert seen == [torch.device("meta")]


def test_describe_with_a_bad_module_says_one_line_and_exits_2(capsys):
    from elmarc.describe import main as describe_main

    assert describe_main(["--hear", "no_such_hear_module"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elmarc.describe: error:") and "no_such_hear_module" in err and "Traceback" not in err


def test_a_module_that_does_not_import_is_named(tmp_path):
    with pytest.raises(UserError, match="'no_such_hear_module' cannot be imported"):
        run_job([*TINY, "frontend=hear", "frontend.model.module=no_such_hear_module"], tmp_path / "run", tmp_path / "cache")


def test_describe_names_a_hear_module():
    from elmarc.describe import describe, frontend_configs, hear_config, to_markdown

    table = to_markdown(describe(dict([hear_config("hearmods.tinymel", frontend_configs()["hear"])])))
    line = next(ln for ln in table.splitlines() if "hear:hearmods.tinymel" in ln)
    assert "| 24 | 768 |" in line                                          # 24 features, a 32 x 24 projection


def test_a_task_in_hears_layout_is_read_at_the_modules_rate(tmp_path):
    """hear-eval-kit reads tasks/<task>/<model.sample_rate>/<split>/ as published, with no resampling
    (AudioFileDataset asserts the file's rate): the module's rate is one HEAR publishes."""
    import json

    import soundfile as sf

    from fixtures import hear_task_tree

    task = hear_task_tree(tmp_path / "tasks", rates=(16000, 48000))
    model = hear.load_model("timbral")
    for split in json.loads((task / "task_metadata.json").read_text())["splits"]:
        names = list(json.loads((task / f"{split}.json").read_text()))
        audio = []
        for name in names:
            x, sr = sf.read(task / str(model.sample_rate) / split / name, dtype=np.float32)
            assert sr == model.sample_rate
            audio.append(x)
        emb = hear.get_scene_embeddings(torch.from_numpy(np.stack(audio)), model)
        assert emb.shape == (len(names), model.scene_embedding_size) and torch.isfinite(emb).all()


@pytest.mark.slow
def test_heareval_runner_embeds_a_task_in_hears_layout(tmp_path):
    """hear-eval-kit's own embedding runner, in-process, where it is installed (it needs TensorFlow): each
    spec given as --model-options gets its own folder."""
    import json

    runner = pytest.importorskip("heareval.embeddings.runner").runner
    from fixtures import hear_task_tree

    hear_task_tree(tmp_path / "tasks")
    for options in ({"frontend": "7x96"}, {"frontend": "7x96", "seed": 1}):
        runner.main(["elmarc.hear", "--tasks-dir", str(tmp_path / "tasks"), "--embeddings-dir", str(tmp_path / "emb"),
                     "--model-options", json.dumps(options)], standalone_mode=False)
    folders = sorted(p.name for p in (tmp_path / "emb").iterdir())
    assert folders == ["elmarc.hear-frontend=7x96", "elmarc.hear-frontend=7x96-seed=1"]
    dims = [json.loads((tmp_path / "emb" / f / "tinytones" / "fold00.embedding-dimensions.json").read_text())
            for f in folders]
    assert dims == [[4, 160], [4, 160]]


def test_the_real_hear_validator_where_it_is_installed(tmp_path, capsys):
    """hear-validator itself, in-process, where it installs (it needs TensorFlow)."""
    validate = pytest.importorskip("hearvalidator.validate")
    spec = tmp_path / "spec.txt"
    spec.write_text("temporal:small:0\n")
    validate.ValidateModel("elmarc.hear", str(spec), device="cpu")()
    assert "Checking get_scene_embeddings" in capsys.readouterr().out
