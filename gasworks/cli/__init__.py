"""The `gasworks` command: thin commands over the library, one module per group of commands.
Every listing takes --json."""

from gasworks.cli import fleet, gastown, labels, models, tasks, watch  # noqa: F401  (importing them registers their commands)
from gasworks.cli.base import cli


def main() -> None:
    cli(prog_name="gasworks")


__all__ = ["cli", "main"]
