"""Small fixture trees in each dataset's real, published layout, with tiny real audio files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from elmarc.datasets.ballroom import CLASSES as BALLROOM
from elmarc.datasets.gtzan import read_split_lists

FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".au": ("AU", "PCM_16"), ".mp3": ("MP3", "MPEG_LAYER_III")}


def tone(label_index: int, n: int, rate: int, seed: int) -> np.ndarray:
    """A class-dependent tone with noise: classes are separable, clips are not identical."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f = 200.0 * (1 + label_index) * rng.uniform(0.98, 1.02)
    return (0.4 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, sub = FORMATS[path.suffix]
    sf.write(str(path), audio, rate, format=fmt, subtype=sub)
    return path


def gtzan_tree(root: Path, suffix: str = ".au", drop: int = 0) -> Path:
    """genres/<genre>/<genre>.000NN.au for every clip of the shipped lists (minus the first `drop`)."""
    table = read_split_lists()
    genres = sorted(table.label.unique())
    for i, row in enumerate(table.itertuples()):
        if i < drop:
            continue
        write_audio(root / "genres" / row.label / f"{row.clip_id}{suffix}",
                    tone(genres.index(row.label), 2205, 22050, i), 22050)
    return root


def ballroom_tree(root: Path, per_class: int = 4) -> Path:
    for c, name in enumerate(BALLROOM):
        for j in range(per_class):
            write_audio(root / name / f"{100 + j}.mp3", tone(c, 4410, 44100, c * 100 + j), 44100)
    return root


def urbansound_tree(root: Path, per_fold: int = 2) -> Path:
    classes = ["air_conditioner", "car_horn", "dog_bark"]
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    k = 0
    for fold in range(1, 11):
        for j in range(per_fold):
            c = (fold + j) % 3
            name = f"{1000 + k}-{c}-0-{j}.wav"
            write_audio(root / "audio" / f"fold{fold}" / name, tone(c, 1600 + 400 * j, 16000, k), 16000)
            lines.append(f"{name},{1000 + k},0.0,0.5,1,{fold},{c},{classes[c]}")
            k += 1
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    return root


def esc10_tree(root: Path, per_fold: int = 2) -> Path:
    classes = ["001 - Dog bark", "002 - Rain", "003 - Sea waves"]
    for c, d in enumerate(classes):
        for fold in range(1, 6):
            for j in range(per_fold):
                write_audio(root / d / f"{fold}-{500 + 10 * c + j}-A.ogg", tone(c, 8000, 44100, 31 * c + 7 * fold + j), 44100)
    return root


def esc50_tree(root: Path, per_fold: int = 2) -> Path:
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for c, cat in enumerate(["dog", "rooster", "pig"]):
        for fold in range(1, 6):
            for j in range(per_fold):
                name = f"{fold}-{700 + 10 * c + j}-A-{c}.wav" if j == 0 else f"{fold}-{700 + 10 * c + j}-A-{c}.flac"
                write_audio(root / "audio" / name, tone(c, 4000, 44100, 17 * c + fold + 3 * j), 44100)
                lines.append(f"{name},{fold},{c},{cat},{'True' if c < 2 else 'False'},{700 + 10 * c + j},A")
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


def fsdd_tree(root: Path, speakers=("george", "jackson", "lucas"), takes: int = 3) -> Path:
    """The FSDD repository's layout: recordings/{digit}_{speaker}_{take}.wav, 8 kHz, a tone per digit."""
    for s, speaker in enumerate(speakers):
        for digit in range(3):
            for take in range(takes):
                write_audio(root / "recordings" / f"{digit}_{speaker}_{take}.wav",
                            tone(digit, 4000, 8000, 11 * digit + 5 * s + take), 8000)
    return root


def folder_tree(root: Path, per_class: int = 6) -> Path:
    for c, name in enumerate(["bird", "engine", "voice"]):
        for j in range(per_class):
            suffix = [".flac", ".mp3", ".wav"][j % 3]
            write_audio(root / name / ("sub" if j % 2 else "") / f"clip{j}{suffix}", tone(c, 8000, 22050, 13 * c + j), 22050)
    return root


def ill_conditioned(n=150, n_classes=3, dim=8, level=20.0, seed=2):
    """A few strongly correlated, large-magnitude columns (a shared level, as the temporal front-end's
    averaged envelopes have), with a weak class signal on top."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    common = level * (1 + 0.1 * rng.standard_normal(n)) + 0.3 * y
    X = (common[:, None] * rng.uniform(0.95, 1.05, dim)
         + rng.standard_normal((n, 3)) @ rng.standard_normal((3, dim)) * 0.3 + 0.5 * np.eye(n_classes, dim)[y])
    return X, np.array([f"c{k}" for k in y])


def hear_task_tree(tasks_dir: Path, name: str = "tinytones", rates=(16000,), n_folds: int = 3, per_fold: int = 4,
                   n_classes: int = 2, duration: float = 1.0) -> Path:
    """One scene task as HEAR 2021 publishes them (hear-preprocess):
    tasks/<task>/{task_metadata.json, labelvocabulary.csv, fold0k.json, <rate>/fold0k/<clip>.wav}."""
    import json

    task = tasks_dir / name
    folds = [f"fold{k:02d}" for k in range(n_folds)]
    labels = [f"tone{c}" for c in range(n_classes)]
    task.mkdir(parents=True, exist_ok=True)
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": name, "version": "v1.0.0", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "new_split_kfold", "nfolds": n_folds, "sample_duration": duration,
        "evaluation": ["top1_acc"], "mode": "full", "splits": folds, "sample_rates": list(rates)}, indent=2))
    (task / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(labels)))
    for k, fold in enumerate(folds):
        split = {}
        for j in range(per_fold):
            c = j % n_classes
            clip = f"{k}-{j}.wav"
            split[clip] = [labels[c]]
            for rate in rates:
                write_audio(task / str(rate) / fold / clip, tone(c, int(duration * rate), rate, 100 * k + j), rate)
        (task / f"{fold}.json").write_text(json.dumps(split, indent=2))
    return task
