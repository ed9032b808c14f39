"""The `gasworks` command: thin commands over the library, one module per group of commands, each
imported only when one of its commands runs (see COMMAND_MODULES). Every listing takes --json."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gasworks.cli.base import cli


def main() -> None:
    # Start-up (click, then the command's modules) makes many objects and frees almost none: the garbage
    # collector's passes over them are wasted work (several ms of a quick command). It is off until the
    # command runs (see base.resume_collector).
    gc.disable()
    from gasworks.deferred import defer_inspect

    defer_inspect()  # click asks only inspect.cleandoc of it unless help is shown
    from gasworks.cli import base

    base.collector_paused = True
    base.cli(prog_name="gasworks")


def __getattr__(name: str) -> Any:  # `gasworks.cli.cli` without importing click before main() runs
    if name == "cli":
        from gasworks.cli.base import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "main"]
