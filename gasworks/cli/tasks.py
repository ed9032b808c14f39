"""Commands on tasks: init, create, ready, list, search, blocked, show, update, close, reopen, retry (`dep` is
in cli/deps.py, `import` and `export` in cli/exchange.py). Their names, flags and JSON follow bd's (Beads),
so bd users can type what they know."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gasworks import output
from gasworks.beads import task_to_record
from gasworks.cli.base import (
    actor_name,
    cli,
    json_option,
    limit_option,
    open_project,
    priority_value,
    split_list,
)
from gasworks.errors import ImportFormatError, InvalidValueError
from gasworks.models import CLI_DEP_TYPES, ISSUE_TYPES, Status
from gasworks.project import init_project, keep_aider, task_prefix, write_scripts
from gasworks.store import TaskReader


@cli.command()
@click.option("--scripts", is_flag=True, help="Also write the classic dispatch_workers.py, split_task.py and "
                                               "ingest_suggested_tasks.py, each a thin call into gasworks.")
@json_option
def init(scripts: bool, as_json: bool) -> None:
    """Set up gasworks in the current git repository (safe to run again).

    Creates .gasworks/ (the store and logs), adds .gasworks/ and worktrees/ to
    .git/info/exclude, and writes a commented gasworks.toml if there is none.
    """
    project, done = init_project(Path.cwd())
    if scripts:
        done += write_scripts(project.root) + keep_aider(project.root)
    if as_json:
        output.emit_json({"root": str(project.root), "store": str(project.db_path), "actions": done})
        return
    for line in done or ["already set up; nothing to do"]:
        click.echo(line)
    click.echo(f"gasworks project ready in {project.root}")


def _parse_deps(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """`--deps X,related:Y`: bare X means the new task is blocked by X (as in `bd create --deps`)."""
    aliases = {"depends-on": "blocks", "blocked-by": "blocks", **{t: t for t in CLI_DEP_TYPES}}
    deps = []
    for item in split_list(values):
        kind, sep, target = item.partition(":")
        if not sep:
            kind, target = "blocks", item
        if kind not in aliases:
            raise InvalidValueError(
                f"unknown dependency kind {kind!r} in --deps: use ID or KIND:ID with KIND one of "
                f"{', '.join(aliases)}"
            )
        deps.append((target, aliases[kind]))
    return deps


def _read_text_file(name: str) -> str:
    """The file's text exactly as written (no newline translation); NUL bytes are kept too."""
    from gasworks.ingest import decode_text, read_text_file  # here: most commands read no file

    try:
        return decode_text(sys.stdin.buffer.read(), "<stdin>") if name == "-" else read_text_file(Path(name))
    except ImportFormatError as exc:
        raise InvalidValueError(f"description file {exc}") from None


def description_options(command: Any) -> Any:
    """-d TEXT, --body-file FILE and --stdin, as bd's create and update take them."""
    for option in reversed((
        click.option("-d", "--description", default=None, help="Description text ('-': read it from stdin)."),
        click.option("--body-file", "--description-file", "body_file", metavar="FILE",
                     help="Read the description from FILE ('-' for stdin), exactly as written."),
        click.option("--stdin", "from_stdin", is_flag=True, help="Read the description from stdin (as --body-file -)."),
    )):
        command = option(command)
    return command


def _description(description: str | None, body_file: str | None, from_stdin: bool) -> str | None:
    """The description given one way (None: not given), as bd reads -d, -d -, --body-file and --stdin."""
    given = [name for name, value in (("--description", description is not None),
                                      ("--body-file", body_file is not None), ("--stdin", from_stdin)) if value]
    if len(given) > 1:
        raise InvalidValueError(f"give the description one way, not {' and '.join(given)}")
    if from_stdin or description == "-":
        return _read_text_file("-")
    return _read_text_file(body_file) if body_file is not None else description


@cli.command()
@click.argument("title")
@description_options
@click.option("--design", default="", help="Design notes.")
@click.option("--acceptance", default="", help="Acceptance criteria.")
@click.option("-p", "--priority", default="2", callback=priority_value, help="0-4 or P0-P4, 0 highest (default 2).")
@click.option("-t", "--type", "issue_type", type=click.Choice(ISSUE_TYPES), default="task", show_default=True)
@click.option("--parent", default=None, metavar="ID", help="Make this a child of epic ID (id becomes ID.N).")
@click.option("--deps", multiple=True, metavar="IDS",
              help="Comma-separated ids this task waits on; KIND:ID for other kinds, e.g. related:gw-a1b2.")
@click.option("-l", "--labels", multiple=True, metavar="LABELS", help="Comma-separated labels.")
@click.option("-a", "--assignee", default="", help="Assign to someone (agents only claim unassigned tasks).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the new id.")
@json_option
@click.pass_context
def create(ctx: click.Context, title: str, description: str | None, body_file: str | None, from_stdin: bool,
           design: str, acceptance: str, priority: int, issue_type: str, parent: str | None, deps: tuple[str, ...],
           labels: tuple[str, ...], assignee: str, quiet: bool, as_json: bool) -> None:
    """Create a task (like `bd create`).

    Its id takes the prefix of gasworks.toml's `prefix` when set there, else the prefix most
    of the repository's tasks carry (bd-a1b2 after importing bd's issues), else gw."""
    from gasworks.store import NewTask  # here: only create makes one (see store/__init__.py)

    description = _description(description, body_file, from_stdin) or ""
    project = open_project()
    store = project.open_store()
    new = NewTask(
        title=title, description=description, design=design, acceptance_criteria=acceptance,
        priority=priority, issue_type=issue_type, assignee=assignee, labels=split_list(labels),
        parent=store.resolve_id(parent) if parent else "",
        deps=[(store.resolve_id(target), kind) for target, kind in _parse_deps(deps)],
    )
    task = store.create_task(new, prefix=task_prefix(project.config, store), actor=actor_name(ctx))
    if as_json:
        output.emit_json(task_to_record(task))
    elif quiet:
        click.echo(task.id)
    else:
        click.echo(f"Created {task.id}: {output.oneline(task.title)}")


@cli.command()
@limit_option
@json_option
def ready(limit: int | None, as_json: bool) -> None:
    """List tasks ready to work on: open, nothing unfinished in the way; by priority, then oldest first.

    As `bd ready`: not pinned, not ephemeral, not deferred (defer_until in the future, of the task
    or its parent), nothing unfinished in the way (blocks, conditional-blocks, waits-for, and the
    same for every parent up the chain). Unlike bd, epics are never listed: they are bookkeeping,
    their children are the work.
    """
    tasks = open_project().open_store().ready(limit)
    output.emit_tasks(tasks, as_json, empty="no ready tasks")


def status_filter(store: TaskReader, values: tuple[str, ...]) -> tuple[list[str], bool]:
    """--status values (comma-separated or repeated) -> (statuses, every status). A Beads custom
    status is known once a task has it; `all` means every status."""
    wanted = split_list(values)
    if "all" in wanted:
        return [], True
    in_use = set(store.counts()) if wanted else set()
    unknown = [name for name in wanted if name not in {s.value for s in Status} and name not in in_use]
    if unknown:
        known = sorted({s.value for s in Status} | in_use - {"ready", "waiting"})
        raise InvalidValueError(f"no task has status {', '.join(unknown)} (statuses: {', '.join(known)}, or all)")
    return wanted, False


@cli.command(name="list")
@click.option("-s", "--status", "statuses", multiple=True, metavar="STATUS",
              help="Only these statuses (comma-separated or repeated; all: every status).")
@click.option("-p", "--priority", default=None, callback=priority_value, help="Only this priority (0-4 or P0-P4).")
@click.option("-l", "--label", "labels", multiple=True, metavar="LABEL", help="Only tasks with all these labels.")
@click.option("-t", "--type", "issue_type", default=None, help="Only this issue type.")
@click.option("-a", "--assignee", default=None, help="Only tasks assigned to this name.")
@click.option("--title", "--title-contains", "title", default=None, metavar="TEXT",
              help="Only titles containing TEXT, ignoring case.")
@click.option("--desc-contains", "description", default=None, metavar="TEXT",
              help="Only descriptions containing TEXT, ignoring case.")
@click.option("--all", "show_all", is_flag=True, help="Include closed tasks.")
@limit_option
@json_option
def list_(statuses: tuple[str, ...], priority: int | None, labels: tuple[str, ...], issue_type: str | None,
          assignee: str | None, title: str | None, description: str | None, show_all: bool, limit: int | None,
          as_json: bool) -> None:
    """List tasks (like `bd list`): closed ones only with --all or --status, by priority then age."""
    store = open_project().open_store()
    wanted, every = status_filter(store, statuses)
    tasks = store.list_tasks(statuses=wanted or None, labels=split_list(labels), issue_type=issue_type,
                             assignee=assignee, limit=limit, include_closed=show_all or every or bool(wanted),
                             priority=priority, title=title, description=description)
    output.emit_tasks(tasks, as_json, empty="no tasks")


@cli.command()
@click.argument("query", required=False)
@click.option("--query", "query_option", default=None, help="The text to find (instead of QUERY).")
@click.option("-s", "--status", "statuses", multiple=True, metavar="STATUS",
              help="Only these statuses (comma-separated or repeated; default: every status).")
@click.option("-l", "--label", "labels", multiple=True, metavar="LABEL", help="Only tasks with all these labels.")
@click.option("-t", "--type", "issue_type", default=None, help="Only this issue type.")
@click.option("-a", "--assignee", default=None, help="Only tasks assigned to this name.")
@click.option("-n", "--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show at most this many (0: all).")
@json_option
def search(query: str | None, query_option: str | None, statuses: tuple[str, ...], labels: tuple[str, ...],
           issue_type: str | None, assignee: str | None, limit: int, as_json: bool) -> None:
    """Find tasks whose id, title or description contains QUERY, ignoring case (like `bd search`)."""
    text = query or query_option
    if not text or not text.strip():
        raise InvalidValueError("give the text to find: gasworks search QUERY")
    store = open_project().open_store()
    wanted, _ = status_filter(store, statuses)
    tasks = store.list_tasks(statuses=wanted or None, labels=split_list(labels), issue_type=issue_type,
                             assignee=assignee, limit=limit or None, text=text)
    if not as_json and tasks:
        click.echo(f"Found {len(tasks)} tasks matching {output.oneline(text)!r}:")
    output.emit_tasks(tasks, as_json, empty=f"no tasks match {output.oneline(text)!r}")


@cli.command()
@limit_option
@json_option
def blocked(limit: int | None, as_json: bool) -> None:
    """List unfinished tasks held back by unfinished work, with what holds each back (like `bd blocked`)."""
    store = open_project().open_store()
    tasks = store.list_tasks(blocked=True, limit=limit)
    rows = [{**task_to_record(task), "blocked_by": store.blockers(task.id)} for task in tasks]
    if as_json:
        output.emit_json([{**row, "blocked_by_count": len(row["blocked_by"])} for row in rows])
        return
    if not tasks:
        click.echo("no blocked tasks", err=True)
    for task, row in zip(tasks, rows):
        click.echo(output.task_line(task))
        click.echo(f"  blocked by {', '.join(row['blocked_by'])}" if row["blocked_by"] else
                   "  blocked through a parent that waits on unfinished work (see `gasworks dep tree`)")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
def show(task_ids: tuple[str, ...], as_json: bool) -> None:
    """Show tasks: fields, labels, dependencies, dependents, comments, the agents' attempts (how
    each ended, how long, tokens, its log) and recent events (like `bd show`). With --json, an
    array of one object per id, as bd gives."""
    import time

    from gasworks.logs import log_path

    project = open_project()
    store = project.open_store()
    details = []
    ids = [store.resolve_id(t) for t in task_ids]  # every id known before anything is shown
    reasons = store.failure_reasons(ids)
    for task_id in ids:
        task = store.get_task(task_id)
        details.append({
            **task_to_record(task),
            "reason": output.failure_reason(reasons.get(task_id)),
            "blocked": store.is_blocked(task.id),
            "blocked_by": store.blockers(task.id),
            "dependents": [{"id": d.issue_id, "type": d.type} for d in store.dependents(task.id)],
            "lease_expires_at": task.lease_expires_at,
            "events": [output.event_dict(e) for e in store.events(task.id, limit=20)],
            "attempts": [output.attempt_record(a, log_path(project.logs_dir, a), time.time())
                         for a in store.attempts(task.id)],
        })
    if as_json:
        output.emit_json(details)
        return
    for number, one in enumerate(details):
        if number:
            click.echo("\n" + "\u2500" * 60)
        output.print_task_details(one)


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--title", default=None, help="New title.")
@description_options
@click.option("--design", default=None, help="New design notes.")
@click.option("--acceptance", default=None, help="New acceptance criteria.")
@click.option("--notes", default=None, help="New notes (they replace the old ones).")
@click.option("-p", "--priority", default=None, callback=priority_value, help="0-4 or P0-P4, 0 highest.")
@click.option("-s", "--status", default=None, help="New status (checked against the allowed transitions).")
@click.option("-a", "--assignee", default=None, help="Assign to this name ('' unassigns).")
@click.option("--add-label", "add_labels", multiple=True, metavar="LABELS", help="Add labels (comma-separated).")
@click.option("--remove-label", "remove_labels", multiple=True, metavar="LABELS",
              help="Remove labels (comma-separated).")
@click.option("--claim", is_flag=True, help="Claim each for yourself (atomic; fails if someone holds one).")
@json_option
@click.pass_context
def update(ctx: click.Context, task_ids: tuple[str, ...], title: str | None, description: str | None,
           body_file: str | None, from_stdin: bool, design: str | None, acceptance: str | None, notes: str | None,
           priority: int | None, status: str | None, assignee: str | None, add_labels: tuple[str, ...],
           remove_labels: tuple[str, ...], claim: bool, as_json: bool) -> None:
    """Change tasks' fields, status or labels, or claim them (like `bd update ID...`).

    All or nothing, in one transaction: if one id is unknown or one change is refused, no
    task changes. `--claim --assignee NAME` claims for NAME. With --json, an array, as bd gives."""
    project = open_project()
    store = project.open_store()
    if claim and status and status != Status.IN_PROGRESS:
        raise InvalidValueError(f"--claim makes a task in_progress; it cannot also be set to {status}")
    if title is not None and not title.strip():
        raise InvalidValueError("a task needs a non-empty title")
    fields = {"title": title, "description": _description(description, body_file, from_stdin), "design": design,
              "acceptance_criteria": acceptance, "notes": notes, "priority": priority,
              "assignee": None if claim else assignee}
    changes = {name: value for name, value in fields.items() if value is not None}
    actor = actor_name(ctx)
    with store.batch():
        ids = [store.resolve_id(t) for t in task_ids]
        for task_id in ids:
            if claim:
                store.claim(task_id, assignee or actor, lease_seconds=project.config.lease_seconds)
            elif status:
                store.transition(task_id, status, actor=actor)
            if changes:
                store.update_fields(task_id, actor=actor, **changes)
            if add_labels or remove_labels:
                store.change_labels(task_id, actor=actor, add=split_list(add_labels),
                                    remove=split_list(remove_labels))
        tasks = [store.get_task(task_id) for task_id in ids]
    if as_json:
        output.emit_json([task_to_record(task) for task in tasks])
        return
    for task in tasks:
        click.echo(f"Updated {task.id}: {output.task_line(task)}")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("-r", "--reason", default="", help="Why they are closed (default 'Closed').")
@click.option("-f", "--force", is_flag=True, help="Close an epic even if it has unfinished children.")
@json_option
@click.pass_context
def close(ctx: click.Context, task_ids: tuple[str, ...], reason: str, force: bool, as_json: bool) -> None:
    """Close tasks (like `bd close ID...`): all or nothing, in one transaction."""
    store = open_project().open_store()
    with store.batch():
        closed = [store.close_task(task_id, actor=actor_name(ctx), reason=reason, force=force)
                  for task_id in [store.resolve_id(t) for t in task_ids]]
    _say_done(closed, "Closed", as_json)


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("-r", "--reason", default="", help="Why they are reopened: kept as a comment on each, as bd does.")
@json_option
@click.pass_context
def reopen(ctx: click.Context, task_ids: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Reopen closed tasks (like `bd reopen ID...`): all or nothing, in one transaction."""
    store = open_project().open_store()
    actor = actor_name(ctx)
    with store.batch():
        ids = [store.resolve_id(t) for t in task_ids]
        for task_id in ids:
            store.transition(task_id, Status.OPEN, actor=actor, expected=Status.CLOSED, reason=reason)
            if reason:
                store.add_comment(task_id, reason, author=actor)
        opened = [store.get_task(task_id) for task_id in ids]
    _say_done(opened, "Reopened", as_json)


def _say_done(tasks: list, verb: str, as_json: bool) -> None:
    if as_json:
        output.emit_json([task_to_record(t) for t in tasks])
        return
    for task in tasks:
        click.echo(f"{verb} {task.id}: {output.oneline(task.title)}")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_context
def retry(ctx: click.Context, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Give tasks another go now, as the dashboard's Retry does: back to open, the needs-human label
    removed and any wait before the next attempt dropped, so the fleet takes them at once. All or
    nothing: one that an agent or the merge queue holds refuses the whole command."""
    from gasworks.web.actions import retry as retry_task

    store = open_project().open_store()
    ids = [store.resolve_id(task_id) for task_id in task_ids]
    with store.batch():
        tasks = [retry_task(store, task_id, actor=actor_name(ctx)) for task_id in ids]
    _say_done(tasks, "Retried", as_json)
