"""Beads JSONL: import keeps everything, export gives it back; bad input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gasworks.beads import task_to_record
from gasworks.errors import ImportFormatError
from gasworks.ingest import read_tasks
from gasworks.models import Task

SAMPLE = Path(__file__).with_name("data") / "beads_issues.jsonl"


def _records(text: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {r["id"]: r for r in rows if r.get("_type") != "memory" and r.get("status") != "tombstone"}


def test_round_trip_loses_nothing(store):
    result = store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t")
    assert (result.created, result.updated, result.skipped) == (8, 0, 0)
    exported = {t.id: task_to_record(t) for t in store.export_tasks()}
    assert exported == _records(SAMPLE.read_text(encoding="utf-8"))


def test_imported_graph_drives_readiness_and_statuses_are_kept(store):
    store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t")
    assert [t.id for t in store.ready()] == ["bd-ready1"]
    assert store.get_task("bd-rv1").status == "review"
    assert store.get_task("bd-hk1").status == "hooked"
    assert store.blockers("bd-1ep6e") == ["bd-lhalq"]
    assert store.get_task("bd-9xq2").extra["metadata"] == {"team": "infra", "points": 3}


def test_newer_updated_at_wins_and_ties_keep_ours(store, tmp_path):
    store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t")
    ours = store.update_fields("bd-ready1", actor="t", title="edited here")
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    older = json.loads(lines[7]) | {"title": "stale edit"}
    newer = json.loads(lines[3]) | {"title": "newer edit", "updated_at": "2026-02-01T00:00:00Z"}
    same = json.loads(lines[4]) | {"title": "tie"}
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (older, newer, same)) + "\n", encoding="utf-8")
    result = store.import_tasks(read_tasks(path), prefix="gw", actor="t")
    assert (result.created, result.updated, result.skipped) == (0, 1, 2)
    assert store.get_task("bd-ready1").title == ours.title == "edited here"
    assert store.get_task("bd-9xq2").title == "newer edit"
    assert store.get_task("bd-p1n").title == "Pinned context"


def test_import_twice_changes_nothing(store):
    store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t")
    before = [task_to_record(t) for t in store.export_tasks()]
    result = store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t")
    assert (result.created, result.updated, result.skipped) == (0, 0, 8)
    assert [task_to_record(t) for t in store.export_tasks()] == before


@pytest.mark.parametrize("bad_line, message", [
    ('{"id":"x-1","title":"ok"', r"bad\.jsonl:3: not valid JSON"),
    ('{"id":"x-1"}', r"bad\.jsonl:3: field 'title' is missing"),
    ('{"id":"x-1","title":"t","priority":9}', r"bad\.jsonl:3: field 'priority' must be an integer 0-4"),
    ('{"id":"../../etc/passwd","title":"t"}', r"bad\.jsonl:3: invalid task id"),
    ('{"id":"x-1","title":"t","created_at":"yesterday"}', r"bad\.jsonl:3: field 'created_at' is not an RFC 3339"),
    ('{"id":"x-1","title":"t","dependencies":[{"type":"blocks"}]}', r"bad\.jsonl:3: a dependency has no"),
    ("<<<<<<< HEAD", r"bad\.jsonl:3: unresolved git merge conflict"),
    ("[1, 2]", r"bad\.jsonl:3: a line must hold a JSON object"),
])
def test_bad_line_is_reported_with_its_number_and_nothing_is_written(store, tmp_path, bad_line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"id":"x-0","title":"fine"}'
    path.write_text(f"{good}\n\n{bad_line}\n{good}\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match=message):
        store.import_tasks(read_tasks(path), prefix="gw", actor="t")
    assert store.list_tasks() == []


def test_failure_inside_the_store_rolls_back_the_whole_import(store):
    from gasworks.models import Dependency

    store.import_tasks([Task("x-a", "a")], prefix="gw", actor="t")
    batch = [Task("x-new", "new"), Task("x-a", "a changed", updated_at="2030-01-01T00:00:00Z",
                                        dependencies=[Dependency("x-a", "x-new", "blocks")]),
             Task("x-bad", "a priority the store refuses", priority=9)]
    with pytest.raises(Exception, match="(?i)check"):
        store.import_tasks(batch, prefix="gw", actor="t")
    assert [(t.id, t.title) for t in store.list_tasks()] == [("x-a", "a")]


def test_dry_run_writes_nothing(store):
    result = store.import_tasks(read_tasks(SAMPLE), prefix="gw", actor="t", dry_run=True)
    assert result.created == 8
    assert store.list_tasks() == []


def test_duplicate_ids_in_one_file_keep_the_newer(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(
        '{"id":"x-1","title":"new","updated_at":"2026-02-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z"}\n'
        '{"id":"x-1","title":"old","updated_at":"2026-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z"}\n',
        encoding="utf-8")
    assert [t.title for t in read_tasks(path)] == ["new"]


def test_a_jsonl_bd_wrote_is_imported_worked_by_the_fleet_and_exported_with_its_ids_and_edges(repo, tmp_path):
    """Without bd on PATH: `gasworks import .beads/issues.jsonl`, run, `gasworks export` keep the two in step."""
    import subprocess

    from gasworks import git
    from gasworks.project import init_project
    from tests import fakebd
    from tests.conftest import run_gasworks

    bd = str(fakebd.install(tmp_path / "not-on-path"))

    def make(*args: str) -> str:
        out = subprocess.run([bd, "create", "--json", *args], cwd=repo, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["id"]

    subprocess.run([bd, "init", "--prefix=demo"], cwd=repo, check=True, capture_output=True)
    epic = make("--type=epic", "--title=Ship it")
    first = make(f"--parent={epic}", "--title=First step", "--labels=area:core")
    second = make(f"--parent={epic}", f"--deps={first}", "--title=Second step")
    aside = make(f"--deps=discovered-from:{first}", "--priority=3", "--title=Found on the way")
    jsonl = repo / ".beads" / "issues.jsonl"
    written = _records(jsonl.read_text(encoding="utf-8"))
    init_project(repo)

    steps = [["import", ".beads/issues.jsonl"], ["run", "--agent", "fake", "--until-done", "--workers", "2"],
             ["export", "-o", ".beads/issues.jsonl"]]
    for args in steps:
        result = run_gasworks(args, repo)
        assert result.returncode == 0, (args, result.stdout, result.stderr)

    exported = _records(jsonl.read_text(encoding="utf-8"))
    assert set(exported) == set(written) == {epic, first, second, aside}
    for issue_id, before in written.items():
        after = exported[issue_id]
        assert [(d["depends_on_id"], d["type"]) for d in after.get("dependencies", [])] == \
               [(d["depends_on_id"], d["type"]) for d in before.get("dependencies", [])]
        assert {k: after[k] for k in ("title", "created_at", "created_by")} == \
               {k: before[k] for k in ("title", "created_at", "created_by")}
        assert after.get("labels") == before.get("labels")
        assert after["status"] == ("open" if issue_id == epic else "closed")  # epics are bookkeeping, not work
    log = git.run(["log", "main", "--format=%B"], repo).stdout
    assert [log.count(f"Task {i}.") for i in (first, second, aside)] == [1, 1, 1]
