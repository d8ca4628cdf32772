"""One job of a sweep: plan it from the config (job.py), then extract -> classify -> train -> report, each stage
talking to the next through the cache; status.json says how the job ended (ok, failed or interrupted)."""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import traceback
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from .classify.stage import classify_stage
from .errors import Stopped
from .extract.audio_cache import decoded_source
from .extract.stage import extract_stage
from .job import Job, plan_job
from .report import write_report
from .results import SCORES
from .storage import CacheWriteError, atomic_write_csv, atomic_write_text, make_dirs

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig, out_dir: Path, overrides: list[str] = (), single_run: bool = True) -> dict:
    """Plan and run one job; write status.json (ok, failed or interrupted) to out_dir, and the job's report when
    it is a single run (a sweep's report is written once its jobs are done). overrides: the command line's."""
    make_dirs(out_dir)
    status = {"status": "running", "overrides": list(overrides)}
    try:
        with stop_on_signals():
            job = plan_job(cfg)
            result = run_stages(job, out_dir)
        status.update(status="ok", **result)
    except Stopped as exc:
        status.update(status="interrupted", error=str(exc))
        raise
    except Exception as exc:
        stopped = signal_within(exc)
        if stopped is not None:      # a library wrapped the signal's exception (OmegaConf does, mid-lookup)
            status.update(status="interrupted", error=str(stopped))
            raise stopped from None
        status.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise
    finally:
        try:
            atomic_write_text(out_dir / "status.json", json.dumps(status, indent=2, default=str))
        except CacheWriteError as exc:      # the job's own error (often the same full disk) is the one to show
            log.warning("could not write status.json: %s", exc)
    if "report" in job.stages and single_run and (out_dir / "results.csv").is_file():
        write_report(out_dir, print_summary=True)
    return status


def signal_within(exc: BaseException) -> Stopped | None:
    """The Stopped a chain of exceptions (causes and contexts) holds, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Stopped):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


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


def run_stages(job: Job, out_dir: Path) -> dict:
    """The job's stages in order; the job folder gets clips.csv, skipped.csv, results.csv and predictions.csv."""
    entry = job.features
    atomic_write_csv(out_dir / "clips.csv", job.source.clips.drop(columns=["path"]))   # folds/splits of this run
    result: dict = {"feature_key": entry.key, "feature_dir": str(entry.root)}
    if "extract" in job.stages:
        result["extract"] = extract_stage(entry, job.source, job.model, job.inputs, job.extraction, job.cache_dir)
        clips = entry.clip_table()
        atomic_write_csv(out_dir / "skipped.csv", clips[~clips["ok"]])
    result["extract_seconds"] = entry.extraction_seconds()      # what extracting cost, whether cached now or not
    tables, predictions = [], []
    if "classify" in job.stages or ("report" in job.stages and "train" not in job.stages):
        # report alone reads the rows the classify stage cached for this job; it never fits
        table, preds = classify_stage(entry, job.grid, job.cache_dir / "results", fit="classify" in job.stages)
        # the cost of the random evaluation: extraction (once per entry) beside the grid's seconds
        table["extract_seconds"] = result["extract_seconds"]
        table["host"] = entry.info()["host"] if entry.is_complete() else ""
        tables.append(table)
        predictions.append(preds)
        result["accuracy"] = float(table["accuracy"].astype(float).mean())
    if "train" in job.stages or "proxies" in job.stages:
        # Lightning's training side: only jobs that train or score proxies import it
        from .train.stage import prepare, proxy_stage, train_stage

        source, _ = decoded_source(job.source, job.inputs, job.extraction, job.cache_dir)
        with job.extraction.speed.active():        # evaluation forms under the job's kernels setting, as extraction
            prepared = prepare(entry, source, job.frontend, job.inputs, job.recipe, job.grid, job.cache_dir)
            scores = proxy_stage(entry, source, job.frontend, job.inputs, job.recipe, job.grid, job.proxies,
                                 job.cache_dir, prepared)
            atomic_write_csv(out_dir / SCORES, scores)
            result["proxies"] = {r.predictor: float(r.score) for r in scores.groupby("predictor", sort=False)["score"]
                                 .mean().reset_index().itertuples()}
            if "train" in job.stages:
                table, preds = train_stage(entry, source, job.frontend, job.inputs, job.recipe, job.grid,
                                           job.cache_dir, prepared, folds=job.train_folds)
                tables.append(table)
                predictions.append(preds)
                result["trained_accuracy"] = float(table.loc[table["classifier"] == "trained", "accuracy"]
                                                   .astype(float).mean())
    if tables:
        atomic_write_csv(out_dir / "predictions.csv", pd.concat(predictions, ignore_index=True))
        atomic_write_csv(out_dir / "results.csv", pd.concat(tables, ignore_index=True))
    return result
