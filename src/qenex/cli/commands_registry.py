"""The list of CLI command groups. Add one import line per group module.

Each module exposes ``register(app: typer.Typer) -> None``. Modules are imported here,
lazily, so that `qenex --help` stays fast and one group's heavy imports don't slow others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import typer

# Module paths, relative to qenex.cli. Keep sorted.
COMMAND_MODULES: tuple[str, ...] = ("demo", "keys", "ledger", "payments", "serve")


def all_registrars() -> Iterator[Callable[[typer.Typer], None]]:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"qenex.cli.{name}")
        yield module.register
