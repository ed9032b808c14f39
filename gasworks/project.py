"""A repository set up for gasworks: where its state lives, and `gasworks init`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gasworks import git
from gasworks.config import CONFIG_FILE, TEMPLATE, Config, load_config
from gasworks.errors import NotInitializedError
from gasworks.store.sqlite import SQLiteStore

STATE_DIR = ".gasworks"
EXCLUDES = (".gasworks/", "worktrees/")


@dataclass(frozen=True)
class Project:
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

    def open_store(self) -> SQLiteStore:
        return SQLiteStore(self.db_path)


def find_project(start: Path) -> Project:
    """The project of the repository around `start` (also from inside one of its worktrees)."""
    root = git.main_root(Path(start))
    if not (root / STATE_DIR / "gasworks.db").exists():
        raise NotInitializedError(f"{root} has no gasworks project yet: run `gasworks init` there first")
    return Project(root, load_config(root))


def init_project(start: Path) -> tuple[Project, list[str]]:
    """Create .gasworks/, exclude it from git, write gasworks.toml. Safe to run again."""
    root = git.main_root(Path(start))
    done: list[str] = []
    state = root / STATE_DIR
    if not state.exists():
        done.append(f"created {STATE_DIR}/")
    (state / "logs").mkdir(parents=True, exist_ok=True)

    exclude = git.git_common_dir(root) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    present = exclude.read_text(encoding="utf-8").splitlines() if exclude.exists() else []
    missing = [line for line in EXCLUDES if line not in present]
    if missing:
        text = "\n".join(present + ["# gasworks", *missing]) + "\n"
        exclude.write_text(text, encoding="utf-8")
        done.append(f"added {', '.join(missing)} to .git/info/exclude")

    config_path = root / CONFIG_FILE
    if not config_path.exists():
        config_path.write_text(TEMPLATE, encoding="utf-8")
        done.append(f"wrote {CONFIG_FILE}")
    project = Project(root, load_config(root))
    is_new = not project.db_path.exists()
    project.open_store().close()
    if is_new:
        done.append(f"created the store {STATE_DIR}/gasworks.db")
    return project, done
