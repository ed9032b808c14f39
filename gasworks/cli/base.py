"""The `gasworks` command group and what its commands share: error handling, --json, the project.

User mistakes become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from gasworks import __version__, git
from gasworks.errors import GasworksError, InvalidValueError
from gasworks.models import parse_priority
from gasworks.project import Project, find_project


def _check_utf8(ctx: click.Context) -> None:
    """Linux hands argv bytes that are not UTF-8 to Python as lone surrogates; no text field can hold
    them, so they are refused here, naming the parameter (file paths may hold any bytes)."""
    for param in ctx.command.params:
        if isinstance(param.type, click.Path):
            continue
        value = ctx.params.get(param.name or "")
        for text in value if isinstance(value, (tuple, list)) else (value,):
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = ord(text[exc.start])
                byte = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"U+{char:04X}"
                raise InvalidValueError(f"{param.get_error_hint(ctx)} is not UTF-8 text ({byte} at character "
                                        f"{exc.start + 1})") from None


# The machine's state, not a bug: said in one line, never as a traceback.
USER_FIXES_OS_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


collector_paused = False  # main() turned the garbage collector off for start-up


def resume_collector() -> None:
    """The collector back on, once the command is loaded and about to run. What start-up made is
    frozen first (kept, never scanned again), so the first pass does not walk all of it."""
    global collector_paused
    if collector_paused:
        collector_paused = False
        gc.freeze()
        gc.enable()


class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        _check_utf8(ctx)
        resume_collector()
        return super().invoke(ctx)


class _Group(click.Group):
    """Maps our errors to one clear line and an exit code, in one place."""

    command_class = _Command
    group_class = type  # subgroups (`dep`) are _Groups too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            _check_utf8(ctx)
            return super().invoke(ctx)
        except GasworksError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("gasworks: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `gasworks list | head`
            sys.stderr.close()
            ctx.exit(0)
        except OSError as exc:
            if exc.errno not in USER_FIXES_OS_ERRORS:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            _fail(ctx, f"{exc.strerror or exc}{where}; nothing more was done", 1)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if ctx.meta.get(JSON_WANTED):  # as bd does under --json: {"error": ...} on stdout
        import json

        click.echo(json.dumps({"error": message}, indent=2, ensure_ascii=False))
    click.echo(f"gasworks: error: {message}", err=True)
    ctx.exit(code)


# The module that declares each command: a command imports only its own module (and what that module
# needs), so `gasworks ready` never loads the fleet's machinery. A command missing here still works
# (an unknown name loads every module); tests/test_startup.py checks that this table is complete.
COMMAND_MODULES = {
    "gasworks.cli.tasks": ("init", "create", "ready", "list", "search", "blocked", "show", "update", "close", "reopen",
                           "retry"),
    "gasworks.cli.deps": ("dep",),
    "gasworks.cli.exchange": ("import", "export"),
    "gasworks.cli.labels": ("label",),
    "gasworks.cli.models": ("models",),
    "gasworks.cli.fleet": ("run", "merges", "merge-retry", "refinery", "ingest", "plan", "split", "serve-model",
                           "demo"),
    "gasworks.cli.gastown": ("agent-run", "sling", "convoy"),
    "gasworks.cli.watch": ("status", "top", "logs", "diff", "stats", "web"),
    "gasworks.cli.clean": ("clean",),
    "gasworks.cli.review": ("approve", "reject"),
    "gasworks.cli.evals": ("eval", "eval-check", "eval-import"),
}


class _Root(_Group):
    """The `gasworks` group: a command's module is imported when the command is asked for."""

    group_class = _Group  # type: ignore[assignment]  # click types it as `type` (its own sentinel)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            wanted = [module for module, names in COMMAND_MODULES.items() if cmd_name in names]
            for module in wanted or COMMAND_MODULES:
                importlib.import_module(module)  # its decorators register its commands on `cli`
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in COMMAND_MODULES:
            importlib.import_module(module)
        return super().list_commands(ctx)


def actor_name(ctx: click.Context) -> str:
    chosen = ctx.find_root().params.get("actor")
    for candidate in (chosen, os.environ.get("GASWORKS_ACTOR"), os.environ.get("BEADS_ACTOR"),
                      os.environ.get("BD_ACTOR")):
        if candidate:
            return candidate
    try:
        return git.user_name(Path.cwd()) or os.environ.get("USER") or "gasworks"
    except GasworksError:
        return os.environ.get("USER") or "gasworks"


def open_project() -> Project:
    from gasworks import runlog

    project = find_project(Path.cwd())
    runlog.debug("project %s: agent %s, %d workers", project.root, project.config.agent, project.config.num_workers)
    return project


DEBUG_WANTED = "gasworks.debug"  # in ctx.meta: --debug was given
JSON_WANTED = "gasworks.json"  # in ctx.meta (shared by every context of a command): --json was given


def _json_wanted(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """`--json` after the command, or before it (`gasworks --json ready`, as bd takes it anywhere)."""
    wanted = bool(value) or bool(ctx.meta.get(JSON_WANTED))
    if wanted:
        ctx.meta[JSON_WANTED] = True
    return wanted


json_option = click.option("--json", "as_json", is_flag=True, callback=_json_wanted,
                           help="Print JSON instead of text (errors too: {\"error\": ...} on stdout).")
limit_option = click.option("-n", "--limit", type=click.IntRange(min=0), default=None,
                            help="Show at most this many (default: all).")


def split_list(values: tuple[str, ...]) -> list[str]:
    """Options given as `-l a,b -l c` -> [a, b, c]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def priority_value(_ctx: click.Context, _param: click.Parameter, value: Any) -> int | None:
    try:
        return None if value is None else parse_priority(value)
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gasworks")
@click.option("--actor", default=None, metavar="NAME",
              help="Who is acting, for assignees and events (default: $GASWORKS_ACTOR, $BEADS_ACTOR, "
                   "git user.name, $USER).")
@click.option("--json", "as_json", is_flag=True, callback=_json_wanted, expose_value=False,
              help="JSON output from every command that has it, as `COMMAND --json` (like `bd --json`).")
@click.option("-v", "--verbose", is_flag=True, help="Say more of what gasworks does, on stderr (logging INFO).")
@click.option("--debug", is_flag=True, help="Say everything gasworks does, on stderr, git commands included "
                                            "(logging DEBUG); `gasworks run` also logs DEBUG to its run log.")
@click.pass_context
def cli(ctx: click.Context, actor: str | None, verbose: bool, debug: bool) -> None:
    """Run a fleet of local coding agents on one git repository.

    Tasks live in .gasworks/gasworks.db (Beads-compatible fields and JSONL). Start with
    `gasworks init` in a git repository, then `gasworks create "title"` and `gasworks ready`.
    """
    if verbose or debug:
        from gasworks import runlog

        runlog.configure(10 if debug else 20)  # logging.DEBUG, logging.INFO (logging is not imported here)
        ctx.meta[DEBUG_WANTED] = debug
