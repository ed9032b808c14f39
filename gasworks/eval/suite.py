"""Eval suites: projects, each a starting tree and tasks with visible tests, hidden tests and a known solution.

A suite file (TOML) names its projects; a project file holds the starting tree (`[files]`, or
`[source]`: a commit of a git repository), the gate, and `[[task]]` tables. The format is
described in docs/eval.md. Suites shipped with gasworks live in suites/ beside this module.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasworks.errors import SuiteError

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_GATE = [["{python}", "-m", "unittest", "discover", "-q"]]
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Edit:
    """One change to one file: write it whole, append to it, or replace a snippet found in it."""

    path: str
    write: str | None = None
    append: str | None = None
    find: str | None = None
    replace: str | None = None


@dataclass(frozen=True)
class EvalTask:
    key: str
    title: str
    description: str
    visible: dict[str, str]  # test files the task text shows and asks for; the gate runs them
    hidden: dict[str, str]  # test files run on the final tree only, never shown to the agent
    solution: tuple[Edit, ...] = ()
    wrong: tuple[Edit, ...] = ()  # a plausible wrong change (the flaky agent's); default: solution mutated
    patch: str = ""  # the known solution as a unified diff (suites made from history)

    def text(self) -> str:
        """The task's description as an agent sees it: the visible tests included, the hidden ones not."""
        parts = [self.description.strip()]
        for path, content in sorted(self.visible.items()):
            parts.append(f"Add this test as {path} (the merge gate runs it) and make it pass:\n\n```python\n"
                         f"{content.rstrip()}\n```")
        return "\n\n".join(parts)


@dataclass(frozen=True)
class SuiteProject:
    name: str
    path: Path
    files: dict[str, str]
    gate: list[list[str]]
    tasks: tuple[EvalTask, ...]
    source: dict[str, str] = field(default_factory=dict)  # {repo, rev}: start from a commit instead of files
    # Runs the hidden tests written in place in the final tree, their paths appended (suites made from
    # history, whose tests import their neighbours); empty: unittest runs them from a folder of their own.
    hidden_command: list[str] = field(default_factory=list)

    def gate_argv(self) -> list[list[str]]:
        return [_with_python(argv) for argv in self.gate]

    def hidden_argv(self) -> list[str]:
        return _with_python(self.hidden_command)

    def task(self, key: str) -> EvalTask:
        for task in self.tasks:
            if task.key == key:
                return task
        raise SuiteError(f"{self.path}: no task {key!r}")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    projects: tuple[SuiteProject, ...]

    def project(self, name: str) -> SuiteProject:
        for project in self.projects:
            if project.name == name:
                return project
        raise SuiteError(f"suite {self.name!r} has no project {name!r}")

    def task_count(self) -> int:
        return sum(len(p.tasks) for p in self.projects)


def _with_python(argv: list[str]) -> list[str]:
    return [part.replace("{python}", sys.executable) for part in argv]


def shipped_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml") if "projects" in read_toml(p))


def suite_path(name: str) -> Path:
    """A shipped suite's file, or the path given."""
    if _KEY.fullmatch(name) and (SUITES_DIR / f"{name}.toml").is_file():
        return SUITES_DIR / f"{name}.toml"
    path = Path(name)
    if not path.is_file():
        raise SuiteError(f"no suite {name!r}: use one of {', '.join(shipped_suites())} or a suite file's path")
    return path.resolve()


def load_suite(name: str) -> Suite:
    """A shipped suite by name, or a suite file: its projects are files it names (`projects`) or
    tables in it (`[[project]]`); a project file alone is a suite of one project."""
    path = suite_path(name)
    data = read_toml(path)
    if "projects" not in data and "project" not in data:
        project = _project(path, data)
        return Suite(project.name, str(data.get("description", "")), path, (project,))
    projects = tuple(_project(path.parent / str(p), read_toml(path.parent / str(p))) for p in data.get("projects", []))
    projects += tuple(_project(path, table) for table in data.get("project", []))
    names = [p.name for p in projects]
    if len(set(names)) != len(names):
        raise SuiteError(f"{path}: two projects are named alike ({', '.join(names)})")
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), path, projects)


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not a valid TOML file: {exc}") from None


def _project(path: Path, data: dict[str, Any]) -> SuiteProject:
    tasks = tuple(_task(path, n, raw) for n, raw in enumerate(data.get("task", []), start=1))
    if not tasks:
        raise SuiteError(f"{path}: no [[task]] tables")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys) or len({t.title for t in tasks}) != len(tasks):
        raise SuiteError(f"{path}: task keys and titles must be unique")
    files, source = data.get("files", {}), data.get("source", {})
    if bool(files) == bool(source):
        raise SuiteError(f"{path}: give the starting tree as [files] or as [source] (repo, rev), one of them")
    for name in list(files) + [p for t in tasks for p in (*t.visible, *t.hidden)]:
        _relative(path, name)
    return SuiteProject(str(data.get("name", path.stem)), path, {k: str(v) for k, v in files.items()},
                        [list(map(str, argv)) for argv in data.get("gate", DEFAULT_GATE)], tasks,
                        {k: str(v) for k, v in source.items()}, list(map(str, data.get("hidden_command", []))))


def _task(path: Path, number: int, raw: dict[str, Any]) -> EvalTask:
    where = f"{path}: task {number}"
    try:
        key, title = str(raw["key"]), str(raw["title"])
    except KeyError as exc:
        raise SuiteError(f"{where}: missing {exc.args[0]!r}") from None
    if not _KEY.fullmatch(key):
        raise SuiteError(f"{where}: key {key!r}: use letters, digits, '.', '_' and '-'")
    solution = tuple(_edit(where, e) for e in raw.get("solution", []))
    if not solution and not raw.get("patch"):
        raise SuiteError(f"{where} ({key}): no known solution (solution edits or patch)")
    if not raw.get("hidden"):
        raise SuiteError(f"{where} ({key}): no hidden tests")
    return EvalTask(key, title, str(raw.get("description", title)), dict(raw.get("visible", {})),
                    dict(raw["hidden"]), solution, tuple(_edit(where, e) for e in raw.get("wrong", [])),
                    str(raw.get("patch", "")))


def _edit(where: str, raw: dict[str, Any]) -> Edit:
    kinds = [k for k in ("write", "append", "find") if k in raw]
    if "path" not in raw or len(kinds) != 1 or (("find" in raw) != ("replace" in raw)):
        raise SuiteError(f"{where}: an edit has a path and one of write, append, or find with replace")
    return Edit(str(raw["path"]), raw.get("write"), raw.get("append"), raw.get("find"), raw.get("replace"))


def _relative(path: Path, name: str) -> None:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or parts[0] in (".git", ".gasworks"):
        raise SuiteError(f"{path}: file {name!r} must be a relative path inside the project")


def apply_edits(root: Path, edits: tuple[Edit, ...] | list[Edit]) -> None:
    """Make the edits in the tree at root; SuiteError when a snippet to replace is not there."""
    for edit in edits:
        target = root / edit.path
        if edit.write is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(edit.write, encoding="utf-8")
        elif edit.append is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(edit.append)
        else:
            text = target.read_text(encoding="utf-8") if target.is_file() else ""
            if edit.find is None or edit.replace is None or edit.find not in text:
                raise SuiteError(f"{edit.path}: the text to replace is not there")
            target.write_text(text.replace(edit.find, edit.replace, 1), encoding="utf-8")


# A plausible slip, tried in order on the solution's code: the first that changes it is the wrong change.
_SLIPS = ((" <= ", " < "), (" >= ", " > "), (" < ", " <= "), (" > ", " >= "), (" == ", " != "), (" + ", " - "),
          (" - ", " + "), (" * ", " + "), ("return True", "return False"))


def wrong_edits(task: EvalTask) -> tuple[Edit, ...]:
    """The task's wrong change: as the suite gives it, else its solution with one slip (a comparison
    or an operator turned), else the solution without its last edit."""
    if task.wrong:
        return task.wrong
    for old, new in _SLIPS:
        for index, edit in enumerate(task.solution):
            body = edit.write if edit.write is not None else edit.append if edit.append is not None else edit.replace
            if body and old in body and not Path(edit.path).name.startswith("test"):
                slipped = body.replace(old, new, 1)
                changed = Edit(edit.path, slipped if edit.write is not None else None,
                               slipped if edit.append is not None else None, edit.find,
                               slipped if edit.replace is not None else None)
                return task.solution[:index] + (changed,) + task.solution[index + 1:]
    return task.solution[:-1]
