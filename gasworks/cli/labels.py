"""`gasworks label add|remove|list|list-all`: labels the way `bd label` handles them."""

from __future__ import annotations

import click

from gasworks import output
from gasworks.cli.base import actor_name, cli, json_option, open_project
from gasworks.errors import InvalidValueError


@cli.group()
def label() -> None:
    """Add, remove and list labels (like `bd label`)."""


def _change(ctx: click.Context, args: tuple[str, ...], as_json: bool, *, add: bool) -> None:
    """ID... LABEL: one label on (or off) several tasks, all or nothing, in one transaction."""
    if len(args) < 2:
        raise InvalidValueError("give one or more task ids, then the label: ID... LABEL")
    *given, name = args
    if not name.strip():
        raise InvalidValueError("a label cannot be empty")
    store = open_project().open_store()
    with store.batch():
        ids = [store.resolve_id(t) for t in given]
        for task_id in ids:
            store.change_labels(task_id, actor=actor_name(ctx), add=[name] if add else [],
                                remove=[] if add else [name])
    verb, where = ("added", "to") if add else ("removed", "from")
    if as_json:
        output.emit_json([{"status": verb, "issue_id": task_id, "label": name} for task_id in ids])
        return
    for task_id in ids:
        click.echo(f"{verb.capitalize()} label {output.oneline(name)!r} {where} {task_id}")


def _label_command(name: str, add: bool, doc: str) -> None:
    @label.command(name=name, help=doc)
    @click.argument("args", nargs=-1, required=True, metavar="ID... LABEL")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, args: tuple[str, ...], as_json: bool) -> None:
        _change(ctx, args, as_json, add=add)


_label_command("add", True, "Add LABEL to each task ID (all or nothing).")
_label_command("remove", False, "Remove LABEL from each task ID (all or nothing; one without it stays as it is).")


@label.command(name="list")
@click.argument("task_id")
@json_option
def label_list(task_id: str, as_json: bool) -> None:
    """The labels of one task (--json: an array of names)."""
    store = open_project().open_store()
    task = store.get_task(store.resolve_id(task_id))
    if as_json:
        output.emit_json(list(task.labels))
        return
    if not task.labels:
        click.echo(f"{task.id} has no labels", err=True)
    for name in task.labels:
        click.echo(output.safe(name))


@label.command(name="list-all")
@json_option
def label_list_all(as_json: bool) -> None:
    """Every label in use, with how many tasks carry it (--json: [{label, count}])."""
    counts = open_project().open_store().label_counts()
    if as_json:
        output.emit_json([{"label": name, "count": count} for name, count in counts.items()])
        return
    if not counts:
        click.echo("no labels", err=True)
    width = max(map(len, counts), default=0)
    for name, count in counts.items():
        click.echo(f"{output.safe(name).ljust(width)}  {count} task{'s' if count != 1 else ''}")
