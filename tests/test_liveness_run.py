"""Liveness of a whole run: `--until-done` ends when nothing can move without a human and says what is
left for whom; a run that waits says so once a minute; a merge round that keeps failing is held."""

from __future__ import annotations

import shutil
import sys
import time

from gasworks import git
from gasworks.waits import Wait, WaitLog, left_over
from tests.faults.test_agent_faults import ModelServer, create, finish, start_run, use_model_server, wait_for
from tests.fleet import add, drain, fake_script, make_dispatcher


def test_a_wait_is_said_when_it_starts_then_once_a_minute_and_again_when_it_comes_back():
    lines: list[str] = []
    log = WaitLog(lines.append)
    down = [Wait("endpoints", "the model endpoints do not answer")]
    for now in (1000.0, 1030.0, 1059.0, 1060.0, 1119.0, 1120.0):
        log.observe(now, down)
    assert len(lines) == 3 and all(line.startswith("waiting: the model endpoints do not answer (since ")
                                   for line in lines)
    assert lines[1].endswith(", 60 s)") and lines[2].endswith(", 2 min)")
    log.observe(1121.0, [])
    log.observe(1122.0, down)  # over, then back: said at once, with the new start
    assert len(lines) == 4 and lines[3].endswith(", 0 s)")


def test_a_run_that_cannot_claim_says_why_once_a_minute(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1)
    add(dispatcher, "ready, but the breaker is open")
    start = time.time()
    dispatcher.claims.paused_until = start + 10_000  # as after agents found every endpoint down
    dispatcher.claims.healthy = lambda: False
    for offset in (0, 6, 30, 59, 66, 100, 127):
        dispatcher.tick(start + offset)
    said = [line for line in lines if line.startswith("waiting: the model endpoints do not answer")]
    assert len(said) == 3, lines  # at 0, 66 and 127: once a minute, checked every 5 s
    assert not dispatcher.store.attempts()


def test_an_idle_run_says_it_is_idle_and_what_is_blocked(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1)
    start = time.time()
    dispatcher.tick(start)
    assert "waiting: nothing to do: 0 ready, 0 waiting on other work, 0 blocked (since " in lines[-1]


def test_a_merge_round_that_keeps_failing_is_held_with_the_error_until_a_human_retries(gw, project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1)
    index = project_dir / ".git" / "worktrees" / "integration" / "index"
    index.unlink()
    index.mkdir()  # no git command can use this tree until someone fixes it
    task_id = add(dispatcher, "waits to merge")
    deadline = time.monotonic() + 90
    while not dispatcher.store.merges(task_id=task_id, statuses=["held"]):
        dispatcher.refinery.backoff_until = 0.0  # the backoff is tested elsewhere; here, the count
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline, "the merge was never held"
        time.sleep(0.05)
    (merge,) = dispatcher.store.merges(task_id=task_id)
    assert "held after 5 merge rounds in a row failed in git" in merge.note and "merge-retry" in merge.note
    assert any("held for a human: " + task_id in line for line in lines)
    assert not dispatcher.busy(time.time())  # nothing moves without a human now
    assert any(line.startswith(f"the merge of {task_id} is held: ") for line in left_over(dispatcher, time.time()))
    shutil.rmtree(index)
    gw("merge-retry", task_id)
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert [m.status for m in dispatcher.store.merges(task_id=task_id, oldest_first=True)] == ["dropped", "landed"]


def test_until_done_ends_when_a_merge_is_held_by_edits_in_the_checkout_and_says_which(project_dir):
    (project_dir / "notes.txt").write_text("first\n")
    git.run(["add", "notes.txt"], project_dir)
    git.run(["commit", "-qm", "notes"], project_dir)
    (project_dir / "notes.txt").write_text("the user's own edit, not committed\n")
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write("\nuntil_done_patience = 3\n")
    task_id = create(project_dir, "edits the notes", fake_script(write={"notes.txt": "from the agent\n"}))
    run, out = start_run(project_dir, "--agent", "fake", "--workers", "1")
    output = finish(run, out)
    assert run.returncode == 1, output
    assert "left undone:" in output and f"the merge of {task_id} waits: " in output
    assert "local changes in the way" in output and "commit or stash them" in output
    assert (project_dir / "notes.txt").read_text() == "the user's own edit, not committed\n"


def test_until_done_ends_when_the_model_stays_down_and_says_since_when(project_dir):
    server = ModelServer()
    use_model_server(project_dir, server, 1, "until_done_patience = 3")
    ids = [create(project_dir, f"model task {n}") for n in range(3)]
    run, out = start_run(project_dir, "--agent", "builtin", "--workers", "1")
    try:
        wait_for(lambda: "started" in out.read_text(), "the first agent to start")
    finally:
        server.stop()
    output = finish(run, out)
    assert run.returncode == 1, output
    assert "ready work was not started: the model endpoints do not answer (since " in output
    assert "still do not answer" in output
    assert len(ids) == 3


def test_a_broken_target_waits_only_for_its_fix_which_lands_and_then_the_rest(project_dir):
    """The queue waited for the target to move, but the one branch that moves it, the fix of the
    gate-broken task, waited in that same queue: nothing ever landed."""
    (project_dir / "red.txt").write_text("the target is red\n")
    git.run(["add", "red.txt"], project_dir)
    git.run(["commit", "-qm", "red"], project_dir)
    mended = [sys.executable, "-c", "import pathlib, sys; sys.exit(1 if pathlib.Path('red.txt').exists() "
                                    "and not list(pathlib.Path('fake').glob('*.txt')) else 0)"]
    dispatcher, lines = make_dispatcher(project_dir, gate=[mended], num_workers=1)
    innocent = [add(dispatcher, f"innocent {n}", description=fake_script(write={f"innocent-{n}.txt": "x\n"}))
                for n in range(2)]
    drain(dispatcher)
    (bug,) = dispatcher.store.list_tasks(labels=["gate-broken"])
    assert {dispatcher.store.get_task(t).status for t in [*innocent, bug.id]} == {"closed"}, lines
    landed = git.run(["ls-tree", "-r", "--name-only", "main"], project_dir).stdout.split()
    assert {f"fake/{bug.id}.txt", "innocent-0.txt", "innocent-1.txt"} <= set(landed)


def test_a_run_ends_with_what_it_did_merged_failed_and_why_waiting_tokens_and_time(project_dir):
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write("\nmax_attempts = 1\n")
    create(project_dir, "lands")
    failing = create(project_dir, "fails", fake_script(exit=3))
    waits = create(project_dir, "waits on the failing one")
    from tests.faults.test_agent_faults import gasworks as cli

    cli(project_dir, "dep", "add", waits, failing)
    run, out = start_run(project_dir, "--agent", "fake", "--workers", "2")
    output = finish(run, out)
    assert run.returncode == 1, output
    summary = next(line for line in output.splitlines() if "done in " in line)
    assert "1 merged; 1 attempt(s) failed (1 failed); 1 blocked, 1 waiting on unfinished work; 0 tokens" in summary
    assert f"{failing} is blocked: " in output and f"{waits} waits on {failing}" in output


def test_show_gives_each_attempt_how_it_ended_how_long_tokens_and_its_log(project_dir):
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write("\nmax_attempts = 1\n")
    failing = create(project_dir, "fails", fake_script(exit=3))
    finish(*start_run(project_dir, "--agent", "fake", "--workers", "1"))
    import json

    from tests.faults.test_agent_faults import gasworks as cli

    (shown,) = json.loads(cli(project_dir, "show", failing, "--json").stdout)
    (attempt,) = shown["attempts"]
    assert (attempt["number"], attempt["outcome"], attempt["exit_code"]) == (1, "failed", 3)
    assert attempt["seconds"] >= 0 and attempt["log"].endswith(".log") and "agent exited 3" in attempt["note"]
    text = cli(project_dir, "show", failing).stdout
    assert "Attempts:" in text and "failed" in text and f"log: {attempt['log']}" in text
