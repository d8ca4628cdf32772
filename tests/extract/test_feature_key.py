"""The features key: it covers what makes the features, and only that."""
import pytest

from elmarc.datasets import build_dataset
from elmarc.job import plan_job

import fixtures
from helpers import compose_cfg


def key_for(overrides):
    return plan_job(compose_cfg(["dataset.n_per_class=5", *overrides], "/tmp/c")).features.key


@pytest.mark.slow
def test_cache_key_covers_what_makes_the_features():
    base = key_for(["frontend=vgg"])
    assert key_for(["frontend=vgg"]) == base
    changed = [["frontend=vgg", "seed=1"], ["frontend=vgg", "features=large"], ["frontend=7x96"],
               ["frontend=vgg", "input.n_mels=64"], ["frontend=vgg", "input.top_db=60"],
               ["frontend=vgg", "input.resampler=polyphase"], ["frontend=vgg", "dataset.n_per_class=6"],
               ["frontend=vgg", "dataset.task=timbre"], ["frontend=vgg", "dataset.data_seed=7"],
               ["frontend=vgg", "extract.precision=bf16-mixed"], ["frontend=vgg", "extract.conv_forms=plain"],
               ["frontend=vgg", "extract.compile=true"], ["frontend=vgg", "extract.tf32=true"]]
    keys = [key_for(o) for o in changed]
    assert base not in keys and len(set(keys)) == len(keys)
    # what does not change features does not change the key
    same = [["frontend=vgg", "extract.batch_size=3"], ["frontend=vgg", "extract.num_workers=0"], ["frontend=vgg", "extract.threads=1"],
            ["frontend=vgg", "classifier=elm"], ["frontend=vgg", "classify.standardize=true"]]
    assert all(key_for(o) == base for o in same)
    # the MFCC baseline has no weights: every seed and width shares one entry
    assert key_for(["frontend=mfcc"]) == key_for(["frontend=mfcc", "seed=2", "features=large"])


def test_cache_key_covers_the_file_list(tmp_path):
    root = fixtures.folder_tree(tmp_path / "f")
    cfg = {"_target_": "elmarc.datasets.folder.build", "root": str(root), "n_folds": 3}   # over the schema's defaults
    a = build_dataset(cfg).identity()
    fixtures.write_audio(root / "bird" / "extra.wav", fixtures.tone(0, 800, 8000, 1), 8000)
    b = build_dataset(cfg).identity()
    target = root / "bird" / "extra.wav"
    fixtures.write_audio(target, fixtures.tone(0, 1600, 8000, 1), 8000)            # same name, new content size
    c = build_dataset(cfg).identity()
    fixtures.write_audio(target, fixtures.tone(0, 1600, 8000, 2), 8000)            # same name and size, new content
    d = build_dataset(cfg).identity()
    assert len({str(x) for x in (a, b, c, d)}) == 4


