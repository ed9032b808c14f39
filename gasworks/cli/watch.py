"""Commands that watch the fleet: status, top, logs, diff, stats, web."""

from __future__ import annotations

import sys
from typing import Any

import click

from gasworks import output
from gasworks import status as fleet_status
from gasworks.cli.base import actor_name, cli, json_option, open_project


@cli.command()
@click.option("--watch", is_flag=True,
              help="Keep showing it until Ctrl+C: on a terminal, `gasworks top` when the tui extra is installed "
                   "(not with --count), else a live table (one row per slot with its task, elapsed time, quiet "
                   "time, tokens and last log line; the merge queue; counts; throughput); otherwise the report "
                   "again every --interval (one JSON object per line with --json).")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="With --watch: stop after N refreshes.")
@json_option
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    """What the fleet is doing: running agents by slot, tasks waiting to merge, counts by status.

    It reads the store and the log files only, so it works from any terminal while `gasworks run`
    works in another.
    """
    project = open_project()
    live = sys.stdout.isatty() and sys.stdin.isatty()
    if watch and live and not as_json and count is None:
        if _textual_installed():
            _run_top(project, actor_name(ctx), interval)
            return
        click.echo("gasworks: for keys to stop, retry and diff tasks here: pip install 'gasworks[tui]', "
                   "then gasworks top", err=True)
    if watch:
        try:
            fleet_status.watch(project, project.open_store(), interval=interval, count=count, as_json=as_json,
                               live=sys.stdout.isatty())
        except KeyboardInterrupt:
            pass  # Ctrl+C is how a watch ends
        return
    report = fleet_status.status_report(project, project.open_store())
    if as_json:
        output.emit_json(report)
    else:
        fleet_status.print_status(report)


def _textual_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("textual") is not None


def _run_top(project: Any, actor: str, interval: float) -> None:
    from gasworks.tui import TopApp

    TopApp(project, project.open_store(), actor=actor, interval=interval).run()


@cli.command()
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@click.pass_context
def top(ctx: click.Context, interval: float) -> None:
    """The fleet in an interactive terminal view, beside a running `gasworks run`.

    Progress (closed of all tasks, merged, failed, the ETA at the rate of the last 15 minutes),
    each slot's running task (at 80 columns the task id stays; less useful columns go first), the
    merge queue, and what waits on a person, by task id with the reason. Arrows select a row and
    Tab moves between the slots and the tasks needing a human; then Enter or l follows its log,
    d shows its diff, s stops its agent (the task becomes blocked), r retries it, c cancels it,
    + and - change its priority; m opens the merge queue, Escape goes back, q quits.

    Each change is one transaction through the functions `gasworks retry`, `close` and `update`
    use; a running fleet sees it in the store within seconds and stops the agent. Needs the `tui`
    extra: pip install 'gasworks[tui]'.
    """
    from gasworks.errors import InvalidValueError, MissingExtraError

    if not _textual_installed():
        raise MissingExtraError("gasworks top needs Textual: pip install 'gasworks[tui]'")
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise InvalidValueError("gasworks top needs a terminal; elsewhere use gasworks status --watch")
    _run_top(open_project(), actor_name(ctx), interval)


@cli.command()
@click.argument("task_id")
@click.option("--attempt", "number", type=click.IntRange(min=1), default=None, metavar="N",
              help="Which attempt of the task: 1 for its first (default: the latest with commits).")
@json_option
def diff(task_id: str, number: int | None, as_json: bool) -> None:
    """What an agent changed: the patch of a task's attempt, from where it started to its last commit.

    Default: the latest attempt that made commits. Control characters are shown as \\xNN, so a
    diff cannot take over your terminal.
    """
    from gasworks.logs import attempt_patch

    project = open_project()
    store = project.open_store()
    task_id = store.resolve_id(task_id)
    attempt, head, patch = attempt_patch(store, project.root, task_id, number)
    if as_json:
        output.emit_json({"task": task_id, "attempt": attempt.number, "attempt_id": attempt.id,
                          "outcome": attempt.outcome or "running", "base": attempt.base_commit, "head": head,
                          "diff": patch})
        return
    if not patch:
        click.echo(f"{task_id}: attempt {attempt.number} ({attempt.outcome or 'running'}) has no commits to show",
                   err=True)
        return
    for line in patch.splitlines():
        click.echo(output.safe(line))


@cli.command()
@click.argument("task_id")
@click.option("--attempt", "number", type=click.IntRange(min=1), default=None, metavar="N",
              help="Which attempt of the task: 1 for its first (default: the latest).")
@click.option("-f", "--follow", is_flag=True, help="Go on printing what the agent writes until the attempt ends.")
@click.option("-n", "--lines", "last", type=click.IntRange(min=0), default=None,
              help="Start with only the last N lines (default: the whole log).")
@json_option
def logs(task_id: str, number: int | None, follow: bool, last: int | None, as_json: bool) -> None:
    """Print the log of a task's latest attempt (or --attempt N); with -f, follow it live.

    Logs live in .gasworks/logs/TASK/ATTEMPT.log. Control characters an agent printed are shown
    as \\xNN and colours are dropped, so a log cannot take over your terminal.
    """
    from gasworks import logs as attempt_logs

    if follow and as_json:
        raise click.UsageError("--json prints the log once: drop --follow")
    project = open_project()
    store = project.open_store()
    attempt = attempt_logs.pick_attempt(store, store.resolve_id(task_id), number)
    lines = attempt_logs.attempt_lines(store, project.logs_dir, attempt, last=last, keep_following=follow)
    if as_json:
        output.emit_json({"task": attempt.task_id, "attempt": attempt.number, "attempt_id": attempt.id,
                          "slot": attempt.slot,
                          "outcome": attempt.outcome or "running",
                          "log": str(attempt_logs.log_path(project.logs_dir, attempt)), "lines": list(lines)})
        return
    try:
        for line in lines:
            click.echo(line)
    except KeyboardInterrupt:
        return
    if follow:
        ended = attempt_logs.pick_attempt(store, attempt.task_id, attempt.number)
        click.echo(f"attempt {ended.number} ended: {ended.outcome}"
                   + (f" (exit {ended.exit_code})" if ended.exit_code is not None else ""), err=True)


@cli.command()
@json_option
def stats(as_json: bool) -> None:
    """How the fleet has done, from the store's records.

    Throughput (tasks agents finished, per hour), time per task from its first attempt to its close
    (mean and p90), attempt success rate overall and by try, merge conflict and gate failure
    rates, tokens in and out, and agent-seconds (time agents ran, summed over slots).
    """
    from gasworks.stats import fleet_stats, stats_lines

    report = fleet_stats(open_project().open_store())
    if as_json:
        output.emit_json(report)
        return
    for line in stats_lines(report):
        click.echo(line)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but 127.0.0.1/localhost opens the dashboard to your network, "
                   "over plain HTTP: whoever sees the traffic can take its token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8077, show_default=True,
              help="Port to listen on (0 takes any free one).")
@click.option("--open", "open_browser", is_flag=True,
              help="Open the dashboard in your web browser, signed in with its token.")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    """Serve the dashboard until Ctrl+C: the board of tasks with their dependencies, the slots with
    live log tails, the merge queue with gate results, task pages with logs and diffs, and charts.

    Every page has a JSON twin under /api/ (/api/, /api/tasks/ID, /api/merges, /api/stats) and
    /api/live streams the fleet as server-sent events. Pages and actions (create, retry, cancel,
    priority) need the token written to .gasworks/web-token (readable by you only, new at each
    start): open the URL printed, which carries it, or send it as Authorization: Bearer. Other
    accounts on this machine and other web sites cannot use the dashboard. Needs the `web` extra:
    pip install 'gasworks[web]'.
    """
    from gasworks.errors import MissingExtraError

    try:
        import uvicorn  # noqa: F401

        from gasworks.web.app import serve
        from gasworks.web.token import open_in_browser
    except ImportError as exc:
        raise MissingExtraError(f"the dashboard needs {exc.name or 'starlette and uvicorn'}: "
                                "pip install 'gasworks[web]'") from None
    project = open_project()
    if host not in ("127.0.0.1", "localhost"):
        click.echo(f"gasworks: warning: listening on {host} over plain HTTP: anyone who can see the traffic can "
                   "take the token and see and change your tasks", err=True)

    def ready(url: str) -> None:
        if open_browser:
            open_in_browser(project.state_dir, url)

    try:
        serve(project, host=host, port=port, actor=actor_name(ctx), say=click.echo, on_ready=ready)
    except KeyboardInterrupt:
        pass  # Ctrl+C is how the server stops
