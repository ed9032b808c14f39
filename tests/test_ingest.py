"""The classic formats: task_queue.json and markdown task lists (e.g. BEADS_FOR_ANALYSIS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gasworks.errors import ImportFormatError
from gasworks.ingest import parse_markdown, read_tasks


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_task_queue_json_maps_classic_statuses(tmp_path, store):
    queue = [
        {"id": 1, "title": "Add logging", "description": "to the worker", "status": "pending"},
        {"id": 2, "title": "Fix crash", "status": "in_progress", "worker": "w3"},
        {"id": 3, "title": "Old work", "status": "done"},
        "Just a title",
    ]
    path = _write(tmp_path, "task_queue.json", json.dumps(queue, indent=2))
    tasks = read_tasks(path)
    assert [(t.title, t.status) for t in tasks] == [
        ("Add logging", "open"), ("Fix crash", "open"), ("Old work", "closed"), ("Just a title", "open")]
    assert tasks[1].extra == {"queue_item": {"id": 2, "worker": "w3"}}
    result = store.import_tasks(tasks, prefix="gw", actor="t")
    assert result.created == 4
    assert [t.title for t in store.ready()] == ["Add logging", "Fix crash", "Just a title"]
    closed = store.get_task(result.ids[2])
    assert closed.closed_at and closed.close_reason == "Done before import"
    # Importing the same queue again adds nothing.
    again = store.import_tasks(read_tasks(path), prefix="gw", actor="t")
    assert (again.created, again.skipped) == (0, 4)


def test_task_queue_object_with_tasks_key(tmp_path):
    path = _write(tmp_path, "q.json", json.dumps({"tasks": [{"title": "a"}]}))
    assert [t.title for t in read_tasks(path)] == ["a"]


@pytest.mark.parametrize("text, message", [
    ('[{"title": "a"},\n {"title": "b",,}]', r"q\.json:2: not valid JSON"),
    ('[{"title": "a", "status": "sleeping"}]', r"q\.json:1: task #1: unknown status 'sleeping' \(accepted: "),
    ('[{"description": "no title"}]', r"q\.json:1: task #1: no 'title'"),
    ('[{"title": "a", "priority": 7}]', r"q\.json:1: task #1: invalid priority 7"),
    ('{"title": "a"}', r"q\.json:1: expected a JSON list"),
    ("[]", r"q\.json: no tasks found"),
])
def test_task_queue_errors_name_the_file_and_place(tmp_path, text, message):
    with pytest.raises(ImportFormatError, match=message):
        read_tasks(_write(tmp_path, "q.json", text))


BEADS_FOR_ANALYSIS = """\
# Beads for analysis

Intro text that is not a task.

## 1. Add retry to the HTTP client
Retry on 503 with backoff.

Keep it under 50 lines.

## 2. Remove dead code
```python
# not a heading
def unused(): ...
```

## Task 3: Write docs
"""


def test_markdown_headings_become_tasks_with_their_text(tmp_path):
    tasks = read_tasks(_write(tmp_path, "BEADS_FOR_ANALYSIS.md", BEADS_FOR_ANALYSIS))
    assert [t.title for t in tasks] == ["Add retry to the HTTP client", "Remove dead code", "Write docs"]
    assert tasks[0].description == "Retry on 503 with backoff.\n\nKeep it under 50 lines."
    assert "# not a heading" in tasks[1].description
    assert tasks[2].description == ""


def test_markdown_list_items_become_tasks():
    text = """# Backlog

- [ ] Add a subtract function
  It should take two numbers.
- [x] Set up CI
* Write the README
1. Numbered item
"""
    tasks = parse_markdown(text, "backlog.md")
    assert [(t.title, t.status) for t in tasks] == [
        ("Add a subtract function", "open"), ("Set up CI", "closed"),
        ("Write the README", "open"), ("Numbered item", "open")]
    assert tasks[0].description == "It should take two numbers."


def test_markdown_group_headings_are_not_tasks():
    text = "# Plan\n## Backend\n### Add cache\nuse redis\n### Add index\n## Frontend\n- Fix button\n"
    assert [t.title for t in parse_markdown(text, "x.md")] == ["Add cache", "Add index", "Fix button"]


def test_markdown_without_tasks_is_an_error(tmp_path):
    with pytest.raises(ImportFormatError, match="no tasks found"):
        read_tasks(_write(tmp_path, "empty.md", "just prose\n"))


def test_markdown_import_is_idempotent_and_keeps_file_order(tmp_path, store):
    path = _write(tmp_path, "BEADS_FOR_ANALYSIS.md", BEADS_FOR_ANALYSIS)
    store.import_tasks(read_tasks(path), prefix="gw", actor="t")
    assert [t.title for t in store.ready()] == ["Add retry to the HTTP client", "Remove dead code", "Write docs"]
    assert store.import_tasks(read_tasks(path), prefix="gw", actor="t").created == 0


def test_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.md"
    path.write_bytes(b"# Task \xff\xfe\n")
    with pytest.raises(ImportFormatError, match="not UTF-8"):
        read_tasks(path)


def test_task_queue_depends_on_names_other_items_of_the_file(gw, project_dir):
    (project_dir / "task_queue.json").write_text(
        '[{"id": "a", "title": "first"},\n {"id": 2, "title": "second", "depends_on": ["a"]},\n'
        ' {"title": "third", "depends_on": [2, "a"]}]')
    gw("import", "task_queue.json")
    tasks = {t["title"]: t for t in gw.json("list")}
    assert [t["title"] for t in gw.json("ready")] == ["first"]
    shown = gw.json("show", tasks["third"]["id"])[0]
    assert sorted(d["depends_on_id"] for d in shown["dependencies"]) == sorted([tasks["first"]["id"],
                                                                                 tasks["second"]["id"]])
    (project_dir / "bad.json").write_text('[{"id": 1, "title": "x"},\n {"title": "y", "depends_on": 7}]')
    result = gw("import", "bad.json", "--format", "queue", code=1)
    assert "bad.json:2: task #2: depends_on 7: no task with that id in this file" in result.stderr
