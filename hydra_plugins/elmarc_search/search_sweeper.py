"""Hydra finds sweepers only in the hydra_plugins package: this is elmarc's (hydra/sweeper=search); the search
itself is elmarc.search.sweeper."""
from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class SearchSweeper(Sweeper):
    def __init__(self, **params: Any) -> None:
        from elmarc.search.sweeper import SearchSweeperImpl

        self.sweeper = SearchSweeperImpl(**params)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
