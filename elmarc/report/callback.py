"""Hydra callback: aggregate a multirun when it ends.

Hydra skips on_multirun_end when any job fails, so the same report is also
available as ``python -m elmarc.report <sweep dir>``, which lists failed jobs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from . import write_report


class ReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:

        write_report(Path(config.hydra.sweep.dir))
