"""Liveness of merge-conflict resolution: an agent that "resolves" a conflict in a way that conflicts
again (it rewrites the file whole, never taking the target in) gets `max_conflict_rounds`
conflict tasks for the branch, then the original task is blocked for a human, saying how many
rounds were tried, and `run --until-done` ends and names it. A resolution that took the target in
is not counted when the branch conflicts again because the target moved on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from gasworks import git
from gasworks.models import MergeStatus, Status
from gasworks.refinery import CONFLICT_LABEL
from gasworks.witness import NEEDS_HUMAN
from tests.conftest import run_gasworks
from tests.fleet import add, drain, drain_until, make_dispatcher

STUBBORN = [sys.executable, str(Path(__file__).with_name("stubborn_agent.py")), "{worktree}"]
DEFAULT_ROUNDS = 3  # max_conflict_rounds when not set


def _conflict_tasks(store) -> list:
    return store.list_tasks(labels=[CONFLICT_LABEL])


def test_a_conflict_that_comes_back_every_round_ends_blocked_for_a_human(project_dir):
    """Ticks until nothing can move; fails as soon as more conflict tasks than the cap allows were
    made (before the fix a new one was made for every round, without end)."""
    dispatcher, lines = make_dispatcher(project_dir, agent="command", command=STUBBORN)
    first, second = add(dispatcher, "writes shared.txt"), add(dispatcher, "writes shared.txt too")
    deadline = time.monotonic() + 240
    while True:
        dispatcher.tick(time.time())
        made = len(_conflict_tasks(dispatcher.store))
        assert made <= DEFAULT_ROUNDS, f"conflict round {made} made for one branch: the loop has no end\n" + \
            "\n".join(lines)
        if not dispatcher.busy(time.time()):
            break
        assert time.monotonic() < deadline, "the run did not end in time\n" + "\n".join(lines)
        time.sleep(0.05)
    store = dispatcher.store
    landed = [t for t in (first, second) if store.merges(task_id=t, statuses=[MergeStatus.LANDED.value])]
    [loser] = {first, second} - set(landed)
    assert len(landed) == 1 and len(_conflict_tasks(store)) == DEFAULT_ROUNDS
    task = store.get_task(loser)
    assert task.status == Status.BLOCKED and NEEDS_HUMAN in task.labels
    [(blocked, reason)] = store.blocked_with_reasons(10)[0]
    assert blocked.id == loser and "\n" not in reason
    assert f"after {DEFAULT_ROUNDS} rounds of resolution that did not take main in" in reason
    assert "shared.txt" in reason and f"merge-retry {loser}" in reason
    last = store.merges(task_id=loser, limit=1)[0]
    assert last.status == MergeStatus.CONFLICT and not last.conflict_task
    assert not dispatcher.refinery.moving() and not store.ready(limit=1)
    # the remedy it names is taken: the branch is queued again, and agents get their rounds afresh
    retried = run_gasworks(["merge-retry", loser], project_dir)
    assert retried.returncode == 0, retried.stderr
    assert store.get_task(loser).status == Status.MERGING
    requeued = store.merges(task_id=loser, limit=1)[0]
    assert dispatcher.refinery.verdicts.rounds_that_did_not_hold(requeued, dispatcher.upstream.tip()) == []


def test_a_resolution_that_took_the_target_in_is_not_counted_when_the_target_moves_on(project_dir, tmp_path):
    """A busy fleet: the resolver merges the target in, but another change to the same lines lands
    before the branch is tried again, so it conflicts again. That is progress, not a loop: even
    with max_conflict_rounds = 1 a second conflict task is made, and the branch lands."""
    signals = tmp_path / "signals"
    signals.mkdir()
    git.commit_all(project_dir, "gasworks init")  # the user's checkout as it usually is: its config committed
    dispatcher, lines = make_dispatcher(project_dir, agent="command", max_conflict_rounds=1,
                                        command=[*STUBBORN, "--takes-target-in", str(signals)])
    first, second = add(dispatcher, "writes shared.txt"), add(dispatcher, "writes shared.txt too")
    drain_until(dispatcher, lambda: any(signals.glob("*.merged")), limit=120)
    (project_dir / "shared.txt").write_text("the user's own line\n", encoding="utf-8")
    moved = git.commit_all(project_dir, "the target moves on, over the same lines")  # the user commits on main
    assert git.changed_paths(project_dir, f"{moved}~1", moved) == ["shared.txt"]
    (signals / "go").write_text("", encoding="utf-8")
    drain(dispatcher, limit=240)
    store = dispatcher.store
    assert [store.get_task(t).status for t in (first, second)] == [Status.CLOSED, Status.CLOSED], "\n".join(lines)
    assert len(_conflict_tasks(store)) == 2 and not store.list_tasks(labels=[NEEDS_HUMAN])
    assert "the user's own line" in (project_dir / "shared.txt").read_text(encoding="utf-8")


def test_max_conflict_rounds_is_validated_and_named():
    from gasworks.config import Config
    from gasworks.settings import SettingsError

    assert Config.validate({}).max_conflict_rounds == DEFAULT_ROUNDS
    for bad in (0, -1, "many"):
        with pytest.raises(SettingsError, match="max_conflict_rounds"):
            Config.validate({"max_conflict_rounds": bad})


def test_until_done_ends_and_names_the_task_that_waits_for_a_human(project_dir):
    (project_dir / "gasworks.toml").write_text(
        'agent = "command"\nnum_workers = 2\nretry_backoff = 0\nmax_conflict_rounds = 1\n'
        f"command = {STUBBORN!r}\n".replace("'", '"'), encoding="utf-8")
    for title in ("writes shared.txt", "writes shared.txt too"):
        assert run_gasworks(["create", title], project_dir).returncode == 0
    done = run_gasworks(["run", "--until-done"], project_dir, timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "left undone:" in said and "after 1 round" in said and NEEDS_HUMAN in said, said
    assert said.count("made gw-") == 1  # one conflict task: the cap
