"""`gasworks import` and `gasworks export`: tasks in from Beads JSONL, task_queue.json or markdown, and
out as Beads JSONL."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gasworks import output
from gasworks.cli.base import actor_name, cli, json_option, open_project
from gasworks.errors import TrackerError
from gasworks.ingest import FORMATS, read_file
from gasworks.project import task_prefix


@cli.command(name="export")
@click.option("-o", "--output", "target", default=None, metavar="FILE",
              help="Write to FILE (e.g. .beads/issues.jsonl) atomically instead of stdout.")
def export_(target: str | None) -> None:
    """Export every task as Beads JSONL, one issue per line, sorted by id, then Beads' memories by key."""
    project = open_project()
    if project.tracker() == "beads":
        raise TrackerError("tasks live in bd here (tracker = \"beads\"): export them with `bd export`; "
                           "gasworks would write only the tasks it has seen")
    store = project.open_store()
    tasks, memories = store.export_tasks(), store.memories()
    if target is None:
        count = output.write_jsonl(tasks, sys.stdout, memories)
        click.echo(f"exported {count} tasks", err=True)
    else:
        with output.progress(f"exporting to {target}"):
            count = output.write_jsonl_file(tasks, Path(target), memories)
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
    project = open_project()
    with output.progress(f"importing {file}", quiet=as_json):
        tasks, memories = read_file(file, fmt)
        store = project.open_store()
        result = store.import_tasks(tasks, prefix=task_prefix(project.config, store), actor=actor_name(ctx),
                                    dry_run=dry_run, memories=memories)
    summary = {"file": str(file), "read": len(tasks), "created": result.created, "updated": result.updated,
               "skipped": result.skipped, "dry_run": dry_run, "ids": result.ids, "memories": result.memories,
               "warnings": result.warnings}
    for warning in result.warnings:
        click.echo(f"gasworks: warning: {warning}", err=True)
    if as_json:
        output.emit_json(summary)
    else:
        verb = "would import" if dry_run else "imported"
        click.echo(f"{verb} {file}: {result.created} created, {result.updated} updated, "
                   f"{result.skipped} unchanged or already present")
