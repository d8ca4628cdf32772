"""Where measured forms are remembered: one JSON file per machine in <cache_dir>/conv_forms/.

A choice holds for one machine (CPU model and ISA, or GPU name; torch version; threads); jobs that share
the file merge their choices into it, one at a time under a lock beside it.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import torch

from ...entry import safe_name
from ...resources import cpu_info
from ...storage import CacheWriteError, atomic_write_text, file_lock, move_aside
from .measure import BASELINE, Calibration

log = logging.getLogger(__name__)


def machine_id() -> str:
    """CPU model and ISA (or GPU name), torch version and threads: what a measured choice holds for."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        model = cpu_info().get("model name", "cpu")
        device = f"{model} {torch.backends.cpu.get_cpu_capability()} {torch.get_num_threads()}t"
    return safe_name(f"{device} torch{torch.__version__}")


class FormStore:
    """This machine's file of measured forms under folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FormStore({str(self.path)!r})"

    @property
    def path(self) -> Path:
        return self.folder / f"{machine_id()}.json"

    def lock(self):
        return file_lock(self.path.with_suffix(".lock"))

    def read(self) -> dict[str, str]:
        """The stored choices, or {} for a missing file, or one that is not a JSON object of form names (named, set aside)."""
        path = self.path
        if not path.is_file():
            return {}
        try:
            known = json.loads(path.read_text())
            if not isinstance(known, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in known.items()):
                raise ValueError("not an object of layer shape -> form name")
            return known
        except (ValueError, OSError) as exc:
            with contextlib.suppress(OSError):
                aside = move_aside([path], path.parent)
                log.warning("conv-forms file %s is unusable (%s); moved to %s, the forms are measured again", path, exc, aside)
            return {}

    def remember(self, key: str, form: str, calibration: Calibration) -> None:
        """Merge one choice (and the fastest calibration seen) into the file; the choice holds for this
        process even where the file cannot be written."""
        known = self.read()                     # several jobs may share the file: merge, then replace
        calibration.note(known.get(BASELINE))
        known[key] = form
        known[BASELINE] = repr(calibration.fastest)
        try:
            atomic_write_text(self.path, json.dumps(known, indent=1, sort_keys=True))
        except CacheWriteError as exc:
            log.warning("could not store the measured conv form: %s", exc)
