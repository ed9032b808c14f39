"""Real public `.beads/issues.jsonl` files (tests/data/beads_real, see its README): gasworks
imports them, exports them losslessly, and finds the same ready work as Beads' own rules
(tests/beads_rules.py, written from Beads' source, not from gasworks)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gasworks.beads import task_to_record
from gasworks.ingest import read_file
from gasworks.models import NON_WORK_TYPES
from gasworks.output import write_jsonl
from gasworks.store.sqlite import SQLiteStore
from tests import beads_rules
from tests.conftest import run_gasworks

DATA = Path(__file__).with_name("data") / "beads_real"
FILES = sorted(DATA.glob("*.jsonl"))


def _import(path: Path, db: Path) -> tuple[SQLiteStore, list[str]]:
    tasks, memories = read_file(path)
    store = SQLiteStore(db)
    result = store.import_tasks(tasks, prefix="gw", actor="t", memories=memories)
    return store, result.warnings


def _export(store) -> str:
    out = io.StringIO()
    write_jsonl(store.export_tasks(), out, store.memories())
    return out.getvalue()


def _expected(record: dict, beads: beads_rules.Beads) -> dict:
    """The line as gasworks should give it back: every key (a priority left out is P0), with the
    edges Beads does not store left out (but an edge to an issue not in the file, which gasworks
    keeps and Beads drops: it holds nothing back either way), labels in bd's order (sorted)."""
    kept = {(e.target, e.type) for e in beads.edges if e.source == record["id"] and e.dropped in ("", "missing")}
    expected = {"priority": 0, **record}  # bd left P0 out (omitempty); current bd and gasworks write it
    deps = [d for d in record.get("dependencies") or [] if (d["depends_on_id"], d.get("type") or "blocks") in kept]
    expected.pop("dependencies", None)
    if deps:
        expected["dependencies"] = deps
    if "labels" in expected:
        expected["labels"] = sorted(expected["labels"])
    return expected


def test_there_are_at_least_five_real_files_and_the_readme_lists_each():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert len(FILES) >= 5
    for path in FILES:
        lines = path.read_text(encoding="utf-8").count("\n")
        assert f"`{path.name}`" in readme and f"| {lines} |" in readme, path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_real_file_comes_back_field_by_field_and_a_second_export_is_byte_identical(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    beads = beads_rules.load(text)
    store, warnings = _import(path, tmp_path / "a.db")
    exported = {}
    for task in store.export_tasks():
        record = task_to_record(task)
        if "labels" in record:
            record["labels"] = sorted(record["labels"])
        exported[task.id] = record
    assert set(exported) == set(beads.issues)
    for issue_id, record in beads.issues.items():
        expected = _expected(record, beads)
        assert sorted(exported[issue_id]) == sorted(expected), issue_id  # every key, none added
        for key, value in expected.items():
            assert exported[issue_id][key] == value, (issue_id, key)
    assert store.memories() == beads.memories
    assert len(warnings) == sum(e.dropped in ("duplicate", "self", "cycle") for e in beads.edges)

    first = _export(store)
    (tmp_path / "first.jsonl").write_text(first, encoding="utf-8")
    again, _ = _import(tmp_path / "first.jsonl", tmp_path / "b.db")
    assert _export(again) == first == _export(store)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_ready_work_is_what_beads_finds_but_epics(path, tmp_path):
    """gasworks deliberately never hands out an epic (its children are the work); otherwise the
    ready set is Beads' own."""
    beads = beads_rules.load(path.read_text(encoding="utf-8"))
    store, _ = _import(path, tmp_path / "a.db")
    beads_ready = beads_rules.ready(beads, datetime.now(timezone.utc))
    epics = {i for i in beads_ready if beads.issues[i].get("issue_type") in NON_WORK_TYPES}
    assert {t.id for t in store.ready()} == beads_ready - epics
    assert beads_ready - epics, "a file with no ready work checks little"


def test_the_largest_real_file_through_the_cli(project_dir, tmp_path):
    largest = max(FILES, key=lambda p: p.stat().st_size)
    steps = [["import", str(largest)], ["export", "-o", str(tmp_path / "out.jsonl")], ["ready", "--json"]]
    results = [run_gasworks(args, project_dir) for args in steps]
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    beads = beads_rules.load(largest.read_text(encoding="utf-8"))
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["id"] for r in out if "id" in r} == set(beads.issues)
    ready = beads_rules.ready(beads, datetime.now(timezone.utc))
    assert {t["id"] for t in json.loads(results[2].stdout)} == \
           {i for i in ready if beads.issues[i].get("issue_type") not in NON_WORK_TYPES}
