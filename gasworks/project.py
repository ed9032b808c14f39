"""A repository set up for gasworks: where its state lives, and `gasworks init`."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.config import CLASSIC_CONFIG_FILE, CONFIG_FILE, Config, load_config, template
from gasworks.errors import ConfigError, NotInitializedError, RunningError
from gasworks.ids import PREFIX_RE
from gasworks.store import Bulk, Store, open_store
from gasworks.store.tracker import find_bd, resolve_tracker

STATE_DIR = ".gasworks"
RUN_FILE = "run.json"  # what the active run says of itself: its pid and how many slots it has
# gasworks's own files, kept out of `git status` and out of every agent's commits.
EXCLUDES = (".gasworks/", "worktrees/", ".current_task.txt", ".aider*")


@dataclass(frozen=True)
class Project:
    """A repository set up for gasworks: its main checkout and its validated config."""

    root: Path
    config: Config

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def db_path(self) -> Path:
        return self.state_dir / "gasworks.db"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def mirror_path(self) -> Path:
        return self.state_dir / "beads-mirror.db"

    def tracker(self) -> str:
        """Where tasks live here, as `tracker` resolves: "beads" (in bd) or "gasworks" (its own store)."""
        return resolve_tracker(self.root, self.config.tracker, self.config.bd_cmd, self.config.store)

    def open_store(self) -> Store:
        """With bd as the tracker, the bd-backed store (its mirror in .gasworks/beads-mirror.db); else
        the store `store` names (a postgresql:// URL shared by several hosts), else .gasworks/gasworks.db."""
        if self.tracker() == "beads":
            from gasworks.store.bd import BdCli
            from gasworks.store.beads_cli import BeadsStore

            return BeadsStore(self.mirror_path, BdCli(self.config.bd_cmd, self.root), sync=self.config.bd_sync)
        return open_store(self.config.store or self.db_path, keepalive=self.config.store_keepalive)


def task_prefix(config: Config, store: Bulk) -> str:
    """The prefix of new task ids: `prefix` when gasworks.toml (or the environment) sets it, else the
    one most of the newest 1,000 tasks carry, as bd keeps its configured prefix (after importing
    bd-* issues, new tasks are bd-* too), else the default, gw."""
    if "prefix" not in config.fields_set:
        found = store.common_prefix()
        if found and PREFIX_RE.fullmatch(found):
            return found
    return config.prefix


def find_project(start: Path, overrides: Mapping[str, Any] | None = None) -> Project:
    """The project of the repository around `start` (also from inside one of its worktrees)."""
    root = git.main_root(Path(start))
    if not (root / STATE_DIR).is_dir():
        raise NotInitializedError(f"{root} has no gasworks project yet: run `gasworks init` there first")
    config = load_config(root, overrides=overrides)
    if config.repo_root and Path(root / config.repo_root).resolve() != root.resolve():
        raise ConfigError(f"repo_root {config.repo_root!r} is not this repository ({root}): run gasworks there")
    return Project(root, config)


def ensure_excludes(root: Path) -> list[str]:
    """Add gasworks's own paths to .git/info/exclude (shared by all worktrees); returns those added."""
    exclude = git.git_common_dir(root) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    present = exclude.read_text(encoding="utf-8").splitlines() if exclude.exists() else []
    missing = [line for line in EXCLUDES if line not in present]
    if missing:
        header = [] if "# gasworks" in present else ["# gasworks"]
        exclude.write_text("\n".join(present + header + missing) + "\n", encoding="utf-8")
    return missing


def init_project(start: Path) -> tuple[Project, list[str]]:
    """Create .gasworks/, exclude it from git, write gasworks.toml. Safe to run again."""
    root = git.main_root(Path(start))
    done: list[str] = []
    state = root / STATE_DIR
    if not state.exists():
        done.append(f"created {STATE_DIR}/")
    (state / "logs").mkdir(parents=True, exist_ok=True)

    missing = ensure_excludes(root)
    if missing:
        done.append(f"added {', '.join(missing)} to .git/info/exclude")

    config_path = root / CONFIG_FILE
    if not (config_path.exists() or config_path.is_symlink()):
        git.write_new(config_path, template().encode("utf-8"))
        done.append(f"wrote {CONFIG_FILE}")
    project = Project(root, load_config(root))
    beads = project.tracker() == "beads"
    path = project.mirror_path if beads else project.db_path
    is_new = (beads or not project.config.store) and not path.exists()
    store = project.open_store()
    store.close()
    if is_new:
        done.append(f"created the {'mirror of bd' if beads else 'store'} {STATE_DIR}/{path.name}")
    elif project.config.store and not beads:
        done.append(f"using the store {store.path}")
    done += _tracker_note(project)
    return project, done


# `gasworks init --scripts`: the classic three scripts, each a thin call into gasworks.classic.
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
    toml = root / CONFIG_FILE
    if not (root / CLASSIC_CONFIG_FILE).exists() or not toml.exists():
        return []
    text = toml.read_text(encoding="utf-8")
    if any(line.split("=")[0].strip() == "agent" for line in text.splitlines() if not line.lstrip().startswith("#")):
        return []
    note = '# The classic scripts ran Aider (dispatch_config.json).\nagent = "aider"\n'
    toml.write_text(text.rstrip("\n") + "\n\n" + note, encoding="utf-8")
    return [f'set agent = "aider" in {CONFIG_FILE}, as the classic scripts ran Aider']


def _tracker_note(project: Project) -> list[str]:
    """Which tracker holds the tasks, said when the repository has a .beads/ (or bd is asked for)."""
    config = project.config
    if project.tracker() == "beads":
        bd = find_bd(config.bd_cmd)
        if bd is None:
            return [f"tracker = \"beads\", but {config.bd_cmd[0]!r} is not installed: install Beads (bd) or set "
                    "bd_cmd to where it is"]
        return [f"tasks live in Beads: gasworks reads and writes them with {bd} "
                f"(tracker = \"{config.tracker}\"; tracker = \"gasworks\" keeps them in {STATE_DIR}/ instead)"]
    if not (project.root / ".beads").is_dir():
        return []
    why = "tracker = \"gasworks\"" if config.tracker == "gasworks" else "a shared `store` is set" if config.store \
        else f"{config.bd_cmd[0]} is not installed"
    return [f"found .beads/, but tasks live in {STATE_DIR}/gasworks.db ({why}): `gasworks import "
            f".beads/issues.jsonl` and `gasworks export -o .beads/issues.jsonl` keep the two in step"]


@contextlib.contextmanager
def run_lock(project: Project) -> Iterator[None]:
    """One `gasworks run` per repository: a second one is refused, naming the first."""
    from filelock import (  # here, not at the top: the quick commands never take it
        FileLock,
        Timeout,
    )

    lock = FileLock(str(project.state_dir / "run.lock"))
    pid_file = project.state_dir / "run.pid"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = pid_file.read_text().strip() if pid_file.exists() else "?"
        raise RunningError(f"another `gasworks run` (pid {holder}) is active in {project.root}; "
                           "stop it first, or watch it with `gasworks status`") from None
    run_file = project.state_dir / RUN_FILE
    try:
        pid_file.write_text(str(os.getpid()))
        run_file.write_text(json.dumps({"pid": os.getpid(), "workers": project.config.num_workers}))
        yield
    finally:
        run_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        lock.release()


def run_slots(project: Project, pid: int) -> int:
    """How many slots the run with this pid has, as it wrote when it started (else num_workers)."""
    try:
        found = json.loads((project.state_dir / RUN_FILE).read_text())
        if found["pid"] == pid:
            return int(found["workers"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return project.config.num_workers


def active_run(project: Project) -> int | None:
    """The pid of the `gasworks run` active here, or None. Read from its pid file, never by trying
    its lock: a look that held the lock for a moment could make a run starting then refuse to."""
    import psutil  # here, not at the top: the quick commands never look for a run

    pid_file = project.state_dir / "run.pid"
    try:
        written = pid_file.stat().st_mtime
        proc = psutil.Process(int(pid_file.read_text().strip()))
        # The run wrote the file after it started; a process younger than the file holds a reused pid.
        alive = proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= written + 1.0
    except (OSError, ValueError, psutil.Error):
        return None
    return proc.pid if alive else None
