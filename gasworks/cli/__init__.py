"""The `gasworks` command: thin commands over the library, one module per group of commands, each
imported only when one of its commands runs (see COMMAND_MODULES). Every listing takes --json."""

from gasworks.cli.base import cli


def main() -> None:
    cli(prog_name="gasworks")


__all__ = ["cli", "main"]
