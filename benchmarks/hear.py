"""make bench, section hear: elmarc.hear's timestamp embeddings of one 120-s clip against its scene embedding

Three timings per front-end and width, in one run, each the best of --min-seconds worth of repeats: the scene
embedding of the clip (its first 29 s, as elmarc's features), the timestamp embeddings from the whole clip's
maps computed once (elmarc.hear), and the windowed definition they replace (each 1-s window run as its own
clip, repeated to the paper's 29-s input), timed on --hear-windows windows and scaled to all 2400 (50 ms hop;
its cost is the same for every window).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

import elmarc.hear as hear

from .common import sync, table_lines

BUILT_IN = ["7x96", "7x86", "vgg", "timbral", "temporal", "timbral_temporal", "timbral_time",
            "sample_level", "frame_level", "frame_level_many", "mfcc"]


def run(args, mm: float, dev) -> list[str]:
    """Time this section; write its CSV under args.out; the report's lines."""
    print("hear: timestamp embeddings of a 120-s clip against its scene embedding", flush=True)
    names = [n for n in (args.frontends.split(",") if args.frontends else BUILT_IN) if n in BUILT_IN]
    rows = []
    for width in args.widths.split(","):
        for name in names:
            if name == "mfcc" and width != "small":
                continue
            rows.append(bench_one(name, width, args.min_seconds, args.hear_windows, dev))
            print("  " + ", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    return table_lines(args.out, "hear", "HEAR timestamp embeddings, one 120-s clip at 16 kHz, 50 ms hop (seconds)",
                       pd.DataFrame(rows))


def best_of(fn, min_seconds: float, dev) -> float:
    times, start = [], time.perf_counter()
    while not times or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_one(name: str, width: str, min_seconds: float, n_windows: int, dev) -> dict:
    model = hear.load_model(f"{name}:{width}").to(dev)
    audio = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 120 * model.sample_rate)).astype(np.float32))
    scene = best_of(lambda: hear.get_scene_embeddings(audio, model), min_seconds, dev)
    maps = best_of(lambda: hear.get_timestamp_embeddings(audio, model), min_seconds, dev)
    clip = model.to_model_rate(audio[0].numpy())
    rate = model.input_cfg.sample_rate
    half = int(model.window_ms / 2000 * rate)
    centres = np.linspace(half, clip.size - half, n_windows).astype(int)
    windows = [clip[c - half:c + half] for c in centres]
    all_windows = len(hear.timestamps_ms(audio.shape[1], model.sample_rate, model.hop_ms))
    windowed = best_of(lambda: model.embed(windows), 0.0, dev) * all_windows / n_windows
    return {"frontend": name, "width": width, "scene_s": round(scene, 3), "maps_once_s": round(maps, 3),
            "windowed_s": round(windowed, 1), "maps_over_scene": round(maps / scene, 1),
            "windowed_over_maps": round(windowed / maps)}
