"""What the classic three scripts call: `gasworks init --scripts` (gasworks.project.write_scripts)
writes dispatch_workers.py, split_task.py and ingest_suggested_tasks.py into the repository, each a
thin call into a function here, so `py dispatch_workers.py`, `py split_task.py "goal"` and
`py ingest_suggested_tasks.py` go on working (dispatch_config.json is honoured by gasworks's config
as it is). Scripts written by earlier versions import this module by name: keep it and its functions.

Nothing in gasworks imports this module; it imports the CLI."""

from __future__ import annotations

from pathlib import Path

from gasworks.project import STATE_DIR

QUEUE_FILE = "task_queue.json"


def _gasworks(args: list[str]) -> int:
    from gasworks.cli import cli

    try:
        cli.main(args=args, prog_name="gasworks", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def dispatch_workers(argv: list[str]) -> int:
    """`gasworks init` if needed, import task_queue.json when there is one (already imported tasks are
    skipped, so this is safe every time), then `gasworks run` with the script's arguments."""
    if "-h" in argv or "--help" in argv:
        return _gasworks(["run", *argv])
    if not (Path.cwd() / STATE_DIR).is_dir():
        code = _gasworks(["init"])
        if code:
            return code
    if (Path.cwd() / QUEUE_FILE).exists():
        code = _gasworks(["import", QUEUE_FILE])
        if code:
            return code
    return _gasworks(["run", *argv])


def split_task(argv: list[str]) -> int:
    return _gasworks(["plan", *argv])


def ingest_suggested_tasks(argv: list[str]) -> int:
    return _gasworks(["ingest", *argv])
