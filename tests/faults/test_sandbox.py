"""sandbox = "bwrap": an agent that tries to write outside its worktree cannot, and its own work still lands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gasworks import git, sandbox
from gasworks.errors import ConfigError
from tests.fleet import add, agent_processes, drain, make_dispatcher

HOSTILE = textwrap.dedent('''
    import json, subprocess, sys
    from pathlib import Path

    worktree, marker, pairs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    targets = dict(zip(pairs[::2], pairs[1::2]))
    results = {}
    for name, path in targets.items():
        try:
            with open(path, "ab") as handle:
                handle.write(b"hostile agent was here\\n")
            results[name] = "written"
        except OSError as exc:
            results[name] = exc.strerror
    marker.write_text("only in the private /tmp\\n")
    results["private tmp"] = "written" if marker.read_text() else "lost"
    (worktree / "inside.txt").write_text("the agent's real work\\n")
    subprocess.run(["git", "add", "inside.txt"], cwd=worktree, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "hostile: real work"], cwd=worktree, check=True)
    print("RESULTS " + json.dumps(results), flush=True)
''')


def hostile_setup(tmp_path: Path) -> tuple[Path, Path]:
    """bubblewrap or a skip; a folder outside the repository holding note.txt; the hostile script."""
    need_bwrap()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "note.txt").write_text("untouched\n")
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    return outside, script


def target_args(targets: dict) -> list[str]:
    """Name, path, name, path...: on the command line, so the sandbox shows the paths under /tmp."""
    return [str(item) for name, path in targets.items() for item in (name, path)]


def hostile_results(log: Path) -> dict:
    return json.loads(log.read_text().split("RESULTS ", 1)[1].splitlines()[0])


def need_bwrap() -> None:
    if shutil.which("bwrap") is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: .ci/run installs it (apt-get install bubblewrap)")
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")


def test_an_agent_cannot_write_outside_its_worktree_but_its_work_lands(project_dir, tmp_path):
    outside, script = hostile_setup(tmp_path)
    marker = Path("/tmp") / f"gasworks-sandbox-marker-{os.getpid()}"
    root = project_dir
    targets = {"checkout": root / "README.md", "other worktree": root / "worktrees" / "w2" / "README.md",
               "store": root / ".gasworks" / "gasworks.db", "target branch": root / ".git" / "refs" / "heads" / "main",
               "outside the repository": outside / "note.txt", "new file in the checkout": root / "planted.py"}
    dispatcher, _ = make_dispatcher(
        project_dir, agent="command", sandbox="bwrap", max_attempts=1,
        command=[sys.executable, str(script), "{worktree}", str(marker), *target_args(targets)])
    before = {path: path.read_bytes() for path in [project_dir / "README.md", outside / "note.txt",
                                                   dispatcher.pool.slots[1].path / "README.md"]}
    store_before = (project_dir / ".gasworks" / "gasworks.db").stat().st_size
    task_id = add(dispatcher, "try to escape")
    drain(dispatcher)

    attempt = dispatcher.store.attempts(task_id)[0]
    results = hostile_results(Path(attempt.log_path))
    assert results.pop("private tmp") == "written"
    assert set(results.values()) == {"Read-only file system"}, results
    for path, content in before.items():
        assert path.read_bytes() == content, path
    assert not (project_dir / "planted.py").exists()
    assert not marker.exists()  # /tmp inside the sandbox was its own
    assert (project_dir / ".gasworks" / "gasworks.db").stat().st_size >= store_before
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert attempt.outcome == "success"
    log_main = git.run(["log", "--format=%s", "main"], project_dir).stdout
    assert "hostile: real work" in log_main  # the agent's own commit, made inside the sandbox
    assert (project_dir / "inside.txt").read_text() == "the agent's real work\n"
    assert agent_processes(project_dir) == []


def test_the_fake_agent_runs_unchanged_in_the_sandbox(project_dir):
    need_bwrap()
    dispatcher, _ = make_dispatcher(project_dir, sandbox="bwrap", num_workers=2)
    ids = [add(dispatcher, f"task {n}") for n in range(3)]
    drain(dispatcher)
    assert {dispatcher.store.get_task(task_id).status for task_id in ids} == {"closed"}


def test_asking_for_the_sandbox_without_bubblewrap_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"sandbox = \"bwrap\" needs bubblewrap.*apt-get install bubblewrap"):
        sandbox.find_bwrap()


def test_paths_under_tmp_stay_visible_read_only_and_writable_ones_come_last(tmp_path):
    repo, worktree = tmp_path / "repo", tmp_path / "repo" / "worktrees" / "w1"
    worktree.mkdir(parents=True)
    argv = sandbox.wrap(["agent"], bwrap="bwrap", writable=[worktree], readable=[repo, Path("/usr")])
    binds = [(argv[i], argv[i + 1]) for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind", "--tmpfs")]
    assert binds == [("--ro-bind", "/"), ("--tmpfs", "/tmp"), ("--ro-bind", str(repo.resolve())),
                     ("--bind", str(worktree.resolve()))]
    assert argv[-2:] == ["--", "agent"]


def test_agent_run_in_a_gas_town_worktree_is_sandboxed_too(repo, tmp_path):
    """`gasworks agent-run` (what qwen-agent runs in a polecat's worktree) used to run the agent
    unsandboxed whatever the config said."""
    outside, script = hostile_setup(tmp_path)
    main_ref = repo / ".git" / "refs" / "heads" / "main"
    marker = Path("/tmp") / f"gasworks-agent-run-marker-{os.getpid()}"
    targets = {"outside the checkout": outside / "note.txt", "the main branch": main_ref}
    command = [sys.executable, str(script), "{worktree}", str(marker), *target_args(targets)]
    (repo / "gasworks.toml").write_text(f'agent = "command"\nsandbox = "bwrap"\ncommand = {json.dumps(command)}\n')
    git.commit_all(repo, "gasworks config")
    main_before = main_ref.read_bytes()
    polecat = tmp_path / "polecats" / "toast"
    git.run(["worktree", "add", "-q", "-b", "polecat/toast/gw-s1", str(polecat)], repo)
    out = agent_run(polecat, tmp_path, "Task gw-s1: try to escape\n", expect="done")
    assert hostile_results(Path(out["log"])) == {"outside the checkout": "Read-only file system",
                                                 "the main branch": "Read-only file system", "private tmp": "written"}
    assert not marker.exists()
    assert (outside / "note.txt").read_text() == "untouched\n" and main_ref.read_bytes() == main_before
    assert git.run(["show", "--name-only", "--format=", "HEAD"], polecat).stdout.split() == ["inside.txt"]


def agent_run(checkout: Path, tmp_path: Path, task_text: str, *, expect: str) -> dict:
    """`gasworks agent-run --json` on a task file in checkout, as qwen-agent runs it; its JSON."""
    task = tmp_path / "task.txt"
    task.write_text(task_text)
    done = subprocess.run([sys.executable, "-m", "gasworks", "agent-run", "--task-file", str(task), "--json"],
                          cwd=checkout, capture_output=True, text=True, timeout=120)
    out = json.loads(done.stdout)
    assert out["status"] == expect, (out, done.stderr, Path(out["log"]).read_text() if out.get("log") else "")
    return out
