"""The `gasworks` command: thin commands over the library. Every listing takes --json.

User mistakes become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from gasworks import __version__, git, output
from gasworks import status as fleet_status
from gasworks.beads import task_to_record
from gasworks.config import AGENTS
from gasworks.errors import GasworksError, ImportFormatError, InvalidValueError
from gasworks.ingest import FORMATS, decode_text, read_tasks, read_text_file
from gasworks.models import CLI_DEP_TYPES, ISSUE_TYPES, parse_priority
from gasworks.project import Project, ensure_excludes, find_project, init_project, run_lock
from gasworks.store import NewTask


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


class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        _check_utf8(ctx)
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
            click.echo(f"gasworks: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("gasworks: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `gasworks list | head`
            sys.stderr.close()
            ctx.exit(0)


def _actor(ctx: click.Context) -> str:
    chosen = ctx.find_root().params.get("actor")
    for candidate in (chosen, os.environ.get("GASWORKS_ACTOR"), os.environ.get("BEADS_ACTOR"),
                      os.environ.get("BD_ACTOR")):
        if candidate:
            return candidate
    try:
        return git.user_name(Path.cwd()) or os.environ.get("USER") or "gasworks"
    except GasworksError:
        return os.environ.get("USER") or "gasworks"


def _project() -> Project:
    return find_project(Path.cwd())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
limit_option = click.option("-n", "--limit", type=click.IntRange(min=0), default=None,
                            help="Show at most this many (default: all).")


def _split(values: tuple[str, ...]) -> list[str]:
    """Options given as `-l a,b -l c` -> [a, b, c]."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _priority(_ctx: click.Context, _param: click.Parameter, value: Any) -> int | None:
    try:
        return None if value is None else parse_priority(value)
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gasworks")
@click.option("--actor", default=None, metavar="NAME",
              help="Who is acting, for assignees and events (default: $GASWORKS_ACTOR, $BEADS_ACTOR, "
                   "git user.name, $USER).")
def cli(actor: str | None) -> None:
    """Run a fleet of local coding agents on one git repository.

    Tasks live in .gasworks/gasworks.db (Beads-compatible fields and JSONL). Start with
    `gasworks init` in a git repository, then `gasworks create "title"` and `gasworks ready`.
    """


@cli.command()
@json_option
def init(as_json: bool) -> None:
    """Set up gasworks in the current git repository (safe to run again).

    Creates .gasworks/ (the store and logs), adds .gasworks/ and worktrees/ to
    .git/info/exclude, and writes a commented gasworks.toml if there is none.
    """
    project, done = init_project(Path.cwd())
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
    for item in _split(values):
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
    try:
        return decode_text(sys.stdin.buffer.read(), "<stdin>") if name == "-" else read_text_file(Path(name))
    except ImportFormatError as exc:
        raise InvalidValueError(f"description file {exc}") from None


@cli.command()
@click.argument("title")
@click.option("-d", "--description", default="", help="Description text.")
@click.option("--description-file", metavar="FILE", help="Read the description from FILE ('-' for stdin).")
@click.option("--design", default="", help="Design notes.")
@click.option("--acceptance", default="", help="Acceptance criteria.")
@click.option("-p", "--priority", default="2", callback=_priority, help="0-4 or P0-P4, 0 highest (default 2).")
@click.option("-t", "--type", "issue_type", type=click.Choice(ISSUE_TYPES), default="task", show_default=True)
@click.option("--parent", default=None, metavar="ID", help="Make this a child of epic ID (id becomes ID.N).")
@click.option("--deps", multiple=True, metavar="IDS",
              help="Comma-separated ids this task waits on; KIND:ID for other kinds, e.g. related:gw-a1b2.")
@click.option("-l", "--labels", multiple=True, metavar="LABELS", help="Comma-separated labels.")
@click.option("-a", "--assignee", default="", help="Assign to someone (agents only claim unassigned tasks).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the new id.")
@json_option
@click.pass_context
def create(ctx: click.Context, title: str, description: str, description_file: str | None, design: str,
           acceptance: str, priority: int, issue_type: str, parent: str | None, deps: tuple[str, ...],
           labels: tuple[str, ...], assignee: str, quiet: bool, as_json: bool) -> None:
    """Create a task (like `bd create`)."""
    if description_file:
        description = _read_text_file(description_file)
    project = _project()
    store = project.open_store()
    new = NewTask(
        title=title, description=description, design=design, acceptance_criteria=acceptance,
        priority=priority, issue_type=issue_type, assignee=assignee, labels=_split(labels),
        parent=store.resolve_id(parent) if parent else "",
        deps=[(store.resolve_id(target), kind) for target, kind in _parse_deps(deps)],
    )
    task = store.create_task(new, prefix=project.config.prefix, actor=_actor(ctx))
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
    """List tasks ready to work on: open, nothing unfinished in the way; by priority, then oldest first."""
    tasks = _project().open_store().ready(limit)
    output.emit_tasks(tasks, as_json, empty="no ready tasks")


@cli.command(name="list")
@click.option("-s", "--status", "statuses", multiple=True, metavar="STATUS",
              help="Only these statuses (comma-separated or repeated).")
@click.option("-l", "--label", "labels", multiple=True, metavar="LABEL", help="Only tasks with all these labels.")
@click.option("-t", "--type", "issue_type", default=None, help="Only this issue type.")
@click.option("-a", "--assignee", default=None, help="Only tasks assigned to this name.")
@click.option("--all", "show_all", is_flag=True, help="Include closed tasks.")
@limit_option
@json_option
def list_(statuses: tuple[str, ...], labels: tuple[str, ...], issue_type: str | None, assignee: str | None,
          show_all: bool, limit: int | None, as_json: bool) -> None:
    """List tasks (closed ones only with --all or --status closed)."""
    store = _project().open_store()
    wanted = _split(statuses)
    tasks = store.list_tasks(statuses=wanted or None, labels=_split(labels), issue_type=issue_type,
                             assignee=assignee, limit=limit, include_closed=show_all or bool(wanted))
    output.emit_tasks(tasks, as_json, empty="no tasks")


@cli.command()
@click.argument("task_id")
@json_option
def show(task_id: str, as_json: bool) -> None:
    """Show one task: fields, labels, dependencies, dependents and recent events."""
    store = _project().open_store()
    task = store.get_task(store.resolve_id(task_id))
    details = {
        **task_to_record(task),
        "blocked": store.is_blocked(task.id),
        "blocked_by": store.blockers(task.id),
        "dependents": [{"id": d.issue_id, "type": d.type} for d in store.dependents(task.id)],
        "lease_expires_at": task.lease_expires_at,
        "events": [output.event_dict(e) for e in store.events(task.id, limit=20)],
    }
    if as_json:
        output.emit_json(details)
    else:
        output.print_task_details(details)


@cli.command()
@click.argument("task_id")
@click.option("--title", default=None)
@click.option("-d", "--description", default=None)
@click.option("--design", default=None)
@click.option("--acceptance", default=None, help="Acceptance criteria.")
@click.option("--notes", default=None)
@click.option("-p", "--priority", default=None, callback=_priority, help="0-4 or P0-P4.")
@click.option("-s", "--status", default=None, help="New status (checked against the allowed transitions).")
@click.option("-a", "--assignee", default=None)
@click.option("--add-label", "add_labels", multiple=True, metavar="LABELS")
@click.option("--remove-label", "remove_labels", multiple=True, metavar="LABELS")
@click.option("--claim", is_flag=True, help="Claim it for yourself (atomic; fails if someone holds it).")
@json_option
@click.pass_context
def update(ctx: click.Context, task_id: str, title: str | None, description: str | None, design: str | None,
           acceptance: str | None, notes: str | None, priority: int | None, status: str | None,
           assignee: str | None, add_labels: tuple[str, ...], remove_labels: tuple[str, ...], claim: bool,
           as_json: bool) -> None:
    """Change a task's fields, status or labels, or claim it (like `bd update`)."""
    project = _project()
    store = project.open_store()
    task_id = store.resolve_id(task_id)
    actor = _actor(ctx)
    fields = {"title": title, "description": description, "design": design, "acceptance_criteria": acceptance,
              "notes": notes, "priority": priority, "assignee": assignee}
    changes = {name: value for name, value in fields.items() if value is not None}
    if changes:
        store.update_fields(task_id, actor=actor, **changes)
    if add_labels or remove_labels:
        store.change_labels(task_id, actor=actor, add=_split(add_labels), remove=_split(remove_labels))
    if status:
        store.transition(task_id, status, actor=actor)
    if claim:
        store.claim(task_id, actor, lease_seconds=project.config.lease_seconds)
    task = store.get_task(task_id)
    if as_json:
        output.emit_json(task_to_record(task))
    else:
        click.echo(f"Updated {task.id}: {output.task_line(task)}")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("-r", "--reason", default="", help="Why it is closed (default 'Closed').")
@click.option("--force", is_flag=True, help="Close an epic even if it has unfinished children.")
@json_option
@click.pass_context
def close(ctx: click.Context, task_ids: tuple[str, ...], reason: str, force: bool, as_json: bool) -> None:
    """Close tasks."""
    store = _project().open_store()
    closed = [store.close_task(store.resolve_id(t), actor=_actor(ctx), reason=reason, force=force) for t in task_ids]
    if as_json:
        output.emit_json([task_to_record(t) for t in closed])
    else:
        for task in closed:
            click.echo(f"Closed {task.id}: {output.oneline(task.title)}")


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_context
def reopen(ctx: click.Context, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Reopen closed tasks."""
    store = _project().open_store()
    opened = [store.transition(store.resolve_id(t), "open", actor=_actor(ctx), expected="closed")
              for t in task_ids]
    if as_json:
        output.emit_json([task_to_record(t) for t in opened])
    else:
        for task in opened:
            click.echo(f"Reopened {task.id}: {output.oneline(task.title)}")


@cli.group()
def dep() -> None:
    """Add, remove and show dependencies between tasks."""


@dep.command(name="add")
@click.argument("task_id")
@click.argument("depends_on")
@click.option("-t", "--type", "dep_type", type=click.Choice(CLI_DEP_TYPES), default="blocks", show_default=True,
              help="blocks, parent-child, conditional-blocks and waits-for hold TASK_ID back; the rest are links.")
@json_option
@click.pass_context
def dep_add(ctx: click.Context, task_id: str, depends_on: str, dep_type: str, as_json: bool) -> None:
    """Make TASK_ID depend on DEPENDS_ON. Cycles are refused."""
    store = _project().open_store()
    task_id, depends_on = store.resolve_id(task_id), store.resolve_id(depends_on)
    store.add_dependency(task_id, depends_on, dep_type, actor=_actor(ctx))
    if as_json:
        output.emit_json({"status": "added", "issue_id": task_id, "depends_on_id": depends_on, "type": dep_type})
    else:
        click.echo(f"{task_id} now depends on {depends_on} ({dep_type})")


@dep.command(name="rm")
@click.argument("task_id")
@click.argument("depends_on")
@json_option
@click.pass_context
def dep_rm(ctx: click.Context, task_id: str, depends_on: str, as_json: bool) -> None:
    """Remove the dependency of TASK_ID on DEPENDS_ON."""
    store = _project().open_store()
    task_id = store.resolve_id(task_id)
    store.remove_dependency(task_id, depends_on, actor=_actor(ctx))
    if as_json:
        output.emit_json({"status": "removed", "issue_id": task_id, "depends_on_id": depends_on})
    else:
        click.echo(f"{task_id} no longer depends on {depends_on}")


@dep.command(name="tree")
@click.argument("task_id")
@json_option
def dep_tree(task_id: str, as_json: bool) -> None:
    """Show what TASK_ID waits on, recursively."""
    store = _project().open_store()
    tree = store.dependency_tree(store.resolve_id(task_id))
    if as_json:
        output.emit_json(tree)
    else:
        output.print_tree(tree)


@cli.command(name="export")
@click.option("-o", "--output", "target", default=None, metavar="FILE",
              help="Write to FILE (e.g. .beads/issues.jsonl) atomically instead of stdout.")
def export_(target: str | None) -> None:
    """Export every task as Beads JSONL, one issue per line, sorted by id."""
    tasks = _project().open_store().export_tasks()
    if target is None:
        count = output.write_jsonl(tasks, sys.stdout)
        click.echo(f"exported {count} tasks", err=True)
    else:
        with output.progress(f"exporting to {target}"):
            count = output.write_jsonl_file(tasks, Path(target))
        click.echo(f"exported {count} tasks to {target}", err=True)


@cli.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Default: by extension (.jsonl beads, .json queue, .md markdown), else by content.")
@click.option("--dry-run", is_flag=True, help="Report what would change, write nothing.")
@json_option
@click.pass_context
def import_(ctx: click.Context, file: Path, fmt: str | None, dry_run: bool, as_json: bool) -> None:
    """Import tasks from Beads JSONL, a classic task_queue.json, or a markdown list of tasks.

    Beads JSONL merges by id (a newer updated_at wins) and keeps fields gasworks does
    not use. task_queue.json takes a list of {title, description, status}. In markdown,
    headings (or list items, when a section is only a list) become tasks, the text under
    a heading its description. All or nothing: a bad line is reported with its line
    number and nothing is written. Importing the same file twice adds nothing.
    """
    project = _project()
    with output.progress(f"importing {file}", quiet=as_json):
        tasks = read_tasks(file, fmt)
        result = project.open_store().import_tasks(tasks, prefix=project.config.prefix, actor=_actor(ctx),
                                                   dry_run=dry_run)
    summary = {"file": str(file), "read": len(tasks), "created": result.created, "updated": result.updated,
               "skipped": result.skipped, "dry_run": dry_run, "ids": result.ids}
    if as_json:
        output.emit_json(summary)
    else:
        verb = "would import" if dry_run else "imported"
        click.echo(f"{verb} {file}: {result.created} created, {result.updated} updated, "
                   f"{result.skipped} unchanged or already present")


@cli.command()
@click.option("-w", "--workers", type=click.IntRange(1, 256), default=None,
              help="Agents at once (default: num_workers from the config, 14).")
@click.option("--agent", type=click.Choice(AGENTS), default=None, help="Which agent runs tasks (default: config).")
@click.option("--until-done", is_flag=True,
              help="Exit once nothing is ready, running or waiting to merge: 0 if all done, 1 if work is left "
                   "blocked or failed.")
@click.option("--host-id", default=None, metavar="NAME",
              help="This host's name when several hosts share one PostgreSQL `store` and git `remote`.")
def run(workers: int | None, agent: str | None, until_done: bool, host_id: str | None) -> None:
    """Keep agents busy on ready tasks, each in its own git worktree, merging what they finish.

    Ctrl+C once: claim nothing more and let running agents finish (grace_seconds); twice:
    stop them at once. Either way every unfinished task goes back to the queue. After a
    crash, the next run ends leftover agents and requeues their tasks.

    Several hosts: each runs `gasworks run --host-id NAME` in its own clone, with the same
    `store` (postgresql://...) and `remote`; one refinery at a time lands their branches.
    """
    from gasworks.agents import get_agent
    from gasworks.dispatcher import Dispatcher, run_fleet

    project = find_project(Path.cwd(), overrides={"num_workers": workers, "agent": agent, "host_id": host_id})
    ensure_excludes(project.root)
    with run_lock(project):
        store = project.open_store()
        config = project.config
        view = fleet_status.FleetView(sys.stdout.isatty())
        dispatcher = Dispatcher(project, store, get_agent(config.agent, config), config, say=view.say)
        with view:
            code = run_fleet(dispatcher, until_done=until_done,
                             on_tick=lambda now: view.update(dispatcher.snapshot(now)))
        counts = store.counts()
        view.say("done: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    sys.exit(code)


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Also show finished merges (default: the queue and the "
                                                          "last 20 results).")
@json_option
def merges(show_all: bool, as_json: bool) -> None:
    """The merge queue (oldest first) and recent results: trial merge, gate runs and seconds, outcome."""
    store = _project().open_store()
    queue = store.merges(statuses=["queued", "merging"], oldest_first=True)
    done = [m for m in store.merges(limit=100_000 if show_all else 20) if m.status not in ("queued", "merging")]
    if as_json:
        output.emit_json({"queue": [output.merge_dict(m) for m in queue],
                          "recent": [output.merge_dict(m) for m in done],
                          "stats": output.merge_stats(store.merges(limit=100_000), store.gate_run_totals())})
        return
    output.print_merges(queue, done)


@cli.command(name="merge-retry")
@click.argument("task_id")
@json_option
def merge_retry(task_id: str, as_json: bool) -> None:
    """Put a task's branch (gasworks/TASK_ID) back in the merge queue."""
    from gasworks.refinery import Refinery
    from gasworks.upstream import make_upstream

    project = _project()
    store = project.open_store()
    task_id = store.resolve_id(task_id)
    refinery = Refinery(project, store, project.config, make_upstream(project.root, project.config))
    merge = refinery.retry(task_id)
    if as_json:
        output.emit_json(output.merge_dict(merge))
    else:
        click.echo(f"queued {merge.branch} ({merge.head[:12]}) to merge again")


@cli.command()
@click.option("--once", is_flag=True, help="Exit when the queue is empty (default: keep watching it).")
def refinery(once: bool) -> None:
    """Run the merge queue alone, without agents (one refinery at a time lands changes)."""
    from gasworks.refinery import Refinery
    from gasworks.upstream import make_upstream

    project = _project()
    store = project.open_store()
    view = fleet_status.FleetView(False)
    merger = Refinery(project, store, project.config, make_upstream(project.root, project.config),
                      say=view.say)
    merger.ensure()
    while True:
        worked = merger.process()
        if once and not worked and not merger.pending():
            break
        if not worked:
            time.sleep(0.2)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--from", "source", default=None, metavar="ID", help="The task these ideas came from.")
@json_option
@click.pass_context
def ingest(ctx: click.Context, file: Path | None, source: str | None, as_json: bool) -> None:
    """Turn the lines of suggested_tasks.txt (in the repository root) into tasks, then clear it.

    One idea per line. Blank lines, duplicates (also of open tasks), overlong lines and lines
    with control characters are dropped and counted; max_suggestions_per_task and
    max_suggested_backlog cap the rest. New tasks get priority 3 and the label `suggested`.
    A file that is not UTF-8 text, or holds a NUL byte, is refused whole and left as it is.
    """
    from gasworks.ingest import SUGGESTIONS_FILE, parse_suggestions

    project = _project()
    store = project.open_store()
    path = file or project.root / SUGGESTIONS_FILE
    if not path.is_file():
        raise InvalidValueError(f"{path} does not exist: nothing to ingest")
    # Undecodable bytes or a NUL: refuse the whole file (and keep it) rather than lose its lines.
    titles, dropped = parse_suggestions(read_text_file(path, nul_ok=False))
    made, refused = store.add_suggestions(
        titles, source=store.resolve_id(source) if source else None, prefix=project.config.prefix,
        actor=_actor(ctx), max_per_task=len(titles) if not source else project.config.max_suggestions_per_task,
        backlog_cap=project.config.max_suggested_backlog)
    path.write_text("", encoding="utf-8")  # the tasks are stored: only now is the file cleared
    report = {"file": str(path), "created": made, "dropped": {**dropped, **refused}}
    if as_json:
        output.emit_json(report)
        return
    lost = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in report["dropped"].items() if n)
    click.echo(f"{len(made)} suggestion(s) became tasks" + (f"; dropped: {lost}" if lost else "")
               + f"; {path.name} cleared")


@cli.command()
@click.argument("goal")
@click.option("--max-tasks", type=click.IntRange(1, 50), default=12, show_default=True)
@click.option("--dry-run", is_flag=True, help="Show the plan, write nothing.")
@json_option
def plan(goal: str, max_tasks: int, dry_run: bool, as_json: bool) -> None:
    """Split a big GOAL into small tasks with dependencies (an epic and its children).

    The model (the configured endpoints, or the embedded one) sees the goal and a view of the
    repository, and answers in a JSON schema. A plan with a cycle or bad references gets one
    repair round, then a clear error, and nothing is written. Tasks that repeat an open task
    are dropped. Each task's expected files become `files:` labels for the scheduler.
    """
    from gasworks.planner import plan_dict, run_plan

    project = _project()
    store = project.open_store()
    with output.progress("asking the model for a plan", quiet=as_json):
        made_plan, created = run_plan(project, store, goal, max_tasks=max_tasks, dry_run=dry_run)
    report = {**plan_dict(made_plan), "dry_run": dry_run, "created": [t.id for t in created]}
    if as_json:
        output.emit_json(report)
        return
    for number, task in enumerate(made_plan.tasks, start=1):
        after = f"  (after {', '.join(map(str, task.depends_on))})" if task.depends_on else ""
        dropped = f"  [repeats {task.duplicate_of}: not created]" if task.duplicate_of else ""
        click.echo(f"{number:>2}. P{task.priority} {output.oneline(task.title)}{after}{dropped}")
    for fix in made_plan.fixes:
        click.echo(f"    fixed: {fix}")
    if created:
        click.echo(f"created epic {created[0].id} with {len(created) - 1} tasks: "
                   + ", ".join(t.id for t in created[1:]))
    elif dry_run:
        click.echo("(dry run: nothing written)")


cli.add_command(plan, name="split")


@cli.command(name="serve-model")
@click.option("--model", default="smollm2", show_default=True, help="smollm2 (shipped) or a path to a .gguf file.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Requests served at once (slots).")
@click.option("--ctx", type=click.IntRange(256, 131072), default=2048, show_default=True,
              help="Context size of each slot, in tokens.")
@click.option("--threads", type=click.IntRange(0, 256), default=0, help="CPU threads (default: all cores).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write {\"url\": ...} here once serving (for scripts).")
def serve_model(model: str, parallel: int, ctx: int, threads: int, port: int, ready_file: Path | None) -> None:
    """Serve the embedded model as an OpenAI-compatible endpoint on 127.0.0.1 until Ctrl+C.

    Aider or any tool can use it: point it at the printed URL (e.g. aider --model
    openai/smollm2 --openai-api-base URL --openai-api-key none).
    """
    import signal
    import threading

    from gasworks.llm.embedded import EmbeddedServer, ServeOptions

    server = EmbeddedServer(ServeOptions(model, parallel, ctx, threads, port))
    url = server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if ready_file is not None:
        temp = ready_file.with_suffix(".tmp")
        temp.write_text(json.dumps({"url": url, "model": str(server.model_path), "parallel": parallel}))
        temp.replace(ready_file)
    click.echo(f"serving {server.model_path.name} at {url}/v1 with {parallel} slots of {ctx} tokens; "
               "Ctrl+C to stop", err=ready_file is not None)
    stop.wait()
    server.stop()


@cli.command()
@click.option("--watch", is_flag=True,
              help="Keep showing it until Ctrl+C: on a terminal a live table (one row per slot with its task, "
                   "elapsed time, quiet time, tokens and last log line; the merge queue; counts; throughput), "
                   "otherwise the report again every --interval (one JSON object per line with --json).")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="With --watch: stop after N refreshes.")
@json_option
def status(watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    """What the fleet is doing: running agents by slot, tasks waiting to merge, counts by status.

    It reads the store and the log files only, so it works from any terminal while `gasworks run`
    works in another.
    """
    project = _project()
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


@cli.command()
@click.argument("task_id")
@click.option("--attempt", "attempt_id", type=click.IntRange(min=1), default=None, metavar="N",
              help="Which attempt, by the number `gasworks status` shows (default: the latest).")
@click.option("-f", "--follow", is_flag=True, help="Go on printing what the agent writes until the attempt ends.")
@click.option("-n", "--lines", "last", type=click.IntRange(min=0), default=None,
              help="Start with only the last N lines (default: the whole log).")
@json_option
def logs(task_id: str, attempt_id: int | None, follow: bool, last: int | None, as_json: bool) -> None:
    """Print the log of a task's latest attempt (or --attempt N); with -f, follow it live.

    Logs live in .gasworks/logs/TASK/ATTEMPT.log. Control characters an agent printed are shown
    as \\xNN and colours are dropped, so a log cannot take over your terminal.
    """
    from gasworks import logs as attempt_logs

    if follow and as_json:
        raise click.UsageError("--json prints the log once: drop --follow")
    project = _project()
    store = project.open_store()
    attempt = attempt_logs.pick_attempt(store, store.resolve_id(task_id), attempt_id)
    lines = attempt_logs.attempt_lines(store, project.logs_dir, attempt, last=last, keep_following=follow)
    if as_json:
        output.emit_json({"task": attempt.task_id, "attempt": attempt.id, "slot": attempt.slot,
                          "outcome": attempt.outcome or "running",
                          "log": str(attempt_logs.log_path(project.logs_dir, attempt)), "lines": list(lines)})
        return
    try:
        for line in lines:
            click.echo(line)
    except KeyboardInterrupt:
        return
    if follow:
        ended = attempt_logs.pick_attempt(store, attempt.task_id, attempt.id)
        click.echo(f"attempt {ended.id} ended: {ended.outcome}"
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

    report = fleet_stats(_project().open_store())
    if as_json:
        output.emit_json(report)
        return
    for line in stats_lines(report):
        click.echo(line)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but 127.0.0.1/localhost opens the dashboard, which has no "
                   "login, to your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8077, show_default=True,
              help="Port to listen on (0 takes any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in your web browser.")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    """Serve the dashboard until Ctrl+C: the board of tasks with their dependencies, the slots with
    live log tails, the merge queue with gate results, task pages with logs and diffs, and charts.

    Every page has a JSON twin under /api/ (/api/, /api/tasks/ID, /api/merges, /api/stats) and
    /api/live streams the fleet as server-sent events. Actions (create, retry, cancel,
    priority) need the token the pages carry, so other web sites cannot make them. Needs the
    `web` extra: pip install 'gasworks[web]'.
    """
    from gasworks.errors import MissingExtraError

    try:
        import uvicorn  # noqa: F401

        from gasworks.web.app import serve
    except ImportError as exc:
        raise MissingExtraError(f"the dashboard needs {exc.name or 'starlette and uvicorn'}: "
                                "pip install 'gasworks[web]'") from None
    project = _project()
    if host not in ("127.0.0.1", "localhost"):
        click.echo(f"gasworks: warning: listening on {host}: anyone who can reach it can see and change your "
                   "tasks", err=True)

    def ready(url: str) -> None:
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        serve(project, host=host, port=port, actor=_actor(ctx), say=click.echo, on_ready=ready)
    except KeyboardInterrupt:
        pass  # Ctrl+C is how the server stops


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create the demo repository (default: a new temporary directory).")
@click.option("--agent", type=click.Choice(["builtin", "fake"]), default="builtin", show_default=True,
              help="builtin: the built-in agent on the embedded model (a few minutes); fake: scripted, seconds.")
@click.option("-w", "--workers", type=click.IntRange(1, 14), default=4, show_default=True)
@json_option
def demo(directory: Path | None, agent: str, workers: int, as_json: bool) -> None:
    """Make a sample repository with tests and a dozen tasks, and run the whole loop on it.

    Agents work in their own worktrees, every branch is gated by the repository's tests,
    and what passes is merged into main. The default runs the built-in agent on the
    embedded model, which needs no server (it is tiny: it shows the loop, not good code).
    """
    from gasworks.demo import run_demo

    report = run_demo(directory, say=(lambda _line: None) if as_json else click.echo, agent=agent, workers=workers)
    if as_json:
        output.emit_json(report)


def main() -> None:
    cli(prog_name="gasworks")
