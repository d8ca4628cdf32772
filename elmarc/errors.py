"""The one exception type for a user's mistake: the CLI prints its message alone and exits 2.

Anything else is a bug or an environment fault and keeps its traceback.
"""
from __future__ import annotations

import signal


class UserError(Exception):
    """A mistake the user can fix (a config value, a dataset copy, a cache folder); the message says how."""


class Stopped(BaseException):
    """The job was asked to stop (SIGTERM from kill, timeout or Slurm; SIGINT from Ctrl-C). A BaseException,
    so that no `except Exception` on the way swallows it; exit status 128 + the signal's number."""

    def __init__(self, signum: int):
        self.signum, self.name = int(signum), signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
