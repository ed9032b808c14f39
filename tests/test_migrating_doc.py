"""docs/migrating.md, run. Each table's two columns run top to bottom, each in its own fresh repository
set up as the page says, and what they leave behind is compared. gasworks and the classic scripts are
real; the bd and gt columns run against the stand-ins tests/fakebd.py and tests/fakegt.py (the page
says so). The polecat protocol the page describes is checked against qwen-agent's recorded calls."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gasworks import git
from tests import fakebd
from tests.conftest import Cli
from tests.test_llm_clients import OpenAIProtocol, servers  # noqa: F401  (the fixture)
from tests.test_planner import plan_reply
from tests.test_polecat import Town, fake_script

DOC = Path(__file__).resolve().parent.parent / "docs" / "migrating.md"
FAKEGT = Path(__file__).with_name("fakegt.py")
STAMP = "2026-03-01T10:00:00Z"
TOOLS = ("gasworks", "py", "bd", "gt", "qwen-agent")
ID = re.compile(r"\bbd-[0-9a-z]+(?:\.\d+)*")
POLECAT_STEPS = ("gt prime --hook", "gt heartbeat", "gt hook --json", "gt done")


# -- the page ---------------------------------------------------------------------------------

@dataclass
class Table:
    header: list[str]
    rows: list[tuple[str | None, str | None]] = field(default_factory=list)  # None: a cell in words
    notes: list[str] = field(default_factory=list)  # a third column, as written

    def column(self, side: int) -> list[str]:
        return [row[side] for row in self.rows if row[side] is not None]


@dataclass
class Page:
    tables: dict[str, Table]  # by the first header cell: classic, bd, gt
    block: list[str]  # the lines of the ```sh blocks
    spans: set[str]  # every other `tool args` in the text


def code_of(cell: str) -> str | None:
    return cell[1:-1] if cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2 else None


def read_page() -> Page:
    page = Page({}, [], set())
    table: Table | None = None
    fenced = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            page.block += [line.strip()] if line.strip() else []
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if table is None:
                table = page.tables[cells[0]] = Table(cells)
            elif not set("".join(cells)) <= set("-: "):
                table.rows.append((code_of(cells[0]), code_of(cells[1])))
                table.notes.append(cells[2] if len(cells) > 2 else "")
            continue
        table = None
        page.spans |= {span for span in re.findall(r"`([^`]+)`", line)
                       if span.split()[0] in TOOLS and len(span.split()) > 1}
    return page


# -- the repositories and the columns ---------------------------------------------------------

def issue(issue_id: str, title: str, **fields) -> dict:
    return {"id": issue_id, "title": title, "description": "", "status": "open", "priority": 2,
            "issue_type": "task", "created_at": STAMP, "updated_at": STAMP, **fields}


def beads_jsonl() -> str:
    """Issues as `bd export` writes them: one object a line, dependencies inline."""
    child = {"type": "parent-child", "created_at": STAMP, "created_by": "mayor"}
    records = [
        issue("bd-a1b2", "Add a greeting", priority=1, labels=["backend"]),
        issue("bd-c3d4", "Document the greeting"),
        issue("bd-e5f6", "Ship the parser", issue_type="epic"),
        issue("bd-e5f6.1", "Write the parser", dependencies=[{"issue_id": "bd-e5f6.1", "depends_on_id": "bd-e5f6",
                                                               **child}]),
        issue("bd-e5f6.2", "Test the parser", dependencies=[
            {"issue_id": "bd-e5f6.2", "depends_on_id": "bd-e5f6", **child},
            {"issue_id": "bd-e5f6.2", "depends_on_id": "bd-e5f6.1", "type": "blocks", "created_at": STAMP,
             "created_by": "mayor"}]),
    ]
    return "".join(json.dumps(record) + "\n" for record in records)


def user_repo(path: Path) -> Path:
    """A repository as the page's users have it (task.txt, written just now, is left uncommitted)."""
    git.init_repo(path)
    (path / "README.md").write_text("hello\n")
    (path / "dispatch_config.json").write_text(json.dumps({"num_workers": 2, "branch": "main", "aider_cmd": "aider",
                                                           "model": "ollama_chat/qwen2.5-coder:7b"}))
    (path / "task_queue.json").write_text(json.dumps([{"id": 1, "title": "Add a logo", "status": "pending"},
                                                      {"id": 2, "title": "Old work", "status": "done"}]))
    (path / "BEADS_FOR_ANALYSIS.md").write_text("# Tasks\n\n- Tidy the imports\n- Add a changelog\n")
    (path / ".beads").mkdir()
    (path / ".beads" / "issues.jsonl").write_text(beads_jsonl())
    (path / "suggested_tasks.txt").write_text("Add a test for the logo\n")
    git.commit_all(path, "the setup before gasworks")
    (path / "task.txt").write_text("Task demo: write a note\n")
    return path


class Column:
    """One column of a table, run top to bottom in its own repository."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.outputs: dict[str, str] = {}

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        if words[0] == "gasworks":
            return [sys.executable, "-m", "gasworks", *words[1:]]
        if words[0] == "py":  # the Windows launcher the classic users type; this Python here
            return [sys.executable, *words[1:]]
        found = shutil.which(words[0], path=self.env["PATH"])
        assert found, f"docs/migrating.md: nothing runs {command!r}"
        return [found, *words[1:]]

    def run(self, command: str) -> str:
        argv, words = self.argv(command), shlex.split(command)
        if words[:2] in (["gasworks", "run"], ["py", "dispatch_workers.py"]) and "--until-done" not in words:
            self.outputs[command] = self.until_ctrl_c(command, argv)
            return self.outputs[command]
        done = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL, env=self.env)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, command
        self.outputs[command] = done.stdout
        return done.stdout

    def until_ctrl_c(self, command: str, argv: list[str]) -> str:
        """A dispatcher runs until Ctrl+C: give it one once nothing is ready, running or merging (seen
        twice in a row), as a user would, and check `gasworks status` saw the run meanwhile."""
        log = self.root.parent / f"{self.root.name}-run.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env)
        try:
            seen, quiet, deadline = False, 0, time.monotonic() + 180
            while quiet < 2:
                assert proc.poll() is None, f"{command} ended by itself:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{command} never drained the queue:\n{log.read_text()}"
                time.sleep(0.3)
                status = json.loads(self.gasworks("status", "--json"))
                seen = seen or status["run_pid"] == proc.pid
                busy = (status["counts"].get("ready") or status["slots"] or status["merge_queue"]
                        or status["merging"])
                quiet = 0 if busy else quiet + 1
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == 130, log.read_text()  # 130: stopped by a signal
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert seen, f"`gasworks status` never saw {command} running"
        return log.read_text()

    def gasworks(self, *args: str) -> str:
        """A look at the results (not a command of the page's)."""
        done = subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=self.root, capture_output=True,
                              text=True, timeout=120, env=self.env)
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def tasks(self) -> dict[str, str]:
        return {task["title"]: task["status"] for task in json.loads(self.gasworks("list", "--all", "--json"))}

    def merged(self) -> list[str]:
        """Task ids merged into main, oldest first."""
        subjects = git.run(["log", "--first-parent", "--reverse", "--format=%B%x00", "main"], self.root).stdout
        return re.findall(r"^Task (\S+)\.$", subjects, re.M)


@pytest.fixture
def column(tmp_path, servers):  # noqa: F811
    """column(name, tool_env={}) -> a Column in a fresh user repository; the model is a scripted server."""
    server = servers()
    server.script(OpenAIProtocol.chat_path, plan_reply(
        {"title": "Write the tokenizer", "description": "tokens", "depends_on": []},
        {"title": "Write the grammar", "description": "grammar", "depends_on": [1]}))
    base = {**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")
               and not k.startswith("GASWORKS_")},
            "GASWORKS_ACTOR": "tester", "BEADS_ACTOR": "tester", "GASWORKS_AGENT": "fake",
            "GASWORKS_RETRY_BACKOFF": "0",
            "GASWORKS_ENDPOINTS": json.dumps([{"url": server.url, "kind": "openai", "model": "planner"}])}

    def make(name: str, **tool_env: str) -> Column:
        env = {**base, **tool_env}
        env["PATH"] = os.pathsep.join([*filter(None, [tool_env.get("PATH")]), os.environ.get("PATH", "")])
        return Column(user_repo(tmp_path / name), env)

    return make


def tool_bin(folder: Path, tool: str) -> str:
    """A folder holding just the stand-in `tool` (bd or gt), for the front of PATH."""
    if tool == "bd":
        fakebd.install(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gt").write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKEGT)!r}, "
                                   "run_name='__main__')\n")
        (folder / "gt").chmod(0o755)
    return str(folder)


# -- the tests --------------------------------------------------------------------------------

def test_the_classic_scripts_do_what_gasworks_does(column):
    table = read_page().tables["classic"]
    assert table.column(1)[0] == "gasworks init --scripts"
    classic, ours = column("classic"), column("gasworks")
    classic.gasworks("init", "--scripts")  # "after `gasworks init --scripts`, the classic commands work"
    for command in table.column(0):
        assert command.startswith("py "), command
        classic.run(command)
    for command in table.column(1):
        ours.run(command)
    before, after = classic.tasks(), ours.tasks()
    assert before.items() <= after.items()  # everything the scripts did, gasworks did the same
    assert before["Add a logo"] == before["Add a test for the logo"] == before["Old work"] == "closed"
    assert {"Ship the parser", "Write the tokenizer", "Write the grammar"} <= before.keys()
    assert after["Tidy the imports"] == after["Add a changelog"] == "closed"  # the markdown list, gasworks only
    assert len(classic.merged()) == 2 and len(ours.merged()) == 4
    assert not (classic.root / "suggested_tasks.txt").read_text().strip()


def test_bd_and_gasworks_agree_row_by_row(column, tmp_path):
    table = read_page().tables["bd"]
    bd = column("bd", PATH=tool_bin(tmp_path / "bd-bin", "bd"))
    ours = column("gasworks")
    assert shutil.which("bd", path=ours.env["PATH"]) is None  # else gasworks would work through bd
    for left, right in table.rows:
        if left is not None:
            bd.run(left)
        ours.run(right)
    epics = {r["id"] for r in map(json.loads, beads_jsonl().splitlines()) if r["issue_type"] == "epic"}
    ready = [{task["id"] for task in json.loads(side.outputs[f"{tool} ready --json"])}
             for side, tool in ((bd, "bd"), (ours, "gasworks"))]
    assert ready[0] - epics == ready[1] and epics <= ready[0]  # the one difference the page states
    trees = [set(ID.findall(side.outputs[f"{tool} dep tree bd-c3d4"]))
             for side, tool in ((bd, "bd"), (ours, "gasworks"))]
    assert trees[0] == trees[1] == {"bd-c3d4", "bd-a1b2"}
    (theirs, _), (mine, ids) = (exported(side.root / "issues.jsonl") for side in (bd, ours))
    assert theirs == mine
    assert mine["Add a farewell"] == ("open", 1, frozenset({("Add a greeting", "blocks")}))
    assert mine["Add a greeting"][0] == "open"  # claimed, closed, reopened
    originals = {r["title"]: r["id"] for r in map(json.loads, beads_jsonl().splitlines())}
    assert {title: ids[title] for title in originals} == originals  # Beads's ids kept


def exported(path: Path) -> tuple[dict[str, tuple], dict[str, str]]:
    """An export by title: (status, priority, dependencies by title and type), and the ids."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    titles = {r["id"]: r["title"] for r in records}
    return ({r["title"]: (r["status"], r["priority"], frozenset(
        (titles[d["depends_on_id"]], d["type"]) for d in r.get("dependencies", []))) for r in records},
        {r["title"]: r["id"] for r in records})


def test_gas_town_habits_and_registering_qwen_agent(column, tmp_path):
    page = read_page()
    table = page.tables["gt"]
    state = tmp_path / "gt-state"
    state.mkdir()
    town = column("gt", PATH=tool_bin(tmp_path / "gt-bin", "gt"), FAKEGT_DIR=str(state))
    ours = column("gasworks")
    for command in [*table.column(0), *page.block]:
        assert command.startswith("gt "), command
        town.run(command)
    calls = [json.loads(line)["argv"] for line in (state / "calls.jsonl").read_text().splitlines()]
    assert calls == [shlex.split(command)[1:] for command in [*table.column(0), *page.block]]
    assert json.loads((state / "agents.json").read_text())["qwen-aider"]["command"] == "qwen-agent"
    for command in table.column(1):
        if command.startswith("gasworks agent-run"):  # it wants a clean checkout but for the task file
            git.run(["add", "gasworks.toml"], ours.root)
            git.run(["commit", "-q", "-m", "gasworks config"], ours.root)
            assert git.changed_files(ours.root) == ["task.txt"]
        ours.run(command)
    merged = ours.merged()
    assert merged[0] == "bd-c3d4" and len(merged) == 4  # slung first; with one worker, the first to land
    convoy = ours.outputs["gasworks convoy status bd-e5f6"]
    assert "bd-e5f6.1" in convoy and "bd-e5f6.2" in convoy


def test_the_polecat_protocol_the_page_describes_is_what_qwen_agent_does(tmp_path):
    steps = {span for span in read_page().spans if span.startswith("gt ")}
    assert steps == set(POLECAT_STEPS)
    worktree = tmp_path / "polecat"
    git.init_repo(worktree)
    (worktree / "README.md").write_text("hello\n")
    git.commit_all(worktree, "initial")
    town = Town(tmp_path, worktree)
    town.bead(fake_script({"write": {"note.txt": "a note\n"}}))
    run = town.run()
    assert run.code == 0, run.stdout
    calls = [call["argv"] for call in run.calls]
    for step in POLECAT_STEPS:
        words = shlex.split(step)[1:]
        assert any(call[:len(words)] == words for call in calls), f"qwen-agent never ran `{step}`: {calls}"
    assert calls[-1][0] == "done"


def test_every_command_on_the_page_is_run_by_these_tests():
    """Table cells and sh lines run in the tests above; a command in the text must be one of them (or
    a prefix of one), or one of the polecat's steps, checked against qwen-agent's calls."""
    page = read_page()
    assert set(page.tables) == {"classic", "bd", "gt", "bd command"}
    commands = [shlex.split(c) for t in page.tables.values() for c in t.column(0) + t.column(1)] + \
        [shlex.split(line) for line in page.block]
    assert len(commands) >= 40
    for span in page.spans - set(POLECAT_STEPS):
        words = shlex.split(span)
        assert any(command[:len(words)] == words for command in commands), f"nothing runs `{span}`"


def test_the_bd_command_table_says_what_gasworks_has():
    """Each bd command has a verdict. "same" names the gasworks command, which exists; the flags its
    verdict names are in that command's --help, and those after "no" are not."""
    table = read_page().tables["bd command"]
    assert len(table.rows) >= 25
    for (theirs, ours), verdict in zip(table.rows, table.notes):
        assert theirs and theirs.startswith("bd "), theirs
        assert verdict.startswith(("same", "not supported")), verdict
        if verdict.startswith("not supported"):
            assert ours is None, theirs
            continue
        assert ours is not None and ours.split()[1:] == theirs.split()[1:], (theirs, ours)
        result = Cli()(*ours.split()[1:], "--help")
        has, _, lacks = verdict.partition("no `")
        for flags, present in ((has, True), ("`" + lacks if lacks else "", False)):
            for flag in re.findall(r"`(-[-\w]*)", flags):
                found = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.stdout) is not None
                assert found == present, f"{ours}: {flag} {'missing from' if present else 'is in'} its --help"
