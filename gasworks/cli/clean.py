"""`gasworks clean`: remove what finished tasks left behind."""

from __future__ import annotations

import click

from gasworks import output
from gasworks.cli.base import cli, json_option, open_project


@cli.command()
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed, and what left and why; change nothing.")
@json_option
def clean(dry_run: bool, as_json: bool) -> None:
    """Remove the branches and worktrees finished tasks left behind.

    Goes: the branch gasworks/ID of a task that is closed (done or cancelled) or blocked for good
    (labelled needs-human), unless a running attempt, a worktree or a pending merge (queued,
    merging, held, waiting for review or on a conflict task) uses it; slot worktrees beyond num_workers, when no
    run is active; sandboxed attempts' git dirs a crashed run left. A branch is deleted only if it
    still points where it did when looked at. Logs and branches on a remote stay.

    Not one transaction: each removal is done on its own, and the command says what it did and
    what it left, and why. Nothing an agent wrote (a link, a `.git` file) can make it remove
    anything outside the worktrees and the state folder.
    """
    from gasworks import cleanup

    project = open_project()
    found = cleanup.plan(project, project.open_store())
    if dry_run:
        if as_json:
            output.emit_json({"dry_run": True, **found.as_dict()})
            return
        for line in ([f"would delete branch {name}" for name, _ in found.branches]
                     + [f"would remove worktree {tree.path}" for tree in found.worktrees]
                     + [f"would remove {path}" for path in found.attempt_dirs]):
            click.echo(line)
        _say_left(found.left)
        if not (found.branches or found.worktrees or found.attempt_dirs):
            click.echo("nothing to clean")
        return
    done, left = cleanup.carry_out(project, found)
    if as_json:
        output.emit_json({"dry_run": False, "done": done, "left": left})
        return
    for line in done:
        click.echo(output.safe(line))
    _say_left(left)
    if not done:
        click.echo("nothing to clean")


def _say_left(left: list[str]) -> None:
    for line in left:
        click.echo(f"left: {output.safe(line)}")
