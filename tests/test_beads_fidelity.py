"""Beads' own rules on what a file means: what `bd ready` leaves out, memories, one edge per pair,
the waits-for gate as bd writes it, and cycles (issue 19, items 1-5)."""

from __future__ import annotations

import json
from pathlib import Path

from gasworks.beads import task_from_record
from gasworks.ingest import read_tasks

T0 = "2026-01-01T00:00:00Z"


def _import(store, *records: dict):
    tasks = [task_from_record({"created_at": T0, "updated_at": T0, **r}) for r in records]
    result = store.import_tasks(tasks, prefix="gw", actor="t")
    return result


def _ready(store) -> set[str]:
    return {t.id for t in store.ready()}


def _write(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_pinned_and_ephemeral_flags_and_a_future_defer_keep_work_out_of_ready(store):
    _import(store,
            {"id": "x-plain", "title": "plain"},
            {"id": "x-pinned", "title": "pinned flag, open status", "pinned": True},
            {"id": "x-wisp", "title": "ephemeral", "ephemeral": True},
            {"id": "x-old-wisp", "title": "ephemeral, by its pre-v0.38 name", "wisp": True},
            {"id": "x-no-history", "title": "kept with the wisps too", "no_history": True},
            {"id": "x-later", "title": "deferred to the far future", "defer_until": "2999-01-01T00:00:00Z"},
            {"id": "x-past", "title": "deferred until a day gone by", "defer_until": "2000-01-01T00:00:00+02:00"},
            {"id": "x-later.1", "title": "child of a deferred parent",
             "dependencies": [{"depends_on_id": "x-later", "type": "parent-child"}]},
            {"id": "x-falsy", "title": "flags present but false", "pinned": False, "ephemeral": False})
    assert _ready(store) == {"x-plain", "x-past", "x-falsy"}
    assert store.counts()["ready"] == 3 and store.counts()["waiting"] == 2  # the deferred ones wait
    assert store.claim_next("w1", lease_seconds=60, now=1000.0).id in {"x-plain", "x-past", "x-falsy"}


def test_pinned_and_ephemeral_tasks_still_block_what_waits_on_them(store):
    _import(store,
            {"id": "x-wisp", "title": "ephemeral", "ephemeral": True},
            {"id": "x-after", "title": "waits on the wisp", "dependencies": [{"depends_on_id": "x-wisp"}]})
    assert _ready(store) == set()


def test_memories_are_kept_on_import_and_written_back_after_the_issues_by_key(gw, tmp_path):
    source = _write(tmp_path / "issues.jsonl",
                    {"_type": "memory", "key": "zebra", "value": "last by key"},
                    {"_type": "issue", "id": "gw-a1", "title": "a task", "status": "open", "priority": 2,
                     "issue_type": "task", "created_at": T0, "updated_at": T0},
                    {"_type": "memory", "key": "aardvark", "value": "first by key"},
                    {"_type": "memory", "key": "empty", "value": ""})
    gw("import", str(source))
    gw("export", "-o", str(tmp_path / "out.jsonl"))
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line.get("id") for line in lines] == ["gw-a1", None, None]
    assert lines[1:] == [{"_type": "memory", "key": "aardvark", "value": "first by key"},
                         {"_type": "memory", "key": "zebra", "value": "last by key"}]


def test_a_line_without_a_priority_is_p0_as_bd_wrote_it(store, tmp_path):
    """Older bd left `priority` out when it was 0 (omitempty); bd's import reads it back as 0."""
    source = _write(tmp_path / "issues.jsonl", {"id": "x-p0", "title": "urgent", "created_at": T0, "updated_at": T0})
    store.import_tasks(read_tasks(source), prefix="gw", actor="t")
    assert store.get_task("x-p0").priority == 0


def test_the_first_edge_to_a_target_is_the_one_kept(store):
    result = _import(store,
                     {"id": "x-other", "title": "still open"},
                     {"id": "x-a", "title": "related first, then blocks",
                      "dependencies": [{"depends_on_id": "x-other", "type": "related"},
                                       {"depends_on_id": "x-other", "type": "blocks"}]})
    assert [(d.depends_on_id, d.type) for d in store.get_task("x-a").dependencies] == [("x-other", "related")]
    assert _ready(store) == {"x-other", "x-a"}
    assert result.warnings == ["skipped dependency x-a -> x-other (blocks): x-a already has an edge to x-other"]


def test_a_waits_for_gate_written_as_a_json_string_is_read(store):
    _import(store,
            {"id": "x-spawner", "title": "spawner", "issue_type": "epic"},
            {"id": "x-spawner.1", "title": "done child", "status": "closed", "closed_at": T0,
             "dependencies": [{"depends_on_id": "x-spawner", "type": "parent-child"}]},
            {"id": "x-spawner.2", "title": "open child",
             "dependencies": [{"depends_on_id": "x-spawner", "type": "parent-child"}]},
            {"id": "x-any", "title": "any child will do",
             "dependencies": [{"depends_on_id": "x-spawner", "type": "waits-for",
                               "metadata": "{\"gate\":\"any-children\"}"}]},
            {"id": "x-all", "title": "all children, the default",
             "dependencies": [{"depends_on_id": "x-spawner", "type": "waits-for", "metadata": "{}"}]},
            {"id": "x-junk", "title": "unreadable metadata: the default",
             "dependencies": [{"depends_on_id": "x-spawner", "type": "waits-for", "metadata": "{not json"}]})
    assert _ready(store) == {"x-spawner.2", "x-any"}
    exported = {t.id: t for t in store.export_tasks()}
    assert exported["x-any"].dependencies[0].extra["metadata"] == "{\"gate\":\"any-children\"}"


def test_a_cycle_through_a_parent_child_edge_is_imported(store):
    """An epic that waits on its own child: Beads checks cycles over blocking edges only."""
    result = _import(store,
                     {"id": "x-epic", "title": "epic", "issue_type": "epic",
                      "dependencies": [{"depends_on_id": "x-epic.1", "type": "blocks"}]},
                     {"id": "x-epic.1", "title": "child",
                      "dependencies": [{"depends_on_id": "x-epic", "type": "parent-child"}]})
    assert result.created == 2 and result.warnings == []
    assert [d.type for d in store.get_task("x-epic").dependencies] == ["blocks"]
    assert store.is_blocked("x-epic") and store.is_blocked("x-epic.1")  # as Beads computes it


def test_an_edge_closing_a_blocking_cycle_is_skipped_with_a_warning_and_the_import_goes_on(gw, tmp_path):
    source = _write(tmp_path / "issues.jsonl",
                    {"id": "gw-a", "title": "a", "created_at": T0, "updated_at": T0,
                     "dependencies": [{"depends_on_id": "gw-b", "type": "blocks"}]},
                    {"id": "gw-b", "title": "b", "created_at": T0, "updated_at": T0,
                     "dependencies": [{"depends_on_id": "gw-c", "type": "conditional-blocks"}]},
                    {"id": "gw-c", "title": "c", "created_at": T0, "updated_at": T0,
                     "dependencies": [{"depends_on_id": "gw-a", "type": "blocks"},
                                      {"depends_on_id": "gw-c", "type": "related"}]})
    result = gw("import", str(source))
    assert "warning: skipped dependency gw-c -> gw-a (blocks): it would close a cycle" in result.stderr
    assert "warning: skipped dependency gw-c -> gw-c (related): a task cannot depend on itself" in result.stderr
    assert [t["id"] for t in gw.json("ready")] == ["gw-c"]
    assert len(read_tasks(source)) == 3
