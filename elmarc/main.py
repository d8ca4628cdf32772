"""Thin Hydra entry point: ``elmarc [-m] dataset=... frontend=... features=... classifier=...``."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .config import register_configs
from .errors import Stopped, UserError

log = logging.getLogger("elmarc")
register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from .pipeline import run_job

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        status = run_job(cfg, out_dir)
    except Stopped as exc:
        # what is written stays (every cache file is whole, each entry resumes): one line, the signal's status
        print(f"\nelmarc: {exc}; what was computed is kept in the cache ({cfg.cache_dir}) and "
              f"{out_dir / 'status.json'} says 'interrupted'. Rerun the same command to resume.", file=sys.stderr)
        sys.exit(exc.exit_status)
    except UserError as exc:
        # a user mistake: one clear message (status.json keeps it too); anything else keeps its traceback
        print(f"\nelmarc: error: {exc}", file=sys.stderr)
        if HydraConfig.get().mode.name == "RUN":
            sys.exit(2)
        raise
    log.info("job written to %s", out_dir)
    return status.get("accuracy")


if __name__ == "__main__":
    main()
