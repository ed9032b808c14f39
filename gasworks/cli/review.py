"""`gasworks approve` and `gasworks reject`: a human's verdict on branches that wait for review."""

from __future__ import annotations

import click

from gasworks import output
from gasworks.cli.base import actor_name, cli, json_option, open_project


@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@json_option
@click.pass_context
def approve(ctx: click.Context, task_ids: tuple[str, ...], as_json: bool) -> None:
    """Let the finished branches of these tasks, which wait for review (`review = true`, or the
    task's `review` label), into the merge queue. All or nothing, in one transaction: an unknown id
    or a task that does not wait for review refuses the whole command."""
    from gasworks import review

    store = open_project().open_store()
    merges = review.approve(store, list(task_ids), actor=actor_name(ctx))
    if as_json:
        output.emit_json([output.merge_dict(m) for m in merges])
        return
    for merge in merges:
        click.echo(f"Approved {merge.task_id}: {merge.branch} ({merge.head[:12]}) queued to merge")


@cli.command()
@click.argument("task_id")
@click.option("--note", required=True, help="What to change: kept on the task as a comment, and shown to the "
                                            "agent's next attempt as the reviewer's note.")
@json_option
@click.pass_context
def reject(ctx: click.Context, task_id: str, note: str, as_json: bool) -> None:
    """Reject the finished branch of a task that waits for review: its merge ends as rejected, and
    the task goes back to open for another attempt, which reads the note in its task file. One
    transaction: a task that does not wait for review changes nothing."""
    from gasworks import review
    from gasworks.beads import task_to_record

    store = open_project().open_store()
    task = review.reject(store, task_id, note, actor=actor_name(ctx))
    if as_json:
        output.emit_json(task_to_record(task))
        return
    click.echo(f"Rejected {task.id}: back to open with the note for its next attempt")
