"""`gasworks dep`: add, remove and show dependencies between tasks, as `bd dep` does."""

from __future__ import annotations

import click

from gasworks import output
from gasworks.cli.base import actor_name, cli, json_option, open_project
from gasworks.models import CLI_DEP_TYPES


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
    store = open_project().open_store()
    task_id, depends_on = store.resolve_id(task_id), store.resolve_id(depends_on)
    store.add_dependency(task_id, depends_on, dep_type, actor=actor_name(ctx))
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
    """Remove the dependency of TASK_ID on DEPENDS_ON (also `dep remove`, as in bd)."""
    store = open_project().open_store()
    task_id = store.resolve_id(task_id)
    store.remove_dependency(task_id, depends_on, actor=actor_name(ctx))
    if as_json:
        output.emit_json({"status": "removed", "issue_id": task_id, "depends_on_id": depends_on})
    else:
        click.echo(f"{task_id} no longer depends on {depends_on}")


dep.add_command(dep_rm, name="remove")  # bd's name for it


@dep.command(name="tree")
@click.argument("task_id")
@json_option
def dep_tree(task_id: str, as_json: bool) -> None:
    """Show what TASK_ID waits on, recursively."""
    store = open_project().open_store()
    tree = store.dependency_tree(store.resolve_id(task_id))
    if as_json:
        output.emit_json(tree)
    else:
        output.print_tree(tree)
