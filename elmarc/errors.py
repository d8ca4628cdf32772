"""The one exception type for a user's mistake: the CLI prints its message alone and exits 2.

Anything else is a bug or an environment fault and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (a config value, a dataset copy, a cache folder); the message says how."""
