"""Thin Hydra entry point: ``elmarc [-m] dataset=... frontend=... features=... classifier=...``.

The composed config goes to pipeline.run_job, which turns it into a Job (job.py) once and runs its stages.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import register_configs
from .errors import Stopped, UserError

log = logging.getLogger("elmarc")
register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    # torch, scikit-learn and the rest load here: a config Hydra refuses is told in half a second
    from .pipeline import run_job

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    single_run = hydra_cfg.mode == RunMode.RUN
    try:
        status = run_job(cfg, out_dir, list(hydra_cfg.overrides.task), single_run=single_run)
    except Stopped as exc:
        # what is written stays (every cache file is whole, each entry resumes): one line, the signal's status
        print(f"\nelmarc: {exc}; what was computed is kept in the cache ({cfg.cache_dir}) and "
              f"{out_dir / 'status.json'} says 'interrupted'. Rerun the same command to resume.", file=sys.stderr)
        sys.exit(exc.exit_status)
    except UserError as exc:
        # a user mistake: one clear message (status.json keeps it too); anything else keeps its traceback
        print(f"\nelmarc: error: {exc}", file=sys.stderr)
        if single_run:
            sys.exit(2)
        raise
    log.info("job written to %s", out_dir)
    # what a sweeper maximises (hydra/sweeper=search): the accuracy, or the proxy that objective= names
    if cfg.objective == "accuracy":
        return status.get("accuracy")
    return status.get("proxies", {}).get(str(cfg.objective))


if __name__ == "__main__":
    main()
