"""The classic three scripts, kept working: `gasworks init --scripts` writes dispatch_workers.py,
split_task.py and ingest_suggested_tasks.py into the repository, each a thin call into gasworks,
so `py dispatch_workers.py`, `py split_task.py "goal"` and `py ingest_suggested_tasks.py` go on
working (dispatch_config.json is honoured by gasworks's config as it is)."""

from __future__ import annotations

from pathlib import Path

from gasworks import git

QUEUE_FILE = "task_queue.json"
SCRIPT = '''#!/usr/bin/env python3
"""{doc}

Written by `gasworks init --scripts`; a thin call into gasworks (pip install gasworks).
Options are gasworks's own: `python {name} --help`.
"""

import sys

from gasworks.classic import {function}

if __name__ == "__main__":
    sys.exit({function}(sys.argv[1:]))
'''
SCRIPTS = {
    "dispatch_workers.py": ("dispatch_workers", "Run the agents on the ready tasks and merge what they finish "
                                                "(gasworks run); task_queue.json is imported first."),
    "split_task.py": ("split_task", 'Split a big goal into tasks: python split_task.py "goal" (gasworks plan).'),
    "ingest_suggested_tasks.py": ("ingest_suggested_tasks", "Turn suggested_tasks.txt into tasks, then clear it "
                                                            "(gasworks ingest)."),
}


def write_scripts(root: Path) -> list[str]:
    """The three scripts, written where missing (an existing file of the same name is kept)."""
    done = []
    for name, (function, doc) in SCRIPTS.items():
        path = root / name
        if path.exists() or path.is_symlink():
            done.append(f"kept the existing {name}")
            continue
        git.write_new(path, SCRIPT.format(doc=doc, name=name, function=function).encode("utf-8"))
        path.chmod(0o755)
        done.append(f"wrote {name}")
    return done


def keep_aider(root: Path) -> list[str]:
    """The classic setup ran Aider: with a dispatch_config.json and no `agent` chosen in gasworks.toml,
    choose "aider" there, in plain sight, so the scripts run Aider as before."""
    from gasworks.config import CONFIG_FILE

    toml = root / CONFIG_FILE
    if not (root / "dispatch_config.json").exists() or not toml.exists():
        return []
    text = toml.read_text(encoding="utf-8")
    if any(line.split("=")[0].strip() == "agent" for line in text.splitlines() if not line.lstrip().startswith("#")):
        return []
    note = '# The classic scripts ran Aider (dispatch_config.json).\nagent = "aider"\n'
    toml.write_text(text.rstrip("\n") + "\n\n" + note, encoding="utf-8")
    return [f'set agent = "aider" in {CONFIG_FILE}, as the classic scripts ran Aider']


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
    if not (Path.cwd() / ".gasworks").is_dir():
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
