"""Reading task files into tasks: Beads JSONL, the classic `task_queue.json`, and markdown task lists.

Parsing only: nothing is written here, so a bad file changes nothing. Errors name the file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gasworks.beads import task_from_record
from gasworks.errors import GasworksError, ImportFormatError
from gasworks.models import Task, parse_priority, parse_time

FORMATS = ("beads", "queue", "markdown")

# The classic scripts' queue statuses, mapped onto ours. A claim never survives an import:
# whoever was running a task then is not running it now, so running work comes back open.
QUEUE_STATUSES = {
    **dict.fromkeys(("", "open", "pending", "todo", "queued", "new", "ready"), "open"),
    **dict.fromkeys(("in_progress", "in-progress", "running", "assigned", "claimed", "working"), "open"),
    **dict.fromkeys(("failed", "error", "retry"), "open"),
    **dict.fromkeys(("blocked", "waiting"), "blocked"),
    **dict.fromkeys(("done", "completed", "complete", "closed", "merged", "finished"), "closed"),
    "deferred": "deferred",
}


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "beads"
    if suffix == ".json":
        return "queue"
    if suffix in (".md", ".markdown", ".txt"):
        return "markdown"
    head = path.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
    return {"{": "beads", "[": "queue"}.get(head, "markdown")


def read_tasks(path: Path, fmt: str | None = None) -> list[Task]:
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    parser = {"beads": parse_beads_jsonl, "queue": parse_task_queue, "markdown": parse_markdown}.get(fmt)
    if parser is None:
        raise ImportFormatError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    tasks = parser(text, str(path))
    if not tasks and fmt != "beads":
        raise ImportFormatError(f"{path}: no tasks found")
    return tasks


def parse_beads_jsonl(text: str, source: str) -> list[Task]:
    """One Beads issue per line. Memory records and tombstones are skipped, as `bd import` does."""
    by_id: dict[str, Task] = {}
    unnamed: list[Task] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith(("<<<<<<<", "=======", ">>>>>>>")):
            raise ImportFormatError(f"{source}:{number}: unresolved git merge conflict marker")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"{source}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        if isinstance(record, dict) and (record.get("_type") == "memory" or record.get("status") == "tombstone"):
            continue
        try:
            task = task_from_record(record)
        except GasworksError as exc:
            raise ImportFormatError(f"{source}:{number}: {exc}") from None
        if not task.id:
            unnamed.append(task)
        elif task.id not in by_id or _newer(task, by_id[task.id]):
            by_id[task.id] = task  # the same id twice (a merged file): the newer line wins
    return [*by_id.values(), *unnamed]


def _newer(a: Task, b: Task) -> bool:
    if not a.updated_at or not b.updated_at:
        return True
    return parse_time(a.updated_at) >= parse_time(b.updated_at)


def parse_task_queue(text: str, source: str) -> list[Task]:
    """The classic `task_queue.json`: a list (or {"tasks": [...]}) of objects with title/description/status."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        data = data["tasks"]
    if not isinstance(data, list):
        raise ImportFormatError(f"{source}: expected a JSON list of tasks (or an object with a 'tasks' list)")
    return [_queue_item(item, f"{source}: task #{index}") for index, item in enumerate(data, start=1)]


def _queue_item(item: Any, where: str) -> Task:
    if isinstance(item, str):
        item = {"title": item}
    if not isinstance(item, dict):
        raise ImportFormatError(f"{where}: expected an object or a string, got {type(item).__name__}")
    title = item.get("title") or item.get("name") or item.get("task")
    if not isinstance(title, str) or not title.strip():
        raise ImportFormatError(f"{where}: no 'title'")
    description = item.get("description") or item.get("details") or ""
    if not isinstance(description, str):
        raise ImportFormatError(f"{where}: 'description' must be a string")
    raw_status = str(item.get("status") or "").strip().lower()
    if raw_status not in QUEUE_STATUSES:
        accepted = ", ".join(sorted(k for k in QUEUE_STATUSES if k))
        raise ImportFormatError(f"{where}: unknown status {raw_status!r} (accepted: {accepted})")
    try:
        priority = parse_priority(item.get("priority", 2))
    except GasworksError as exc:
        raise ImportFormatError(f"{where}: {exc}") from None
    kept = {k: v for k, v in item.items() if k not in ("title", "name", "task", "description", "details",
                                                      "status", "priority")}
    status = QUEUE_STATUSES[raw_status]
    return Task(id="", title=title.strip(), description=description, status=status, priority=priority,
                close_reason="Done before import" if status == "closed" else "",
                extra={"queue_item": kept} if kept else {})


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+(\[( |x|X)\]\s+)?(.*\S)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _strip_numbering(title: str) -> str:
    # "1. Add logging" / "Task 3: Add logging" as headings: the number is not part of the title.
    return re.sub(r"^(\d+[.)]|task\s+\d+\s*[:.-])\s*", "", title, flags=re.IGNORECASE).strip() or title


def parse_markdown(text: str, source: str) -> list[Task]:
    """Markdown tasks. A heading with text (or nothing) under it is a task and the text its description.
    A section that holds only a list makes each top-level item a task (indented lines: its description;
    `- [x]` items are closed). A lone top `#` heading over other headings is the document's title, and
    an empty heading over deeper ones is a group, not a task."""
    sections = _sections(text)
    top_levels = [level for level, _, _ in sections if level]
    title_level = min(top_levels) if top_levels and top_levels.count(min(top_levels)) == 1 and len(top_levels) > 1 \
        else None
    tasks: list[Task] = []
    for index, (level, heading, body) in enumerate(sections):
        items = _list_items(body)
        deeper_follows = index + 1 < len(sections) and sections[index + 1][0] > level
        if items is not None:
            tasks.extend(items)
        elif heading and level != title_level and not (deeper_follows and not "".join(body).strip()):
            tasks.append(Task(id="", title=_strip_numbering(heading), description="\n".join(body).strip()))
    return tasks


def _sections(text: str) -> list[tuple[int, str, list[str]]]:
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            sections.append((len(match.group(1)), match.group(2), []))
        else:
            sections[-1][2].append(line)
    return sections


def _list_items(body: list[str]) -> list[Task] | None:
    """Tasks from a body that is only a list; None when the body has prose (it is a description then)."""
    tasks: list[Task] = []
    lines: list[str] = []
    for line in body:
        match = _ITEM.match(line)
        if match:
            done = (match.group(3) or " ").lower() == "x"
            tasks.append(Task(id="", title=match.group(4), status="closed" if done else "open",
                              close_reason="Done before import" if done else ""))
            lines = []
        elif not line.strip():
            lines.append("")
        elif tasks and line[:1] in (" ", "\t"):
            lines.append(line.strip())
            tasks[-1].description = "\n".join(lines).strip()
        else:
            return None
    return tasks or None


SUGGESTIONS_FILE = "suggested_tasks.txt"
MAX_SUGGESTION_LENGTH = 200
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")


def normalise_title(title: str) -> str:
    """Titles compared for duplicates: case, punctuation and spacing do not count."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", title.lower())).strip()


def parse_suggestions(text: str) -> tuple[list[str], dict[str, int]]:
    """One idea per line. Blank lines, duplicates, overlong lines and lines with control characters
    are dropped and counted; list bullets are taken off."""
    kept: list[str] = []
    seen: set[str] = set()
    dropped = {"blank": 0, "duplicate": 0, "too_long": 0, "control_characters": 0}
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip()
        if not line:
            dropped["blank"] += 1
        elif any(ord(c) < 32 or 127 <= ord(c) < 160 for c in line):
            dropped["control_characters"] += 1
        elif len(line) > MAX_SUGGESTION_LENGTH:
            dropped["too_long"] += 1
        elif normalise_title(line) in seen or not normalise_title(line):
            dropped["duplicate"] += 1
        else:
            seen.add(normalise_title(line))
            kept.append(line)
    return kept, dropped
