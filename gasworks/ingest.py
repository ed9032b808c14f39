"""Reading task files into tasks: Beads JSONL, the classic `task_queue.json`, and markdown task lists.

Parsing only: nothing is written here, so a bad file changes nothing. Errors name the file and line.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from pathlib import Path
from typing import Any

from gasworks.beads import task_from_record
from gasworks.errors import GasworksError, ImportFormatError
from gasworks.models import Dependency, Status, Task, parse_priority, parse_time

FORMATS = ("beads", "queue", "markdown")

# The classic scripts' queue statuses, mapped onto ours. A claim never survives an import:
# whoever was running a task then is not running it now, so running work comes back open.
QUEUE_STATUSES = {
    **dict.fromkeys(("", "open", "pending", "todo", "queued", "new", "ready"), Status.OPEN),
    **dict.fromkeys(("in_progress", "in-progress", "running", "assigned", "claimed", "working"), Status.OPEN),
    **dict.fromkeys(("failed", "error", "retry"), Status.OPEN),
    **dict.fromkeys(("blocked", "waiting"), Status.BLOCKED),
    **dict.fromkeys(("done", "completed", "complete", "closed", "merged", "finished"), Status.CLOSED),
    "deferred": Status.DEFERRED,
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


def decode_text(data: bytes, source: str, *, nul_ok: bool = True) -> str:
    """UTF-8 text as it is (newlines untouched; a leading byte-order mark dropped), or an
    ImportFormatError naming the line of the first bad byte. Without `nul_ok` a NUL byte is refused
    too: in a file of one task per line it means a binary or UTF-16 file, not text."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFormatError(f"{source}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                "save it as UTF-8") from None
    if not nul_ok and "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise ImportFormatError(f"{source}:{line}: a NUL byte: not a text file (UTF-16? save it as UTF-8)")
    return text


def read_text_file(path: Path, *, nul_ok: bool = True) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode_text(data, str(path), nul_ok=nul_ok)


def read_tasks(path: Path, fmt: str | None = None) -> list[Task]:
    return read_file(path, fmt)[0]


def read_file(path: Path, fmt: str | None = None) -> tuple[list[Task], dict[str, str]]:
    """The tasks of a file, and its memories (Beads JSONL `{"_type":"memory"}` lines; others have none)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    text = read_text_file(path, nul_ok=fmt != "markdown")
    if fmt == "beads":
        return parse_beads_file(text, str(path))
    parser = {"queue": parse_task_queue, "markdown": parse_markdown}.get(fmt)
    if parser is None:
        raise ImportFormatError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    tasks = parser(text, str(path))
    if not tasks:
        raise ImportFormatError(f"{path}: no tasks found")
    return tasks, {}


def parse_beads_jsonl(text: str, source: str) -> list[Task]:
    return parse_beads_file(text, source)[0]


def parse_beads_file(text: str, source: str) -> tuple[list[Task], dict[str, str]]:
    """One Beads issue per line, and memories. As `bd import` does: tombstones and the `_schema`
    header line are skipped, memories without a key or a value too, and a later memory with the
    same key wins."""
    by_id: dict[str, Task] = {}
    unnamed: list[Task] = []
    memories: dict[str, str] = {}
    # Lines end at newlines only: splitlines() would also cut at U+2028 or U+0085 inside a title.
    for number, line in enumerate(_LINE_END.split(text), start=1):
        if not line.strip():
            continue
        if line.startswith(("<<<<<<<", "=======", ">>>>>>>")):
            raise ImportFormatError(f"{source}:{number}: unresolved git merge conflict marker")
        record = _loads(line, source, number)
        problem = _json_problem(record)
        if problem:
            raise ImportFormatError(f"{source}:{number}: {problem}")
        if isinstance(record, dict) and record.get("_type") == "memory":
            key, value = record.get("key"), record.get("value")
            if not all(isinstance(v, str) for v in (key, value)):
                raise ImportFormatError(f"{source}:{number}: a memory's 'key' and 'value' must be strings")
            if key and value:
                memories[key] = value
            continue
        if isinstance(record, dict) and (record.get("status") == "tombstone" or "_schema" in record):
            continue
        try:
            task = task_from_record(record)
        except GasworksError as exc:
            raise ImportFormatError(f"{source}:{number}: {exc}") from None
        if not task.id:
            unnamed.append(task)
        elif task.id not in by_id or _newer(task, by_id[task.id]):
            by_id[task.id] = task  # the same id twice (a merged file): the newer line wins
    return [*by_id.values(), *unnamed], memories


_LINE_END = re.compile(r"\r\n|\r|\n")
_JSON_SPACE = " \t\n\r"
_SPACE = re.compile(r"[ \t\n\r]*")


def _past_space(text: str, pos: int) -> int:
    """Where JSON whitespace from pos ends (the pattern matches even nothing)."""
    found = _SPACE.match(text, pos)
    return found.end() if found else pos


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _loads(text: str, source: str, line: int = 1) -> Any:
    """json.loads with an error naming the file and line (`line`: where `text` starts in the file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{source}:{line + exc.lineno - 1}: not valid JSON: {exc.msg} "
                                f"(column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # [[[[... too deep; an integer of thousands of digits
        why = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read"
        raise ImportFormatError(f"{source}:{line}: not valid JSON: {why}") from None


def _json_problem(value: Any) -> str:
    """What in decoded JSON the store cannot keep or other tools cannot read back: lone surrogates
    (from \\udcff escapes), NaN and Infinity. Empty when all is well."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"text holding a lone surrogate {item[exc.start]!r}, which is not valid Unicode"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{'NaN' if math.isnan(item) else 'Infinity'} is not JSON (write null or a string)"
        elif isinstance(item, dict):
            stack.extend(part for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend(item)
    return ""


def _array_starts(text: str, pos: int) -> list[int]:
    """Where each element of the (valid) JSON array at text[pos] begins."""
    decoder, starts = json.JSONDecoder(), []
    pos = _past_space(text, pos + 1)
    while text[pos] != "]":
        starts.append(pos)
        pos = _past_space(text, decoder.raw_decode(text, pos)[1])
        if text[pos] == ",":
            pos = _past_space(text, pos + 1)
    return starts


def _tasks_value(text: str, pos: int) -> int:
    """Where the value of the (last, as json.loads takes it) "tasks" key of the JSON object at text[pos] begins."""
    decoder, found = json.JSONDecoder(), pos
    pos = _past_space(text, pos + 1)
    while text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = _past_space(text, _past_space(text, pos) + 1)  # past the colon
        if key == "tasks":
            found = pos
        pos = _past_space(text, decoder.raw_decode(text, pos)[1])
        if text[pos] == ",":
            pos = _past_space(text, pos + 1)
    return found


def _newer(a: Task, b: Task) -> bool:
    if not a.updated_at or not b.updated_at:
        return True
    return parse_time(a.updated_at) >= parse_time(b.updated_at)


def parse_task_queue(text: str, source: str) -> list[Task]:
    """The classic `task_queue.json`: a list (or {"tasks": [...]}) of objects with title/description/status."""
    data = _loads(text, source)
    top = len(text) - len(text.lstrip(_JSON_SPACE))
    items = data["tasks"] if isinstance(data, dict) and isinstance(data.get("tasks"), list) else data
    if not isinstance(items, list):
        raise ImportFormatError(f"{source}:{_line_at(text, top)}: expected a JSON list of tasks (or an object "
                                "with a 'tasks' list)")
    # The queue's own ids (any JSON scalar), so `depends_on` can name other items of the file.
    positions = {json.dumps(item["id"]): n for n, item in enumerate(items)
                 if isinstance(item, dict) and isinstance(item.get("id"), (int, str))}
    tasks = []
    for index, item in enumerate(items, start=1):
        try:
            tasks.append(_queue_item(item, positions))
        except GasworksError as exc:  # only now find where the item starts, to name its line
            start = _array_starts(text, top if items is data else _tasks_value(text, top))[index - 1]
            raise ImportFormatError(f"{source}:{_line_at(text, start)}: task #{index}: {exc}") from None
    return tasks


def _queue_deps(item: dict, positions: dict[str, int]) -> list[Dependency]:
    """`depends_on`: ids of other items in the file (one, or a list), as "#N" batch references."""
    wanted = item.get("depends_on", [])
    wanted = wanted if isinstance(wanted, list) else [wanted]
    deps = []
    for ref in wanted:
        key = json.dumps(ref) if isinstance(ref, (int, str)) else None
        if key not in positions:
            raise ImportFormatError(f"depends_on {json.dumps(ref)}: no task with that id in this file")
        deps.append(Dependency("", f"#{positions[key]}", "blocks"))
    return deps


def _queue_item(item: Any, positions: dict[str, int]) -> Task:
    if isinstance(item, str):
        item = {"title": item}
    if not isinstance(item, dict):
        raise ImportFormatError(f"expected an object or a string, got {type(item).__name__}")
    problem = _json_problem(item)
    if problem:
        raise ImportFormatError(problem)
    title = item.get("title") or item.get("name") or item.get("task")
    if not isinstance(title, str) or not title.strip():
        raise ImportFormatError("no 'title'")
    description = item.get("description") or item.get("details") or ""
    if not isinstance(description, str):
        raise ImportFormatError("'description' must be a string")
    raw_status = str(item.get("status") or "").strip().lower()
    if raw_status not in QUEUE_STATUSES:
        accepted = ", ".join(sorted(k for k in QUEUE_STATUSES if k))
        raise ImportFormatError(f"unknown status {raw_status!r} (accepted: {accepted})")
    priority = parse_priority(item.get("priority", 2))
    kept = {k: v for k, v in item.items() if k not in ("title", "name", "task", "description", "details",
                                                      "status", "priority")}
    status = QUEUE_STATUSES[raw_status]
    return Task(id="", title=title.strip(), description=description, status=status, priority=priority,
                close_reason="Done before import" if status == Status.CLOSED else "",
                extra={"queue_item": kept} if kept else {}, dependencies=_queue_deps(item, positions))


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
            tasks.append(Task(id="", title=match.group(4), status=Status.CLOSED if done else Status.OPEN,
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
    """One idea per line. Blank lines, duplicates, overlong lines, lines with control characters and
    lines with undecodable bytes (read with surrogateescape) are dropped and counted; list bullets
    are taken off."""
    kept: list[str] = []
    seen: set[str] = set()
    dropped = {"blank": 0, "duplicate": 0, "too_long": 0, "control_characters": 0, "not_utf8": 0}
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip()
        if not line:
            dropped["blank"] += 1
        elif any("\ud800" <= c <= "\udfff" for c in line):
            dropped["not_utf8"] += 1
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
