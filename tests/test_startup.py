"""Start-up stays lean: the everyday commands and the fake agent import only what they use.

Each command runs for real in a subprocess under `python -X importtime`, which names every module
the process imported. No wall-clock time is asserted (bench/startup.py measures it).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import gasworks
from gasworks import git
from gasworks.cli import cli
from gasworks.cli.base import COMMAND_MODULES
from gasworks.git.repository import _plain_checkout

# Libraries no quick command needs: models, HTTP, the terminal UI, process tables, run locks, the web
# dashboard, PostgreSQL, hashlib (it loads OpenSSL: new ids use the built-in SHA-256); and gasworks's own
# fleet machinery, the git commands of worktrees, merges and changes, the importer, and bd's command line.
HEAVY = ("pydantic", "httpx", "rich", "textual", "psutil", "filelock", "starlette", "uvicorn", "psycopg", "xllamacpp",
         "llm", "hashlib", "gasworks.cli.fleet", "gasworks.tui", "gasworks.cli.watch", "gasworks.cli.gastown",
         "gasworks.dispatcher", "gasworks.refinery", "gasworks.status", "gasworks.store.postgres", "gasworks.ingest",
         "gasworks.git.changes", "gasworks.git.merging", "gasworks.git.refs", "gasworks.git.remote",
         "gasworks.git.worktree", "gasworks.store.bd")


# Loaded on first use (gasworks/deferred.py; the records package through models.py; store/values.py through
# the store package; store/board_filter.py through store/board.py): a quick command loads only what it makes.
DEFERRED = ("inspect", "ast", "dis", "tokenize", "gasworks.records", "gasworks.records.event",
            "gasworks.records.attempt", "gasworks.records.merge", "gasworks.store.values",
            "gasworks.store.board_filter")
MAKES = {"create": ["gasworks.store.values"], "show": ["gasworks.records", "gasworks.records.event"]}


def imported(argv: list[str], cwd: Path, **settings: str) -> tuple[set[str], str]:
    """Run argv (python arguments) in cwd; the modules it imported, and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    # the gasworks this test imported, wherever it is
    env.update(GASWORKS_ACTOR="tester", PYTHONPATH=str(Path(gasworks.__file__).parents[1]), **settings)
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=cwd, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "gasworks" in modules  # the listing is really there
    return modules, result.stdout


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_task_commands_import_no_heavy_library(project_dir):
    created = json.loads(imported(["-m", "gasworks", "create", "Lean start", "--json"], project_dir)[1])
    task_id = created["id"]
    for args in (["ready", "--json"], ["list"], ["show", task_id], ["create", "Another", "-d", "text"],
                 ["update", task_id, "--claim"], ["close", task_id]):
        modules, _ = imported(["-m", "gasworks", *args], project_dir)
        assert heavy_in(modules) == [], args
        assert sorted(modules.intersection(DEFERRED)) == MAKES.get(args[0], []), args
    modules, out = imported(["-m", "gasworks", "ready", "--json"], project_dir)
    assert [t["title"] for t in json.loads(out)] == ["Another"]


def test_config_is_still_validated_on_the_quick_path(project_dir):
    (project_dir / "gasworks.toml").write_text('worktree_placement = "elsewhere"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    result = subprocess.run([sys.executable, "-m", "gasworks", "ready", "--json"], cwd=project_dir, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "key 'worktree_placement'" in result.stderr and "'inside' or 'sibling'" in result.stderr
    assert "Traceback" not in result.stderr


def test_fake_agent_imports_no_heavy_library(repo, tmp_path):
    task_file = tmp_path / "task.txt"
    task_file.write_text('Task gw-lean: t\n\n```gasworks-fake\n{"write": {"a.txt": "a"}}\n```\n', encoding="utf-8")
    modules, out = imported(["-m", "gasworks.agents.fake", str(task_file)], repo, GASWORKS_WORKTREE=str(repo),
                            GASWORKS_TASK_ID="gw-lean")
    assert "committed" in out and (repo / "a.txt").read_text(encoding="utf-8") == "a"
    assert heavy_in(modules) == []


def test_command_table_names_every_command_and_its_module():
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    declared = {name: module for module, names in COMMAND_MODULES.items() for name in names}
    assert sorted(declared) == sorted(cli.commands)
    for name, command in cli.commands.items():
        assert command.callback.__module__ == declared[name] or name == "split", name  # split is plan's alias
    assert cli.commands["split"] is cli.commands["plan"]


@pytest.mark.parametrize("args", [["--help"], ["dep", "--help"], ["convoy", "--help"]])
def test_help_lists_commands_of_every_module(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    if args == ["--help"]:
        for name in ("ready", "run", "sling", "status"):
            assert f"  {name} " in result.output


def test_unknown_command_is_one_clear_line():
    result = CliRunner().invoke(cli, ["redy"])
    assert result.exit_code == 2
    assert "No such command 'redy'" in result.output


def git_toplevel(path: Path) -> Path:
    out = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"],
                         cwd=path, capture_output=True, text=True, check=True).stdout.splitlines()
    return Path(out[0]).parent if Path(out[0]).name == ".git" else Path(out[1])


def test_a_plain_checkout_is_found_as_git_finds_it(repo, tmp_path):
    deep = repo / "src" / "pkg"
    deep.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(repo)
    for where in (repo, deep, link / "src"):
        assert _plain_checkout(where) == git_toplevel(where) == git.main_root(where)


def test_git_is_asked_where_the_layout_is_unusual(repo, tmp_path):
    linked = tmp_path / "linked"
    git.run(["worktree", "add", "-q", "--detach", str(linked)], repo)
    assert _plain_checkout(linked) is None  # a .git file
    assert git.main_root(linked) == git_toplevel(linked) == repo.resolve()
    assert _plain_checkout(repo / ".git") is None
    outside = tmp_path / "outside"
    outside.mkdir()
    assert _plain_checkout(outside) is None  # no repository around it (tmp_path is outside repo)
    git.run(["config", "core.worktree", str(tmp_path)], repo)
    assert _plain_checkout(repo) is None


def test_the_git_package_loads_a_part_when_one_of_its_names_is_first_used(tmp_path):
    code = ("import sys, types, gasworks.git as git\n"
            "before = sorted(m for m in sys.modules if m.startswith('gasworks.git.'))\n"
            "kinds = {name: type(getattr(git, name)).__name__ for name in git.__all__}\n"
            "print(before, git.worktree_add.__module__, callable(git.history), kinds['Where'])\n"
            "try:\n    git.no_such_name\nexcept AttributeError as exc:\n    print(exc)\n")
    _, out = imported(["-c", code], tmp_path)
    before, rest = out.split("]", 1)
    assert "gasworks.git.worktree" not in before and "gasworks.git.merging" not in before
    assert rest.split()[:3] == ["gasworks.git.worktree", "True", "UnionType"]
    assert "has no attribute 'no_such_name'" in out


def test_main_loads_without_the_collector_and_runs_the_command_with_it(project_dir, monkeypatch):
    import gc

    from gasworks import output
    from gasworks.cli import base, main

    loading: list[bool] = []
    during: list[bool] = []
    get_command, emit = base._Root.get_command, output.emit_tasks
    monkeypatch.setattr(base._Root, "get_command", lambda *a: (loading.append(gc.isenabled()), get_command(*a))[1])
    monkeypatch.setattr(output, "emit_tasks", lambda *a, **k: (during.append(gc.isenabled()), emit(*a, **k)))
    monkeypatch.setattr(sys, "argv", ["gasworks", "ready", "--json"])
    try:
        with pytest.raises(SystemExit) as done:
            main()
    finally:
        gc.enable()
        gc.unfreeze()
    assert done.value.code == 0
    assert loading and not any(loading)
    assert during == [True] and base.collector_paused is False
