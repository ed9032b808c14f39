"""`gasworks plan`: a goal becomes an epic of tasks, against a scripted model server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gasworks.store.sqlite import SQLiteStore
from tests.test_llm_clients import MODEL, OpenAIProtocol, servers  # noqa: F401  (the fixture)


def plan_reply(*tasks: dict) -> object:
    return OpenAIProtocol.reply(json.dumps({"tasks": list(tasks)}), prompt=300, completion=120)


def gasworks(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


def use_server(root: Path, url: str) -> None:
    (root / "gasworks.toml").write_text(f'endpoints = [{{url = "{url}", kind = "openai", model = "{MODEL}"}}]\n')


def test_a_goal_becomes_an_epic_with_ordered_dependent_tasks(project_dir, servers):  # noqa: F811 (the imported fixture)
    server = servers()
    use_server(project_dir, server.url)
    server.script(OpenAIProtocol.chat_path, plan_reply(
        {"title": "Write the docs", "description": "Document the API", "depends_on": [2], "files": ["docs/api.md"]},
        {"title": "Add the API", "description": "An endpoint", "depends_on": [], "priority": 1,
         "files": ["api.py"], "acceptance_criteria": "tests pass"},
        {"title": "Release", "description": "Tag it", "depends_on": [1, 2]}))
    result = gasworks(project_dir, "plan", "Ship the API", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    epic, *children = report["created"]
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    assert store.get_task(epic).issue_type == "epic" and store.get_task(epic).title == "Ship the API"
    by_title = {store.get_task(c).title: store.get_task(c) for c in children}
    assert set(by_title) == {"Write the docs", "Add the API", "Release"}
    api, docs, release = by_title["Add the API"], by_title["Write the docs"], by_title["Release"]
    assert all(t.id.startswith(f"{epic}.") for t in by_title.values())
    assert store.blockers(docs.id) == [api.id] and sorted(store.blockers(release.id)) == sorted([api.id, docs.id])
    assert "files:api.py" in api.labels and api.priority == 1 and api.acceptance_criteria == "tests pass"
    assert [t.id for t in store.ready()] == [api.id]
    sent = server.bodies(OpenAIProtocol.chat_path)[0]
    assert sent["response_format"]["type"] == "json_schema" and "Ship the API" in sent["messages"][-1]["content"]
    assert "README.md" in sent["messages"][-1]["content"]  # the repository view
    assert report["tokens"] == {"prompt": 300, "completion": 120}


def test_a_cyclic_plan_is_repaired_without_asking_again(project_dir, servers):  # noqa: F811 (the imported fixture)
    """The edge that closes the circle (2 -> 1, seen after 1 -> 2) is dropped and reported, so a plan
    never fails on a cycle (it did about half the time on the embedded model)."""
    server = servers()
    use_server(project_dir, server.url)
    server.script(OpenAIProtocol.chat_path,
                  plan_reply({"title": "A task", "description": "", "depends_on": [2]},
                             {"title": "B task", "description": "", "depends_on": [1]}))
    report = json.loads(gasworks(project_dir, "plan", "Do A and B", "--json").stdout)
    assert report["repaired"] is False and len(report["created"]) == 3
    assert report["fixes"] == ["task 2 depended on task 1, which depends on it in turn: dropped that"]
    assert [t["depends_on"] for t in report["tasks"]] == [[2], []]
    assert len(server.bodies(OpenAIProtocol.chat_path)) == 1


def test_garbage_twice_is_a_clear_error_and_nothing_is_written(project_dir, servers):  # noqa: F811 (the imported fixture)
    server = servers()
    use_server(project_dir, server.url)
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("I think you should refactor."))
    result = gasworks(project_dir, "plan", "Refactor everything")
    assert result.returncode == 1 and "unusable twice" in result.stderr and "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(gasworks(project_dir, "list", "--all", "--json").stdout) == []
    assert len(server.bodies(OpenAIProtocol.chat_path)) == 2


def test_dry_run_and_duplicates_of_open_tasks(project_dir, servers):  # noqa: F811 (the imported fixture)
    server = servers()
    use_server(project_dir, server.url)
    existing = gasworks(project_dir, "create", "Add the API!", "-q").stdout.strip()
    server.script(OpenAIProtocol.chat_path, plan_reply(
        {"title": "add the   API", "description": "", "depends_on": []},
        {"title": "Write docs", "description": "", "depends_on": [1]},
        {"title": "Write docs", "description": "again", "depends_on": []}))
    dry = json.loads(gasworks(project_dir, "plan", "API", "--dry-run", "--json").stdout)
    assert dry["created"] == [] and [t["duplicate_of"] for t in dry["tasks"]] == [existing, "", "#2"]
    assert len(json.loads(gasworks(project_dir, "list", "--json").stdout)) == 1
    report = json.loads(gasworks(project_dir, "plan", "API", "--json").stdout)
    assert len(report["created"]) == 2  # the epic and "Write docs", once
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    assert store.blockers(report["created"][1]) == [existing]


def test_too_many_tasks_or_bad_references_are_refused():
    import pytest

    from gasworks.planner import PlanError, parse_plan

    many = json.dumps({"tasks": [{"title": f"t{n}", "description": "", "depends_on": []} for n in range(5)]})
    with pytest.raises(PlanError, match="at most 3"):
        parse_plan(many, 3)
    fixes: list[str] = []
    tasks = parse_plan(json.dumps({"tasks": [{"title": "one", "depends_on": [1, 7]},
                                             {"title": "two", "depends_on": [1]}]}), 3, fixes)
    assert [t.depends_on for t in tasks] == [[], [1]]
    assert fixes == ["task 1 depended on itself: dropped that",
                     "task 1 depended on a task that does not exist: dropped that"]
    with pytest.raises(PlanError, match="not a JSON object"):
        parse_plan("[1, 2]", 3)


def test_plan_on_the_embedded_model_parses_and_creates_tasks(project_dir):
    (project_dir / "gasworks.toml").write_text("embedded_parallel = 1\n")
    result = gasworks(project_dir, "plan", "Add a command-line interface with tests and docs", "--max-tasks",
                      "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 1 <= len(report["tasks"]) <= 3 and len(report["created"]) >= 2
    assert report["tokens"]["completion"] > 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 8), max_size=4), min_size=1, max_size=8))
def test_any_plan_is_left_without_a_cycle_and_always_the_same_way(deps):
    from gasworks.planner import PlannedTask, drop_cycles

    def plan() -> list[PlannedTask]:
        return [PlannedTask(title=f"t{n}", description="", depends_on=sorted({d for d in ds if d <= len(deps)}))
                for n, ds in enumerate(deps, start=1)]

    first, second, fixes = plan(), plan(), []
    drop_cycles(first, fixes)
    drop_cycles(second, [])
    assert [t.depends_on for t in first] == [t.depends_on for t in second]
    done: set[int] = set()  # a topological order exists: repeatedly take tasks whose deps are done
    while len(done) < len(first):
        ready = {n for n, t in enumerate(first, start=1) if n not in done and set(t.depends_on) <= done - {n}}
        assert ready, f"a cycle is left: {[t.depends_on for t in first]}"
        done |= ready
    assert all(set(t.depends_on) <= set(p.depends_on) for t, p in zip(first, plan()))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.lists(st.integers(0, 9), max_size=4)),
                min_size=1, max_size=8),
       st.sets(st.sampled_from(["a", "b", "c"]), max_size=2))
def test_any_answer_with_repeated_titles_becomes_tasks_in_an_order_that_exists(items, already_open):
    """A repeat that an earlier task depended on sent the ordering round in a circle (RecursionError):
    2 of 10 plans on the embedded model failed so. Whatever the titles and numbers, the plan is
    mended and every dependency points to a task created before it."""
    from gasworks.llm import Usage
    from gasworks.planner import Plan, mark_duplicates, parse_plan, to_new_tasks

    answer = json.dumps({"tasks": [{"title": title, "depends_on": deps} for title, deps in items]})
    fixes: list[str] = []
    tasks = parse_plan(answer, 8, fixes)
    mark_duplicates(tasks, {title: f"gw-{title}" for title in already_open}, fixes)
    news = to_new_tasks(Plan("goal", tasks, Usage(), fixes=fixes))
    for position, new in enumerate(news):
        for ref, _kind in new.deps:
            assert ref.startswith("gw-") or int(ref[1:]) < position, (answer, [n.deps for n in news])
    assert len(news) == 1 + len({t.title for t in tasks if not t.duplicate_of})
