"""Gas Town habits: agent-run (one agent, one task, here; what qwen-agent runs), sling, convoy."""

from __future__ import annotations

from pathlib import Path

import click

from gasworks import output
from gasworks.beads import task_to_record
from gasworks.cli.base import actor_name, cli, json_option, open_project
from gasworks.config import AGENTS
from gasworks.errors import InvalidValueError
from gasworks.models import Status


@cli.command(name="agent-run")
@click.option("--task-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The task, as text (it reaches the agent only through .current_task.txt; inside the "
                   "checkout, it is never committed).")
@click.option("--agent", type=click.Choice(AGENTS), default=None, help="Which agent (default: `agent` in config).")
@click.option("--model", default=None, help="Model for Aider (default: `model` in config).")
@click.option("--task-id", default="", help="Id for the log and the agent (default: the id in a first line "
                                           "\"Task <id>: <title>\", as gasworks writes task files, else \"task\").")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds before the agent is stopped (default: attempt_timeout; 0: no limit).")
@click.option("--keep-out", multiple=True, metavar="PATH",
              help="Never commit leftovers under PATH (repeatable), e.g. .claude in a Gas Town worktree.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where logs and agent state go (default: .gasworks/agent-run, else .git/gasworks/agent-run).")
@json_option
@click.pass_context
def agent_run(ctx: click.Context, task_file: Path, agent: str | None, model: str | None, task_id: str,
              timeout: float | None, keep_out: tuple[str, ...], log_dir: Path | None, as_json: bool) -> None:
    """Run the configured agent once on one task in this git checkout, and exit with the outcome.

    Uses the agent's own launch (its process group, no shell), commits what it left uncommitted,
    and judges from the commits it made. Exit codes: 0 done (new commits), 4 no change, 1 failed
    (non-zero exit, time limit, could not start), 75 model endpoint down, 130 stopped by a signal.
    SIGINT, SIGTERM and SIGHUP end the agent's whole process group.
    """
    from gasworks import git, process
    from gasworks.agents.oneshot import run_once
    from gasworks.config import load_config
    from gasworks.ingest import read_text_file

    text = read_text_file(task_file)
    checkout = git.toplevel(Path.cwd())
    config = load_config(git.main_root(checkout),
                         overrides={"agent": agent, "model": model, "attempt_timeout": timeout})
    try:  # a task file inside the checkout is the agent's input, never its work
        keep_out = (*keep_out, task_file.resolve().relative_to(checkout.resolve()).as_posix())
    except ValueError:
        pass
    with process.stop_signals() as stopping:
        result = run_once(checkout, text, config, task_id=task_id, run_dir=log_dir, keep_out=keep_out,
                          stop=stopping, say=lambda line: click.echo(line, err=True))
    if as_json:
        output.emit_json(result.to_dict())
    else:
        click.echo(f"{result.task_id}: {result.summary()}")
    ctx.exit(result.exit_code)


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_context
def sling(ctx: click.Context, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Put tasks at the front of the queue, in the order given, ahead of anything slung before.

    Partial ids work; an epic (a convoy) stands for its unfinished children. A task still
    waiting on others runs as soon as they are done.
    """
    from gasworks.convoy import sling_order

    store = open_project().open_store()
    ids = sling_order(store, [store.resolve_id(text) for text in task_ids])
    if not ids:
        raise InvalidValueError("nothing to sling: those epics have no unfinished children")
    slung = store.sling(ids, actor=actor_name(ctx))
    rows = [{**task_to_record(task), "position": n, "blocked_by": store.blockers(task.id)}
            for n, task in enumerate(slung, start=1)]
    if as_json:
        output.emit_json(rows)
        return
    for row in rows:
        waits = f"; waits on {', '.join(row['blocked_by'])}" if row["blocked_by"] else ""
        state = "" if row["status"] == Status.OPEN else f"; it is {row['status']}, so it runs once it is open again"
        click.echo(f"Slung {row['id']} to position {row['position']}: {output.oneline(row['title'], 70)}"
                   f"{waits}{state}")


@cli.group()
def convoy() -> None:
    """Epics as Gas Town convoys: how far each one's children have got."""


@convoy.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include closed epics.")
@json_option
def convoy_list(show_all: bool, as_json: bool) -> None:
    """Every open epic (a plan makes one) with its children's progress."""
    from gasworks.convoy import convoys

    found = convoys(open_project().open_store(), include_closed=show_all)
    if as_json:
        output.emit_json([c.to_dict(members=False) for c in found])
        return
    if not found:
        click.echo("no convoys (a plan makes one: `gasworks plan \"goal\"`)")
    for item in found:
        counts = ", ".join(f"{n} {state}" for state, n in item.counts().items()) or "no children"
        click.echo(f"{item.epic.id:<14} {item.finished}/{item.total} done  {output.oneline(item.epic.title, 60)}"
                   f"  ({counts})")


@convoy.command(name="status")
@click.argument("epic_id")
@json_option
def convoy_status(epic_id: str, as_json: bool) -> None:
    """One convoy: each child and its state (merged, done, merging, running, blocked, waiting, ready)."""
    from gasworks.convoy import convoy as load_convoy

    store = open_project().open_store()
    item = load_convoy(store, store.resolve_id(epic_id))
    if as_json:
        output.emit_json(item.to_dict())
        return
    counts = ", ".join(f"{n} {state}" for state, n in item.counts().items()) or "no children"
    click.echo(f"Convoy {item.epic.id}: {output.oneline(item.epic.title)} [{item.epic.status}]")
    click.echo(f"Progress: {item.finished}/{item.total} done ({counts})" + ("; complete" if item.complete else ""))
    for member in item.members:
        click.echo(f"  {member.task.id:<16} {member.state:<8} {output.oneline(member.task.title, 80)}")
