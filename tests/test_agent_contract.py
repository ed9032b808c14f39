"""The agent contract: one suite every kind of agent passes, through the one attempt lifecycle.

What callers rely on (the dispatcher, `agent-run`, `qwen-agent`): the whole `Agent` protocol is
there; probe_targets() names the model servers it uses and healthy() follows them; an attempt
ends with an outcome judged from git; it writes nothing outside its worktree (besides git's own
store, its log folder and its state folder); a stop or the time limit ends its whole process group.

Kinds: fake (with a model endpoint to depend on), command (a POSIX shell script), builtin (against
a scripted OpenAI-compatible server on 127.0.0.1: only the model is faked), and aider's launch
contract with a stand-in for the aider program (real Aider is not installed here: it needs a model
that can edit, and brings some hundred packages).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from gasworks import git, process
from gasworks.agents import TASK_FILE, Agent, AgentContext, get_agent
from gasworks.agents.oneshot import run_once
from gasworks.attempt import AttemptRun
from gasworks.config import Config, load_config
from gasworks.models import Outcome
from gasworks.project import ensure_excludes
from tests.fleet import add, drain, make_dispatcher
from tests.test_llm_clients import MODEL, OpenAIProtocol, ScriptedServer, servers  # noqa: F401  (the fixture)

KINDS = ("fake", "command", "builtin", "aider")
HANG = "HANG"  # in a task's text: the stand-ins never finish (the builtin agent's model never answers)
LIMIT = 60.0

SHELL_AGENT = """\
set -e
cd "$2"
echo "shell agent on $(head -n 1 "$1")"
if grep -q HANG "$1"; then sleep 300; fi
mkdir -p out
echo "done by the shell agent" > out/command.txt
git add -A
git -c user.name=agent -c user.email=agent@example.invalid -c core.hooksPath=/dev/null commit -q -m "command agent"
"""
# What gasworks relies on of Aider: the task in --message-file, run from the worktree, no questions
# asked (--yes-always), and its own commit of what it changed.
AIDER_STAND_IN = """\
import subprocess, sys, time
argv = sys.argv[1:]
if "--yes-always" not in argv or "--model" not in argv:
    sys.exit(2)
text = open(argv[argv.index("--message-file") + 1], encoding="utf-8").read()
print("aider stand-in on", text.splitlines()[0], flush=True)
if "HANG" in text:
    time.sleep(300)
import os
os.makedirs("out", exist_ok=True)
open("out/aider.txt", "w").write("done by aider\\n")
subprocess.run(["git", "add", "-A"], check=True)
subprocess.run(["git", "-c", "user.name=aider", "-c", "user.email=aider@example.invalid", "-c",
                "core.hooksPath=/dev/null", "commit", "-q", "-m", "aider: out/aider.txt"], check=True)
"""


def settings(kind: str, server: ScriptedServer, bin_dir: Path) -> dict:
    """The config that points each kind at the test's model server or stand-in program."""
    endpoint = [{"url": server.url, "kind": "openai", "model": MODEL, "max_concurrency": 2}]
    bin_dir.mkdir(exist_ok=True)
    if kind == "command":
        (bin_dir / "agent.sh").write_text(SHELL_AGENT, encoding="utf-8")
        return {"agent": "command", "command": ["sh", str(bin_dir / "agent.sh"), "{task_file}", "{worktree}"]}
    if kind == "aider":
        (bin_dir / "aider.py").write_text(AIDER_STAND_IN, encoding="utf-8")
        return {"agent": "aider", "aider_cmd": [sys.executable, str(bin_dir / "aider.py")],
                "model": f"ollama_chat/{MODEL}", "ollama_api_base": server.url}
    return {"agent": kind, "endpoints": endpoint}


def task_text(kind: str, server: ScriptedServer, *, hang: bool = False) -> str:
    """A task each kind does (one new file, committed), or, with hang, never finishes."""
    if kind == "builtin":
        write = OpenAIProtocol.reply(json.dumps({"action": "write_file", "path": "out/builtin.txt",
                                                 "content": "done by the builtin agent\n"}), prompt=10, completion=5)
        finish = OpenAIProtocol.reply(json.dumps({"action": "finish", "summary": "wrote it"}), prompt=10, completion=5)
        server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("", delay=LIMIT) if hang else write, finish)
    script = {"hang": True} if hang else {"write": {"out/fake.txt": "done by the fake agent\n"}}
    block = f"\n```gasworks-fake\n{json.dumps(script)}\n```\n" if kind == "fake" else ""
    return f"Task gw-c1: write a file\n\nDescription:\nWrite one file under out/. {HANG if hang else ''}{block}"


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def server(servers) -> ScriptedServer:  # noqa: F811
    return servers()


@pytest.fixture
def config(kind, server, repo, tmp_path) -> Config:
    return load_config(repo, env={}, overrides=settings(kind, server, tmp_path / "bin"))


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def files_outside(root: Path, allowed: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file under root but those under `allowed`, with its size and modification time."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(place) for place in allowed):
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


class Worktree:
    """A linked worktree and an attempt in it, as the fleet makes them."""

    def __init__(self, repo: Path, tmp_path: Path, agent: Agent) -> None:
        ensure_excludes(repo)  # .current_task.txt is never part of the work
        self.path, self.logs, self.state = tmp_path / "w1", tmp_path / "logs", tmp_path / "state"
        git.run(["worktree", "add", "-q", "-b", "gasworks/gw-c1", str(self.path)], repo)
        self.state.mkdir()
        self.repo, self.agent = repo, agent
        agent.prepare(self.state)
        tree = git.linked_tree(repo, self.path)
        self.run = AttemptRun(task_id="gw-c1", attempt_id=1, slot_name="w1", tree=tree, branch="gasworks/gw-c1",
                              base=git.rev_parse(repo, "HEAD"), log=self.logs / "gw-c1" / "1.log")

    def start(self, text: str) -> None:
        git.write_new(self.path / TASK_FILE, text.encode("utf-8"))
        ctx = AgentContext("gw-c1", self.path, self.path / TASK_FILE, "w1", 1, self.repo, self.state)
        self.run.start(self.agent, ctx)

    def finish(self) -> tuple[Outcome, list[str]]:
        proc = self.run.proc
        assert proc is not None
        wait_for(lambda: proc.poll() is not None, "the agent to exit")
        self.run.reap()
        commits = self.run.take_work(1 << 20)
        return self.run.decide(commits), commits


@pytest.fixture
def agent(kind, config):
    made = get_agent(kind, config)
    yield made
    made.close()


def test_every_kind_declares_the_whole_protocol(kind, agent):
    wanted = {name for name in vars(Agent) if not name.startswith("_")} | set(Agent.__annotations__)
    assert {"name", "prepare", "launch", "probe_targets", "healthy", "close"} <= wanted
    missing = [name for name in wanted if not hasattr(agent, name)]
    assert not missing, f"{kind} lacks {missing}"
    assert agent.name == kind
    assert all(callable(getattr(agent, name)) for name in wanted - {"name"})


def test_probe_targets_name_its_model_servers_and_healthy_follows_them(kind, agent, server, tmp_path):
    agent.prepare(tmp_path / "state")
    targets = agent.probe_targets()
    assert all({"kind", "url", "model"} <= set(target) for target in targets)
    assert agent.healthy()
    if kind == "command":
        assert targets == []  # its model, if any, is not gasworks's to name
        return
    assert [target["url"].rstrip("/").removesuffix("/v1") for target in targets] == [server.url]
    server.stop()
    assert not agent.healthy()


def test_an_attempt_ends_with_an_outcome_judged_from_its_commits(kind, config, server, repo, tmp_path):
    """Through agent-run's path (attempt.AttemptRun in the user's checkout)."""
    base = git.rev_parse(repo, "HEAD")
    result = run_once(repo, task_text(kind, server), config, run_dir=tmp_path / "agent-run", say=lambda _: None)
    assert result.outcome == Outcome.SUCCESS, (result.note, Path(result.log).read_text())
    assert result.agent_exit == 0 and result.commits == git.commits_between(repo, base) and result.commits
    changed = git.run(["diff", "--name-only", base, "HEAD"], repo).stdout.split()
    assert changed == [f"out/{kind}.txt"]
    assert not git.is_dirty(repo)


def test_it_writes_only_inside_its_worktree(kind, agent, server, repo, tmp_path):
    """Besides the worktree: git's own store (its commits), its log folder and its state folder."""
    place = Worktree(repo, tmp_path, agent)
    allowed = [place.path, repo / ".git", place.logs, place.state]
    before = files_outside(tmp_path, allowed)
    place.start(task_text(kind, server))
    outcome, commits = place.finish()
    assert outcome == Outcome.SUCCESS and len(commits) >= 1
    assert files_outside(tmp_path, allowed) == before
    assert (place.path / "out" / f"{kind}.txt").is_file()


def test_a_stop_ends_its_whole_process_group(kind, agent, server, repo, tmp_path):
    place = Worktree(repo, tmp_path, agent)
    place.start(task_text(kind, server, hang=True))
    if kind == "builtin":  # it is waiting on its model
        wait_for(lambda: server.bodies(OpenAIProtocol.chat_path), "the agent to ask its model")
    else:  # it said what it works on
        wait_for(lambda: place.run.log.is_file() and place.run.log.read_text().strip(), "the agent's first line")
    assert place.run.proc is not None and place.run.proc.poll() is None
    place.run.stop(Outcome.INTERRUPTED)
    outcome, commits = place.finish()
    assert outcome == Outcome.INTERRUPTED and commits == []
    assert process.find_agents([place.path]) == []


def test_the_time_limit_ends_it(kind, server, repo, tmp_path):
    """Through agent-run's path: attempt_timeout ends the agent's process group, and the outcome says so."""
    limited = load_config(repo, env={}, overrides={**settings(kind, server, tmp_path / "bin"), "attempt_timeout": 1})
    result = run_once(repo, task_text(kind, server, hang=True), limited, run_dir=tmp_path / "agent-run",
                      say=lambda _: None)
    assert result.outcome == Outcome.TIMEOUT and result.commits == []
    assert process.find_agents([repo]) == []


def test_the_fleet_merges_its_work(kind, server, project_dir, tmp_path):
    """Through the dispatcher's path: claimed, run in a slot, judged, merged into the target branch."""
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1, max_attempts=1,
                                        **settings(kind, server, tmp_path / "bin"))
    try:
        task_id = add(dispatcher, "write a file", description=task_text(kind, server).split("Description:\n")[1])
        drain(dispatcher)
    finally:
        dispatcher.agent.close()
    assert dispatcher.store.get_task(task_id).status == "closed", lines
    assert [a.outcome for a in dispatcher.store.attempts(task_id)] == [Outcome.SUCCESS.value]
    assert git.run(["show", f"main:out/{kind}.txt"], project_dir).stdout.startswith("done by")
