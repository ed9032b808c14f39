"""What `gasworks top` shows: the report it reads, and how its tables fit the terminal (no widgets here)."""

from __future__ import annotations

import functools
from typing import Any

from rich.text import Text

from gasworks.models import MergeStatus, Status, iso_from_epoch
from gasworks.output import oneline
from gasworks.project import Project
from gasworks.stats import ETA_WINDOW_SECONDS, epoch, progress, seconds_text
from gasworks.status import QUIET_WARN_SECONDS, fleet_slots
from gasworks.waits import needing_humans

HUMANS_LISTED = 50   # blocked tasks listed with their reason; the rest are counted
RECENT_LISTED = 20   # merge results shown on a tall terminal
TALL = 34            # rows from which the latest merge results are shown too
LOG_LINES = 2000     # the log view starts with this many of the log's last lines
DIFF_LINES = 5000    # the diff view shows this many lines, then says how many more `gasworks diff` has
PADDING = 2          # cells a table adds around each column

# The slots table's columns: (key, heading, width; 0: flexible). Narrow terminals drop them in
# DROP_ORDER until the rest fit; slot and task are never dropped, and never cut.
COLUMNS = (("slot", "slot", 0), ("task", "task", 0), ("try", "try", 3), ("elapsed", "elapsed", 7),
           ("quiet", "quiet", 7), ("tokens", "tokens in/out", 13), ("title", "title", 0), ("line", "last log line", 0))
DROP_ORDER = ("tokens", "title", "quiet", "try", "elapsed", "line")
FLEXIBLE = {"title": (12, 40), "line": (16, 10_000)}  # (least, most) cells


def top_report(project: Project, store: Any, now: float) -> dict[str, Any]:
    """What the view shows: the slots (as `gasworks status`), progress, the merge queue, and what
    waits on a person (blocked tasks with their reason, held merges)."""
    counts = store.counts()
    since = iso_from_epoch(now - ETA_WINDOW_SECONDS - 86400)[:10]  # a day early: the text may carry an offset
    closed_at = [when for text in store.closed_times(since) if (when := _epoch(text))]
    failed = len(store.list_tasks(labels=["needs-human"], include_closed=False))
    return {**fleet_slots(project, store, now),
            "merge_queue": [(m.task_id, m.status) for m in store.merges(
                statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)],
            "humans": needing_humans(store, limit=HUMANS_LISTED),
            "recent": [m for m in store.merges(limit=RECENT_LISTED * 2)
                       if m.status not in (MergeStatus.QUEUED, MergeStatus.MERGING)][:RECENT_LISTED],
            "blocked": counts.get(Status.BLOCKED, 0),
            "progress": progress(counts, merged=store.merge_counts().get(MergeStatus.LANDED, 0), failed=failed,
                                 closed_at=closed_at, now=now)}


@functools.lru_cache(maxsize=100_000)
def _epoch(text: str) -> float | None:
    """stats.epoch, remembered: the same closing times are read at every refresh."""
    return epoch(text)


def slot_columns(slots: list[dict[str, Any]], width: int) -> list[tuple[str, str, int]]:
    """The slots table's columns that fit `width` cells, as (key, heading, width): slot and task as
    wide as their longest value, the least useful others dropped until the rest fit, the flexible
    ones (title, last log line) sharing what is left."""
    fixed = {key: size for key, _, size in COLUMNS if size}
    fixed["slot"] = max([4, *(len(s["slot"]) for s in slots)])
    fixed["task"] = max([4, *(len(s["task"]) for s in slots)])
    fixed["tokens"] = max([13, *(len(_tokens(s)) for s in slots)])
    keys = [key for key, _, _ in COLUMNS]

    def needed(chosen: list[str]) -> int:
        return sum(fixed.get(key) or FLEXIBLE[key][0] for key in chosen) + PADDING * len(chosen)

    for key in DROP_ORDER:
        if needed(keys) <= width:
            break
        keys.remove(key)
    spare = max(0, width - needed(keys))
    sizes = dict(fixed)
    for key in ("title", "line"):  # the title takes up to a third of what is left, the log line the rest
        if key in keys:
            least, most = FLEXIBLE[key]
            sizes[key] = least + min(most - least, spare // 3 if key == "title" and "line" in keys else spare)
            spare -= sizes[key] - least
    return [(key, heading, sizes[key]) for key, heading, _ in COLUMNS if key in keys]


def _tokens(slot: dict[str, Any]) -> str:
    return f"{slot['tokens_in']:,}/{slot['tokens_out']:,}"


def slot_cells(slot: dict[str, Any], keys: list[str]) -> list[Any]:
    quiet = slot["quiet"]
    cells = {"slot": slot["slot"], "task": slot["task"], "try": str(slot["attempt"]),
             "elapsed": seconds_text(slot["elapsed"]),
             "quiet": Text(seconds_text(quiet), "yellow" if quiet is not None and quiet >= QUIET_WARN_SECONDS else ""),
             "tokens": _tokens(slot), "title": Text(oneline(slot["title"], 200)),
             "line": Text(oneline(slot["last_line"], 500))}
    return [cells[key] for key in keys]


def fit(parts: list[str], width: int, more: str = "+{} more") -> str:
    """As many of parts as fit in width cells, joined by ", ", then how many were left out."""
    shown: list[str] = []
    for number, part in enumerate(parts):
        tail = "" if number == len(parts) - 1 else ", " + more.format(len(parts) - number - 1)
        if len(", ".join([*shown, part]) + tail) > width:
            return ", ".join(shown) + (", " if shown else "") + more.format(len(parts) - number)
        shown.append(part)
    return ", ".join(shown)


def summary(report: dict[str, Any], width: int) -> Text:
    """Three lines: progress with the ETA, the run and its idle slots, the merge queue."""
    done = report["progress"]
    rate = done["rate_per_minute"]
    eta = ("done" if done["eta_seconds"] == 0 else f"ETA {seconds_text(done['eta_seconds'])} at {rate:g}/min"
           if rate else "ETA: measuring")
    head = f"{done['closed']}/{done['total']} closed  {done['merged']} merged  {done['failed']} failed  {eta}"
    bar = min(40, width - len(head) - 3)
    line = Text(head)
    if bar >= 10:
        filled = round(bar * done["closed"] / done["total"]) if done["total"] else 0
        line.append("  ").append("\u2588" * filled, "green").append("\u2591" * (bar - filled), "dim")
    pid = report["run_pid"]
    run = (f"run pid {pid}" if pid else "no run") + f"  {len(report['slots'])} running"
    idle = report["idle_slots"]
    run += f"  idle: {fit(idle, width - len(run) - 8, '+{}')}" if idle else ""
    queue = [f"{task} {status}" for task, status in report["merge_queue"]]
    merges = "merge queue: " + (fit(queue, width - 13) if queue else "empty")
    return Text("\n").join([line, Text(run[:width], "bold" if pid else "yellow"), Text(merges[:width])])
