"""qwen-agent as a Gas Town polecat, against the scripted stand-in `gt` of tests/fakegt.py on PATH,
with the fake agent as the model. A real subprocess each time, as gt starts it in tmux."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from gasworks import git, process
from gasworks.agents.polecat import NAME, is_polecat, parse_args, strip_metadata

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAKEGT = Path(__file__).with_name("fakegt.py")
BEAD = "gw-q1x"
TITLE = "Greet the world; $(touch /tmp/pwned) 'quoted'"
METADATA = ("attached_molecule: gw-wisp-1\nattached_formula: mol-polecat-work\nattached_at: 2026-04-30T10:00:00Z\n"
            "dispatched_by: mayor/\nformula_vars: base_branch=main\nsetup_command=make\n\n")
BEACON = "[GAS TOWN] gasworks/polecats/toast <- witness • 2026-04-30 10:00 • assigned. Run `gt prime --hook`."
TYPED = b"gt prime && gt mail check --inject\n"


def fake_script(script: dict) -> str:
    return f"Do the thing.\n\n```gasworks-fake\n{json.dumps(script)}\n```\n"


@dataclass
class Run:
    code: int
    stdout: str
    calls: list[dict]
    stdin_left: bytes


class Town:
    """A polecat worktree (a real git repo), a bin dir with the fake gt first on PATH, and its records."""

    def __init__(self, tmp_path: Path, worktree: Path) -> None:
        self.worktree = worktree
        self.state = tmp_path / "gt-state"
        self.state.mkdir()
        bindir = tmp_path / "bin"
        bindir.mkdir()
        gt = bindir / "gt"
        gt.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKEGT)!r}, run_name='__main__')\n")
        gt.chmod(0o755)
        self.cwd = tmp_path  # gt starts it in the worktree; GT_POLECAT_PATH must win over the cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GASWORKS_", "GT_", "QWEN_AGENT_"))}
        self.env.update({
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKEGT_DIR": str(self.state),
            "GT_ROLE": "gasworks/polecats/toast", "BD_ACTOR": "gasworks/polecats/toast", "GT_RIG": "gasworks",
            "GT_POLECAT": "toast", "GT_SESSION": "gt-gasworks-toast", "GT_POLECAT_PATH": str(worktree),
            "QWEN_AGENT_HEARTBEAT_SECONDS": "0.05", "QWEN_AGENT_POLL_SECONDS": "0.05",
            "QWEN_AGENT_HOOK_WAIT_SECONDS": "60", "QWEN_AGENT_SLING_WAIT_SECONDS": "60",
        })

    def bead(self, description: str, **scenario) -> None:
        bead = {"id": BEAD, "title": TITLE, "description": METADATA + description,
                "acceptance_criteria": "hello.txt says hi"}
        (self.state / "scenario.json").write_text(json.dumps({"bead": bead, **scenario}), encoding="utf-8")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gasworks.agents.polecat", *args]

    def start(self, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, tuple[int, int]]:
        """Started as gt starts it; stdin is a pipe holding keys "typed into the pane", kept open, so
        a read would either take them or block."""
        pipe = os.pipe()
        os.write(pipe[1], TYPED)
        proc = subprocess.Popen(self.argv("--agent", "fake", *args, BEACON), cwd=self.cwd,
                                env={**self.env, **(env or {})}, stdin=pipe[0], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        return proc, pipe

    def run(self, *args: str, env: dict | None = None) -> Run:
        proc, pipe = self.start(*args, env=env)
        return self.finish(proc, pipe)

    def finish(self, proc: subprocess.Popen, pipe: tuple[int, int]) -> Run:
        stdout, _ = proc.communicate(timeout=120)
        os.set_blocking(pipe[0], False)
        try:
            left = os.read(pipe[0], 4096)
        except BlockingIOError:
            left = b""
        for fd in pipe:
            os.close(fd)
        return Run(proc.returncode, stdout.decode("utf-8"), self.calls(), left)

    def calls(self) -> list[dict]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.fixture
def town(tmp_path: Path, repo: Path) -> Town:
    return Town(tmp_path, repo)


def names(calls: list[dict]) -> list[str]:
    return [c["argv"][0] for c in calls]


def dones(calls: list[dict]) -> list[list[str]]:
    return [c["argv"] for c in calls if c["argv"][0] == "done"]


# -- the whole polecat, end to end


def test_commits_end_with_gt_done_completed(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}, "no_commit": True}))
    for name in (".claude/commands/handoff.md", ".runtime/session_id"):  # what gt itself puts in the worktree
        (town.worktree / name).parent.mkdir(parents=True)
        (town.worktree / name).write_text("gt's\n")
    base = git.rev_parse(town.worktree, "HEAD")
    run = town.run()
    assert run.code == 0, run.stdout
    assert dones(run.calls) == [["done", "--issue", BEAD]]
    assert run.calls[-1]["argv"] == ["done", "--issue", BEAD]
    assert (town.worktree / "hello.txt").read_text() == "hi\n"
    assert len(git.commits_between(town.worktree, base)) == 1
    assert git.run(["show", "--name-only", "--format=", "HEAD"], town.worktree).stdout.split() == ["hello.txt"]
    assert sorted(git.changed_files(town.worktree)) == [".claude/commands/handoff.md", ".runtime/session_id"]
    assert f"gt done: {BEAD} COMPLETED" in run.stdout
    # every call ran in the polecat's worktree, whatever directory it was started in
    assert {Path(c["cwd"]).resolve() for c in run.calls} == {town.worktree.resolve()}


def test_prime_runs_first_without_a_stdin_read_and_the_ready_line_follows(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}))
    run = town.run()
    prime = run.calls[0]
    assert prime["argv"] == ["prime", "--hook"]
    assert prime["env"]["GT_SESSION_ID"] and prime["env"]["GT_HOOK_SOURCE"] == "startup"
    assert not prime["read_stdin"]
    ready = [line for line in run.stdout.splitlines() if line.startswith("❯ ")]
    assert ready == [f"❯ {NAME}: ready"]
    assert run.stdout.index("❯ ") < run.stdout.index("hooked bead")


def test_never_reads_stdin_and_gives_every_child_dev_null(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}))
    run = town.run()
    assert run.code == 0, run.stdout
    assert run.stdin_left == TYPED  # the keys gt "typed into the pane" are all still there
    assert run.calls and all(c["stdin_devnull"] for c in run.calls)
    assert not any(c["read_stdin"] for c in run.calls)


def test_the_bead_reaches_the_agent_only_through_the_task_file_without_metadata(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}) + "Real instructions here.")
    run = town.run()
    assert run.code == 0, run.stdout
    text = (town.worktree / ".current_task.txt").read_text(encoding="utf-8")
    assert text.startswith(f"Task {BEAD}: {TITLE}\n")
    assert "Real instructions here." in text and "hello.txt says hi" in text
    for line in ("attached_molecule", "attached_formula", "attached_at", "dispatched_by", "formula_vars",
                 "setup_command=make"):
        assert line not in text
    assert ".claude/" in text  # told to keep out of Gas Town's files
    for call in run.calls:
        assert not any("Greet" in arg or "Real instructions" in arg for arg in call["argv"])
    assert ".current_task.txt" not in git.run(["ls-files"], town.worktree).stdout


def test_agent_failure_escalates(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}, "exit": 3}))
    run = town.run()
    assert run.code == 0, run.stdout
    assert dones(run.calls) == [["done", "--issue", BEAD, "--status", "ESCALATED"]]
    assert "ESCALATED (failed)" in run.stdout


def test_no_change_escalates(town):
    town.bead(fake_script({"append": {}}))
    run = town.run()
    assert dones(run.calls) == [["done", "--issue", BEAD, "--status", "ESCALATED"]]
    assert "ESCALATED (no_change)" in run.stdout


def test_a_config_error_still_ends_with_gt_done(town):
    town.bead(fake_script({}))
    proc, pipe = town.start("--timeout", "soon")
    run = town.finish(proc, pipe)
    assert "error:" in run.stdout and "attempt_timeout" in run.stdout
    assert dones(run.calls) == [["done", "--issue", BEAD, "--status", "ESCALATED"]]


def test_uncommitted_changes_left_in_the_worktree_escalate_without_running(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}))
    (town.worktree / "README.md").write_text("left by an earlier run\n")
    run = town.run()
    assert "uncommitted changes (README.md)" in run.stdout
    assert not (town.worktree / "hello.txt").exists()
    assert dones(run.calls) == [["done", "--issue", BEAD, "--status", "ESCALATED"]]


def test_completed_refused_by_gt_falls_back_to_escalated(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}), refuse_completed=True)
    run = town.run()
    assert run.code == 0
    assert dones(run.calls) == [["done", "--issue", BEAD], ["done", "--issue", BEAD, "--status", "ESCALATED"]]


def test_heartbeats_while_the_agent_works_and_none_after_gt_done(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}, "sleep": 1}))
    run = town.run()
    beats = [i for i, c in enumerate(run.calls) if c["argv"][0] == "heartbeat"]
    assert len(beats) >= 2
    assert all(run.calls[i]["argv"][1] == "--state=working" for i in beats)
    assert any(run.calls[i]["argv"][2] == f"{NAME}: fake on {BEAD}" for i in beats)
    done_at = names(run.calls).index("done")
    assert max(beats) < done_at


def test_waits_while_has_work_is_false_then_works(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}), no_work=3)
    run = town.run()
    hooks = [c for c in run.calls if c["argv"][:2] == ["hook", "--json"]]
    assert [c["has_work"] for c in hooks[:4]] == [False, False, False, True]
    assert "no work on the hook yet" in run.stdout
    assert dones(run.calls) == [["done", "--issue", BEAD]]


def test_nothing_hooked_reports_stuck_and_escalates(town):
    town.bead(fake_script({}), no_work=10**9)
    run = town.run(env={"QWEN_AGENT_HOOK_WAIT_SECONDS": "0.3"})
    assert run.code == 0
    argvs = [c["argv"] for c in run.calls]
    stuck = argvs.index(["heartbeat", "--state=stuck", f"{NAME}: no hook"])
    assert [a[0] for a in argvs[stuck + 1:]] == ["done"]  # no "working" beat hides it
    assert dones(run.calls) == [["done", "--status", "ESCALATED"]]
    assert "nothing on the hook after 0.3 s" in run.stdout


def test_waits_for_sling_to_set_in_progress_before_gt_done(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}}), hooked=4)
    run = town.run()
    argvs = [c["argv"][0] for c in run.calls]
    last_hook = max(i for i, name in enumerate(argvs) if name == "hook")
    assert run.calls[last_hook]["status"] == "in_progress"
    assert last_hook < argvs.index("done")
    assert [c["status"] for c in run.calls if c["argv"][0] == "hook"][:4] == ["hooked"] * 4
    assert dones(run.calls) == [["done", "--issue", BEAD]]


def _agent_processes(worktree: Path, at_least: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = process.find_agents([worktree])
        if len(found) >= at_least:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the agent did not start {at_least} processes")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigterm_mid_run_ends_the_agent_group_and_still_escalates(town):
    town.bead(fake_script({"write": {"hello.txt": "hi\n"}, "spawn_child": True, "hang": True}))
    proc, pipe = town.start()
    pids = _agent_processes(town.worktree, at_least=2)  # the fake agent and the child it started
    proc.send_signal(signal.SIGTERM)
    run = town.finish(proc, pipe)
    assert run.code == 0, run.stdout
    assert dones(run.calls) == [["done", "--issue", BEAD, "--status", "ESCALATED"]]
    assert "stopped by a signal" in run.stdout
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)
    assert not (town.worktree / "hello.txt").exists() or git.is_dirty(town.worktree)  # nothing committed


def test_not_a_polecat_exits_2_without_calling_gt(town):
    env = {k: v for k, v in town.env.items() if k not in ("GT_ROLE", "BD_ACTOR")}
    proc = subprocess.run(town.argv(BEACON), cwd=town.cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not running as a Gas Town polecat" in proc.stdout
    assert town.calls() == []


# -- pieces


def test_strip_metadata_keeps_the_prose():
    text = METADATA + "Fix the parser.\nmode: strict is prose here\n  no-merge: true\nConvoy_ID: hq-cv-1\n"
    assert strip_metadata(text) == "Fix the parser.\nmode: strict is prose here"


def test_parse_args_takes_options_and_ignores_the_beacon():
    assert parse_args(["--agent", "fake", "--model=ollama_chat/qwen2.5-coder:14b", BEACON]) == {
        "agent": "fake", "model": "ollama_chat/qwen2.5-coder:14b"}
    assert parse_args([BEACON]) == {}
    assert parse_args(["--agent"]) == {}


def test_is_polecat_accepts_old_and_new_role_forms():
    assert is_polecat({"GT_ROLE": "polecat"})
    assert is_polecat({"GT_ROLE": "gasworks/polecats/toast"})
    assert is_polecat({"GT_ROLE": "", "BD_ACTOR": "gasworks/polecats/toast"})
    assert not is_polecat({"GT_ROLE": "gasworks/witness"})
    assert not is_polecat({})


def test_console_script_is_registered_with_a_short_name():
    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[NAME] == "gasworks.agents.polecat:main"
    assert len(NAME) <= 15  # Linux's comm, which gt's liveness check reads, holds 15 characters
