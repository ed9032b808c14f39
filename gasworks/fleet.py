"""The top loop of `gasworks run`: the one place that reads the clock and acts on signals.

`run_fleet` repeats `Dispatcher.tick(now)` until stopped (or, with until_done, until nothing can
move without a human); `snapshot` is what the fleet is doing, for the progress display.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gasworks import logs, process, waits
from gasworks.dispatcher import Dispatcher
from gasworks.models import MergeStatus
from gasworks.refinery import RefineryWorker
from gasworks.worktrees import Slot

WAKE_CHECK_SECONDS = 0.02


def run_fleet(dispatcher: Dispatcher, *, until_done: bool, poll_seconds: float = 0.2,
              on_tick: Callable[[float], None] = lambda now: None) -> int:
    """Repeat tick() until stopped (or, with until_done, until nothing is left to do).

    Signal handlers only count signals; the loop acts on them. The first SIGINT, SIGTERM or SIGHUP stops
    claiming and gives running agents grace_seconds to finish; the second, or the end of the grace,
    ends every agent's process group. Returns the exit code: 0 done, 1 work left blocked or
    failed, 130 stopped by a signal.
    """
    deadline = None
    handled = 0
    dispatcher.worker = RefineryWorker(dispatcher.refinery)
    with process.stop_signals() as received:
        try:
            dispatcher.start()
            dispatcher.worker.start()
            while True:
                now = time.time()
                if received.count and deadline is None:
                    deadline = now + dispatcher.config.grace_seconds
                    dispatcher.say(f"stopping: no new tasks; running agents get {dispatcher.config.grace_seconds:g} "
                                   "s to finish (Ctrl+C again to stop them now)")
                    dispatcher.stop()
                if deadline is not None and (received.count > 1 or now >= deadline) \
                        and not dispatcher.refinery.aborting:
                    dispatcher.say("stopping every running agent (and any merge gate) now")
                    dispatcher.stop(hard=True)
                dispatcher.tick(now)
                on_tick(now)
                if (deadline is not None or until_done) and not dispatcher.busy(now):
                    break
                wait(dispatcher, poll_seconds, interrupted=lambda: received.count > handled)
                handled = received.count
        finally:
            dispatcher.worker.stop(hard=bool(received.count))
            if dispatcher.worker.is_alive():
                dispatcher.worker.join()
            dispatcher.agent.close()
            dispatcher.agents.close()  # what labelled tasks' agents made (an embedded model, say)
    for line in dispatcher.store.after_run():  # tracker = beads: `bd sync`
        dispatcher.say(line)
    if received.count:
        return 130
    counts = dispatcher.store.counts()
    left = sum(counts.get(status, 0) for status in ("blocked", "waiting", "ready", "in_progress", "merging"))
    if until_done and left:
        dispatcher.say("left undone:")
        for line in waits.left_over(dispatcher, time.time()):
            dispatcher.say(f"  {line}")
    return 1 if until_done and left else 0


def wait(dispatcher: Dispatcher, seconds: float, interrupted: Callable[[], bool]) -> None:
    """Sleep until the next tick, waking early when an agent exits or a signal arrives."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not interrupted():
        if any(run.ended() for run in dispatcher.running.values()):
            return
        time.sleep(min(WAKE_CHECK_SECONDS, max(0.0, deadline - time.monotonic())))


def snapshot(dispatcher: Dispatcher, now: float) -> dict:
    """What the fleet is doing, for the progress display."""
    held = dispatcher.refinery.held
    return {
        "slots": [_slot_view(dispatcher, slot, now) for slot in dispatcher.pool.slots],
        "held": {m.task_id: held.message for m in held.merges} if held else {},
        "queue": [m.task_id for m in dispatcher.store.merges(statuses=[MergeStatus.QUEUED.value,
                                                                       MergeStatus.MERGING.value], oldest_first=True)],
        "counts": dispatcher.store.counts(),
    }


def _slot_view(dispatcher: Dispatcher, slot: Slot, now: float) -> dict:
    run = dispatcher.running.get(slot.name)
    if run is None:
        return {"slot": slot.name, "task": None, "elapsed": None, "last_line": ""}
    return {"slot": slot.name, "task": run.task_id, "attempt": run.number, "attempt_id": run.attempt_id,
            "elapsed": round(now - run.watch.started, 1), "last_line": logs.last_line(run.log)}
