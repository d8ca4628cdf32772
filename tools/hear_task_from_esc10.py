"""ESC-10 as a HEAR 2021 scene task, in the layout hear-preprocess publishes (what heareval's runners read):

    <out>/esc10-5fold/task_metadata.json, labelvocabulary.csv, fold00.json .. fold04.json
    <out>/esc10-5fold/<rate>/fold0k/<clip>.wav       one folder per rate, 16-bit WAV, 5.0 s each

HEAR's own esc50 task is ESC-50 made this way (its five original folds, clips padded or trimmed to 5 s,
resampled to each HEAR rate); ESC-10 is its 10-class subset. Usage:
    python tools/hear_task_from_esc10.py <ESC-10 root: class folders of .ogg> <tasks dir> [--rates 16000,22050]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from elmarc.audio import decode, resample


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("tasks", type=Path)
    ap.add_argument("--rates", default="16000")
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    clips = sorted(args.root.glob("*/*.ogg"))
    if not clips:
        raise SystemExit(f"{args.root}: no <class>/<clip>.ogg files (an ESC-10 copy was expected)")
    task = args.tasks / "esc10-5fold"
    labels = sorted({p.parent.name for p in clips})
    folds = {f"fold{k:02d}": {} for k in range(5)}
    for path in clips:
        audio, rate = decode(path)
        fold = f"fold{int(path.name.split('-')[0]) - 1:02d}"
        folds[fold][path.with_suffix(".wav").name] = [path.parent.name]
        for target in rates:
            out = resample(audio, rate, target)
            n = int(5.0 * target)
            out = np.pad(out[:n], (0, max(0, n - out.size)))
            dest = task / str(target) / fold / path.with_suffix(".wav").name
            dest.parent.mkdir(parents=True, exist_ok=True)
            sf.write(dest, np.clip(out, -1, 1), target, subtype="PCM_16")
    for fold, split in folds.items():
        (task / f"{fold}.json").write_text(json.dumps(split, indent=2))
    (task / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(labels)))
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": "esc10-5fold", "version": "elmarc-1", "embedding_type": "scene", "prediction_type": "multiclass",
        "split_mode": "presplit_kfold", "nfolds": 5, "sample_duration": 5.0, "evaluation": ["top1_acc"],
        "mode": "full", "splits": list(folds), "sample_rates": rates}, indent=2))
    print(f"{task}: {len(clips)} clips, {len(labels)} classes, 5 folds, rates {rates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
