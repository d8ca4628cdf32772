"""Real layouts: split sizes, labels, folds, clear errors, and the CLI end to end on fixture trees."""
import numpy as np
import pandas as pd
import pytest

from elmarc.datasets import DatasetError, build_dataset
from elmarc.datasets.ballroom import CLASSES

import fixtures
from helpers import run_cli, run_job


@pytest.fixture(scope="module")
def gtzan_root(tmp_path_factory):
    return fixtures.gtzan_tree(tmp_path_factory.mktemp("gtzan"))


def test_gtzan_split_sizes_and_labels(gtzan_root):
    src = build_dataset({"_target_": "elmarc.datasets.gtzan.build", "root": str(gtzan_root)})
    counts = src.clips.split.value_counts().to_dict()
    assert counts == {"train": 443, "valid": 197, "test": 290}
    assert src.scheme == "predefined"
    row = src.clips.set_index("clip_id").loc["blues.00029"]
    assert row.label == "blues" and row.split == "train" and row.path.endswith("genres/blues/blues.00029.au")
    assert sorted(src.clips.label.unique()) == ["blues", "classical", "country", "disco", "hiphop", "jazz",
                                                "metal", "pop", "reggae", "rock"]
    assert all(cid.startswith(lbl) for cid, lbl in zip(src.clips.clip_id, src.clips.label))


def test_gtzan_missing_files_named(tmp_path):
    root = fixtures.gtzan_tree(tmp_path / "g", drop=7)
    with pytest.raises(DatasetError) as err:
        build_dataset({"_target_": "elmarc.datasets.gtzan.build", "root": str(root)})
    msg = str(err.value)
    assert "7 of 930" in msg and "blues/blues.00029.au" in msg and "dataset.root" in msg and "genres/<genre>" in msg


def test_gtzan_md5_verification(tmp_path):
    import json

    from elmarc.datasets.layout import package_data

    root = fixtures.gtzan_tree(tmp_path / "g", suffix=".wav")
    with pytest.raises(DatasetError, match="md5"):
        build_dataset({"_target_": "elmarc.datasets.gtzan.build", "root": str(root), "verify_md5": True})
    index = json.loads(package_data("gtzan", "gtzan_genre_index_1.0.json").read_text())["tracks"]
    assert len(index) == 1000 and all(len(v["audio"][1]) == 32 for v in index.values())


def test_ballroom_folds_stratified_and_reproducible(tmp_path):
    root = fixtures.ballroom_tree(tmp_path / "b", per_class=4)
    cfg = {"_target_": "elmarc.datasets.ballroom.build", "root": str(root), "n_folds": 4, "fold_seed": 0}
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert len(a) == 13 * 4 and set(a.clips.label) == set(CLASSES)
    pd.testing.assert_frame_equal(a.clips, b.clips)
    per = a.clips.groupby(["label", "fold"]).size().unstack()
    assert (per == 1).all().all()                      # 4 clips per class over 4 folds: one each
    c = build_dataset({**cfg, "fold_seed": 1})
    assert not np.array_equal(a.clips.fold, c.clips.fold)


def test_ballroom_missing_class_folder(tmp_path):
    root = fixtures.ballroom_tree(tmp_path / "b", per_class=1)
    import shutil
    shutil.rmtree(root / "Jive")
    with pytest.raises(DatasetError, match="Jive"):
        build_dataset({"_target_": "elmarc.datasets.ballroom.build", "root": str(root)})


def test_urbansound_folds_from_csv(tmp_path):
    root = fixtures.urbansound_tree(tmp_path / "u")
    src = build_dataset({"_target_": "elmarc.datasets.urbansound8k.build", "root": str(root)})
    assert len(src) == 20 and sorted(src.clips.fold.unique()) == list(range(10))
    assert set(src.clips.label) == {"air_conditioner", "car_horn", "dog_bark"}
    (root / "metadata" / "UrbanSound8K.csv").unlink()
    with pytest.raises(DatasetError, match="metadata=packaged"):
        build_dataset({"_target_": "elmarc.datasets.urbansound8k.build", "root": str(root)})


def test_packaged_urbansound_metadata_is_official():
    import hashlib

    from elmarc.datasets.layout import package_data
    from elmarc.datasets.urbansound8k import read_metadata

    path = package_data("urbansound8k", "UrbanSound8K.csv")
    assert hashlib.md5(path.read_bytes()).hexdigest() == "5015c37ce7d54c0bb8cd40a0b5ee2074"
    meta = read_metadata(path)
    assert len(meta) == 8732 and sorted(meta.fold.unique()) == list(range(1, 11))


def test_esc10_and_esc50_layouts(tmp_path):
    src = build_dataset({"_target_": "elmarc.datasets.esc.build_esc10", "root": str(fixtures.esc10_tree(tmp_path / "e10"))})
    assert len(src) == 30 and sorted(src.clips.fold.unique()) == [0, 1, 2, 3, 4]
    assert set(src.clips.label) == {"Dog bark", "Rain", "Sea waves"}
    assert (src.clips.fold == src.clips.clip_id.str.split("/").str[1].str[0].astype(int) - 1).all()
    root50 = fixtures.esc50_tree(tmp_path / "e50")
    e50 = build_dataset({"_target_": "elmarc.datasets.esc.build_esc50", "root": str(root50)})
    e10 = build_dataset({"_target_": "elmarc.datasets.esc.build_esc10", "root": str(root50)})
    assert len(e50) == 30 and len(e10) == 20 and set(e10.clips.label) == {"dog", "rooster"}


def test_fsdd_layout_folds_by_speaker_and_subset(tmp_path):
    root = fixtures.fsdd_tree(tmp_path / "fsdd")
    src = build_dataset({"_target_": "elmarc.datasets.fsdd.build", "root": str(root), "takes_per_digit": None})
    assert len(src) == 27 and set(src.clips.label) == {"0", "1", "2"}
    speaker = src.clips.clip_id.str.split("_").str[1]
    assert (src.clips.fold == speaker.map({"george": 0, "jackson": 1, "lucas": 2})).all()   # leave one speaker out
    sub = build_dataset({"_target_": "elmarc.datasets.fsdd.build", "root": str(root), "takes_per_digit": 2})
    assert len(sub) == 18 and set(sub.clips.clip_id.str.split("_").str[2]) == {"0", "1"}
    (root / "recordings" / "notes.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"notes.wav is not named \{digit\}_\{speaker\}_\{take\}.wav"):
        build_dataset({"_target_": "elmarc.datasets.fsdd.build", "root": str(root), "takes_per_digit": None})


def test_folder_dataset_and_list(tmp_path):
    root = fixtures.folder_tree(tmp_path / "f")
    src = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root), "n_folds": 3})
    assert len(src) == 18 and set(src.clips.label) == {"bird", "engine", "voice"}
    assert (src.clips.groupby(["label", "fold"]).size() == 2).all()
    files = sorted(p.relative_to(root) for p in root.rglob("*.wav"))
    lst = tmp_path / "list.csv"
    pd.DataFrame({"path": [str(f) for f in files], "label": [f.parts[0] for f in files],
                  "split": ["train", "valid", "test"] * 2}).to_csv(lst, index=False)
    listed = build_dataset({"_target_": "elmarc.datasets.folder.build", "root": str(root), "list": str(lst)})
    assert listed.scheme == "predefined" and len(listed) == 6


@pytest.mark.parametrize("name", ["gtzan", "ballroom", "urbansound8k", "esc10", "esc50", "fsdd", "folder"])
def test_missing_root_is_a_clear_error(name, tmp_path):
    with pytest.raises(DatasetError) as err:
        run_job([f"dataset={name}", f"dataset.root={tmp_path}/nonexistent", "frontend=mfcc"], tmp_path / "r", tmp_path / "c")
    text = str(err.value)
    assert name in text and "nonexistent" in text and "dataset.root" in text and "Expected layout" in text


@pytest.mark.slow
def test_missing_root_on_the_command_line_exits_2_without_a_traceback(tmp_path):
    out = run_cli(["dataset=gtzan", f"dataset.root={tmp_path}/nonexistent", "frontend=mfcc",
                   f"hydra.run.dir={tmp_path / 'r'}"], tmp_path / "cache", check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "elmarc: error: dataset 'gtzan'" in out.stderr and "dataset.root=" in out.stderr


@pytest.mark.slow
def test_end_to_end_on_real_layouts(tmp_path, gtzan_root):
    trees = {"gtzan": gtzan_root, "urbansound8k": fixtures.urbansound_tree(tmp_path / "u"),
             "esc10": fixtures.esc10_tree(tmp_path / "e"), "fsdd": fixtures.fsdd_tree(tmp_path / "s"),
             "folder": fixtures.folder_tree(tmp_path / "f")}
    for name, root in trees.items():
        run_dir = tmp_path / f"run_{name}"
        run_job([f"dataset={name}", f"dataset.root={root}", "frontend=mfcc", "extract.progress=false"]
                + (["dataset.n_folds=3"] if name == "folder" else []), run_dir, tmp_path / "cache")
        rows = pd.read_csv(run_dir / "results.csv")
        folds = pd.read_csv(run_dir / "clips.csv")
        assert rows.accuracy.between(0, 1).all()
        if name == "gtzan":
            assert rows.protocol.tolist() == ["predefined"] and rows.n_train.tolist() == [443] and rows.n_test.tolist() == [290]
        else:
            assert rows.protocol.unique().tolist() == ["paper"] and len(rows) == folds.fold.nunique()
        # class-dependent tones: far above chance for the MFCC baseline
        assert rows.accuracy.mean() > 0.8, (name, rows.accuracy.tolist())


@pytest.mark.slow
def test_predefined_split_report_uses_mcnemar(tmp_path, gtzan_root):
    from helpers import run_sweep

    sweep = run_sweep([["dataset=gtzan", f"dataset.root={gtzan_root}", f"frontend={f}", "extract.progress=false"]
                       for f in ("mfcc", "7x96")], tmp_path / "sweep", tmp_path / "cache")
    summary = pd.read_csv(sweep / "summary.csv")
    assert set(summary.protocol_test) == {"McNemar exact, Holm"}
    assert summary.p_protocol.between(0, 1).all() and (summary.ci_low <= summary["mean"]).all()
    preds = pd.read_csv(sweep / "0" / "predictions.csv")
    assert len(preds) == 290 and set(preds.fold) == {"test"}              # every GTZAN test clip, once
