"""One job of a sweep: extract -> classify -> report, each stage talking to the next through files."""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import traceback
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .config import check_rules, parse_stages
from .errors import Stopped
from .storage import CacheWriteError, atomic_write_csv, atomic_write_text, make_dirs

log = logging.getLogger(__name__)


def job_labels(cfg: DictConfig, source, frontend=None) -> dict:
    """The labels of a job's rows; a HEAR module under the default name 'hear' is labelled hear:<module>."""
    name = str(cfg.frontend.name)
    if name == "hear" and hasattr(frontend, "module_name"):
        name = f"hear:{frontend.module_name}"
    return {"dataset": source.name, "frontend": name, "width": str(cfg.features.width)}


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM and SIGINT raise Stopped in the main thread, wherever the job is (Lightning's predict and fit
    loops keep a handler found in place and call it after their own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_job(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the configured stages of one job; write status.json (ok, failed or interrupted) to out_dir."""
    make_dirs(out_dir)
    status = {"status": "running", "overrides": _overrides()}
    try:
        with stop_on_signals():
            result = _run_stages(cfg, out_dir)
        status.update(status="ok", **result)
    except Stopped as exc:
        status.update(status="interrupted", error=str(exc))
        raise
    except Exception as exc:
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise
    finally:
        try:
            atomic_write_text(out_dir / "status.json", json.dumps(status, indent=2, default=str))
        except CacheWriteError as exc:      # the job's own error (often the same full disk) is the one to show
            log.warning("could not write status.json: %s", exc)
    if "report" in parse_stages(cfg.stage) and (out_dir / "results.csv").is_file() and not _in_multirun():
        from .report import write_report

        write_report(out_dir, print_summary=True)
    return status


def _overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:          # not inside a Hydra app (called from Python)
        return []


def _run_stages(cfg: DictConfig, out_dir: Path) -> dict:
    from .classify import classify
    from .classify.protocols import resolve_protocol
    from .datasets import build_dataset
    from .extract import FeatureEntry, extract_stage, feature_spec
    from .frontends import build_frontend

    check_rules(cfg)
    from .classify.stage import build_grid

    build_grid(OmegaConf.to_container(cfg.classifier, resolve=True), int(cfg.seed))   # a grid that can work, before any work
    stages = parse_stages(cfg.stage)
    cache_dir = Path(cfg.cache_dir).expanduser().resolve()
    # the front-end first: a declared architecture that cannot work fails before any data is touched
    shape = {k: int(cfg.input[k]) for k in ("n_samples", "n_frames", "n_mels")}
    check_memory(cfg, shape)
    frontend = build_frontend(cfg.frontend, cfg.features.width, int(cfg.seed), shape)
    if getattr(frontend, "pretrained", False) and int(cfg.input.sample_rate) != frontend.sample_rate:
        # a HEAR module takes audio at its own rate: decode (and cache) the clips at that rate
        cfg.input.sample_rate = frontend.sample_rate
        cfg.input.f_max = min(float(cfg.input.f_max), frontend.sample_rate / 2)
        check_rules(cfg)
    source = build_dataset(cfg.dataset)
    check_classes(source, resolve_protocol(str(cfg.protocol.name), source.scheme, source.protocol))
    source.fingerprints = cache_dir / "fingerprints"      # clips' content digests, remembered per file
    spec, readable = feature_spec(cfg, source, frontend)
    entry = FeatureEntry.for_spec(cache_dir, spec, readable)
    atomic_write_csv(out_dir / "clips.csv", source.clips.drop(columns=["path"]))   # folds/splits of this run
    result: dict = {"feature_key": entry.key, "feature_dir": str(entry.root)}

    if "extract" in stages:
        result["extract"] = extract_stage(cfg, source, frontend, entry, cache_dir)
        clips = entry.clip_table()
        atomic_write_csv(out_dir / "skipped.csv", clips[~clips["ok"]])

    tables, predictions = [], []
    protocol = resolve_protocol(str(cfg.protocol.name), source.scheme, source.protocol)
    if "classify" in stages or ("report" in stages and "train" not in stages):
        # report alone reads the rows the classify stage cached for this job; it never fits
        table, preds = classify(entry, OmegaConf.to_container(cfg.classifier, resolve=True), protocol,
                                bool(cfg.classify.standardize), int(cfg.seed), job_labels(cfg, source, frontend),
                                cache_dir / "results", fit="classify" in stages, n_jobs=cfg.classify.n_jobs,
                                assignment=split_assignment(source))
        # the cost of the random evaluation: extraction (once per entry) beside the grid's seconds
        table["extract_seconds"] = extraction_seconds(entry)
        table["host"] = entry.info().get("host", "") if entry.is_complete() else ""
        tables.append(table)
        predictions.append(preds)
        result["accuracy"] = float(table["accuracy"].astype(float).mean())
    if "train" in stages:
        from .train import train_stage

        table, preds = train_stage(cfg, source, lambda: build_frontend(cfg.frontend, cfg.features.width, int(cfg.seed), shape),
                                   entry, cache_dir, job_labels(cfg, source, frontend), protocol)
        tables.append(table)
        predictions.append(preds)
        result["trained_accuracy"] = float(table.loc[table["classifier"] == "trained", "accuracy"].astype(float).mean())
    if tables:
        atomic_write_csv(out_dir / "predictions.csv", pd.concat(predictions, ignore_index=True))
        atomic_write_csv(out_dir / "results.csv", pd.concat(tables, ignore_index=True))
    return result


def available_memory(gpu: bool) -> int | None:
    """Bytes the job can still take: the GPU's total memory, or the machine's MemAvailable (Linux)."""
    if gpu:
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def check_memory(cfg: DictConfig, shape: dict) -> None:
    """Refuse, before anything is allocated, a front-end whose weights and maps cannot fit (a width typed
    with a zero too many): weights + twice the largest map at the job's batch, counted on the meta device."""
    from .config import ConfigError
    from .extract.inputs import frontend_batch_size, uses_gpu
    from .frontends import memory_need

    gpu = uses_gpu(str(cfg.extract.accelerator))
    batch = int(cfg.extract.batch_size or frontend_batch_size(cfg.frontend, cfg.features.width, gpu))
    need = memory_need(cfg.frontend, str(cfg.features.width), shape, batch)
    have = available_memory(gpu)
    if need is None or have is None or need[0] + 2 * need[1] <= have:
        return
    gib = 2 ** 30
    raise ConfigError(f"frontend {cfg.frontend.name!r} at width {cfg.features.width} cannot fit: its weights take "
                      f"{need[0] / gib:.1f} GiB and its largest map {need[1] / gib:.1f} GiB at batch {batch}, "
                      f"{(need[0] + 2 * need[1]) / gib:.1f} GiB in all; {have / gib:.1f} GiB are available "
                      f"({'GPU' if gpu else 'memory'}).\n  Fix: a smaller frontend.widths.{cfg.features.width} "
                      f"or extract.batch_size.")


def check_classes(source, protocol: str) -> None:
    """Before any work: two classes at least, and every class a test part holds is in its training part."""
    from .classify.protocols import plan_splits
    from .datasets import DatasetError

    labels = source.clips["label"]
    if labels.nunique() < 2:
        raise DatasetError(f"dataset {source.name!r} has one class ({labels.iloc[0]!r}): a classifier needs two or more.\n"
                           f"  Fix: point dataset.root (or dataset.list) at a copy with two or more class folders or labels.")
    for split in plan_splits(protocol, source.clips.assign(ok=True)):
        unseen = sorted(set(labels.iloc[split.eval]) - set(labels.iloc[split.train]))
        if unseen:
            raise DatasetError(f"dataset {source.name!r}: the clips of {split.name} include classes never in its training "
                               f"part ({', '.join(map(repr, unseen[:5]))}): they could only be misclassified.\n"
                               f"  Fix: give those classes clips in the other folds/splits (dataset.list), or leave them out.")


def extraction_seconds(entry) -> float:
    """Seconds to extract every clip of the entry, from its measured rate (a resumed extraction timed only
    its last part); NaN when no rate was measured (nothing extracted in the run that finished it)."""
    if not entry.is_complete():
        return float("nan")
    info = entry.info()
    rate = float(info.get("clips_per_second") or 0.0)
    return round(info["n_clips"] / rate, 3) if rate > 0 else float("nan")


def split_assignment(source) -> pd.DataFrame:
    """clip_id, fold, split of this run's dataset config (the classify and train stages use these)."""
    return source.clips[[c for c in ("clip_id", "fold", "split") if c in source.clips]]


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False
