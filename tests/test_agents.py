"""gasworks.agents: the task file, Aider/command/fake launch specs, and the fake agent as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gasworks import git
from gasworks.agents import TASK_FILE, AgentContext, get_agent, render_task_file
from gasworks.agents.aider import AiderAgent
from gasworks.agents.command import CommandAgent
from gasworks.agents.fake import FakeAgent
from gasworks.config import Config
from gasworks.errors import ConfigError
from gasworks.models import Task
from gasworks.project import ensure_excludes
from gasworks.worktrees import WorktreePool

SECRET = "Make the frobnicator frobnicate; $(rm -rf /) 'quoted' \"text\""


def context(worktree: Path, root: Path, state_dir: Path, **kw) -> AgentContext:
    values = dict(task_id="gw-a1b2", worktree=worktree, task_file=worktree / TASK_FILE, slot="w1", attempt=1,
                  repo_root=root, state_dir=state_dir)
    return AgentContext(**{**values, **kw})


@pytest.fixture
def worktree(repo: Path) -> Path:
    """Slot w1 of a real pool, on branch gasworks/gw-a1b2, with the task file in place (excluded from git)."""
    ensure_excludes(repo)
    pool = WorktreePool(repo, Config(num_workers=1))
    pool.ensure("main")
    pool.prepare(pool.slots[0], "gw-a1b2", "main")
    path = pool.slots[0].path
    (path / TASK_FILE).write_text(render_task_file(Task(id="gw-a1b2", title="Frobnicate", description=SECRET)))
    return path


# -- the task file


def test_task_file_has_every_part_and_the_standing_instructions():
    task = Task(id="gw-a1b2", title="Add subtract", description="calc.py only adds",
                design="a function next to add()", acceptance_criteria="subtract(3, 1) == 2")
    text = render_task_file(task)
    assert text.startswith("Task gw-a1b2: Add subtract\n")
    assert "Description:\ncalc.py only adds" in text
    assert "Design:\na function next to add()" in text
    assert "Acceptance criteria:\nsubtract(3, 1) == 2" in text
    assert "Work only inside this directory" in text
    assert "commit your work" in text
    assert "suggested_tasks.txt" in text


def test_task_file_leaves_out_empty_sections():
    text = render_task_file(Task(id="gw-1", title="Only a title"))
    assert "Design:" not in text and "Description:" not in text and "Acceptance criteria:" not in text
    assert "suggested_tasks.txt" in text


# -- get_agent


def test_unknown_agent_lists_the_agents():
    with pytest.raises(ConfigError) as info:
        get_agent("nope", Config())
    message = str(info.value)
    assert "'nope'" in message
    assert "aider, command, fake" in message


def test_get_agent_returns_each_kind():
    assert isinstance(get_agent("aider", Config()), AiderAgent)
    assert isinstance(get_agent("fake", Config()), FakeAgent)
    assert isinstance(get_agent("command", Config(command=["x"])), CommandAgent)


def test_every_agent_the_config_accepts_is_found_by_that_name():
    from gasworks.config import AGENTS

    assert set(AGENTS) == {"builtin", "aider", "command", "fake"}
    for name in AGENTS:
        assert get_agent(name, Config(agent=name, command=["x"])).name == name


# -- Aider


def stand_in_aider(bin_dir: Path, record: Path) -> Path:
    """An executable named `aider` that records how it was started, as JSON, then exits 0."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "aider"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
argv = sys.argv[1:]
settings = argv[argv.index("--model-settings-file") + 1]
message = argv[argv.index("--message-file") + 1]
json.dump({{
    "argv": argv,
    "cwd": os.getcwd(),
    "ollama_api_base": os.environ.get("OLLAMA_API_BASE"),
    "settings_exists": os.path.isfile(settings),
    "settings": open(settings).read() if os.path.isfile(settings) else None,
    "message": open(message).read() if os.path.isfile(message) else None,
}}, open({str(record)!r}, "w"))
""")
    script.chmod(0o755)
    return script


def test_aider_prepare_writes_model_settings(tmp_path):
    aider = stand_in_aider(tmp_path / "bin", tmp_path / "record.json")
    agent = AiderAgent(Config(aider_cmd=[str(aider)], model="ollama/llama3:8b", num_ctx=4096))
    agent.prepare(tmp_path / "state")
    assert agent.settings_file == tmp_path / "state" / "aider" / "model-settings.yml"
    text = agent.settings_file.read_text()
    assert '- name: "ollama_chat/llama3:8b"' in text
    assert "num_ctx: 4096" in text


def test_aider_launch_spec(tmp_path):
    aider = stand_in_aider(tmp_path / "bin", tmp_path / "record.json")
    config = Config(aider_cmd=[str(aider), "--verbose"], model="ollama_chat/qwen2.5-coder:7b",
                    ollama_api_base="http://127.0.0.1:11500")
    agent = AiderAgent(config)
    agent.prepare(tmp_path / "state")
    spec = agent.launch(context(tmp_path / "wt", tmp_path, tmp_path / "state"))
    argv = spec.argv
    assert argv[:2] == [str(aider), "--verbose"]
    assert argv[argv.index("--model") + 1] == "ollama_chat/qwen2.5-coder:7b"
    assert argv[argv.index("--message-file") + 1] == ".current_task.txt"
    assert argv[argv.index("--model-settings-file") + 1] == str(tmp_path / "state" / "aider" / "model-settings.yml")
    for flag in ("--yes-always", "--no-check-update", "--no-pretty"):
        assert flag in argv
    assert spec.env == {"OLLAMA_API_BASE": "http://127.0.0.1:11500"}


def test_aider_launch_without_prepare_prepares(tmp_path):
    aider = stand_in_aider(tmp_path / "bin", tmp_path / "record.json")
    agent = AiderAgent(Config(aider_cmd=[str(aider)]))
    spec = agent.launch(context(tmp_path / "wt", tmp_path, tmp_path / "state"))
    settings = Path(spec.argv[spec.argv.index("--model-settings-file") + 1])
    assert settings.is_file()


def test_aider_missing_program_says_how_to_install(tmp_path):
    agent = AiderAgent(Config(aider_cmd="no-such-aider-program --flag"))
    with pytest.raises(ConfigError) as info:
        agent.prepare(tmp_path / "state")
    message = str(info.value)
    assert "'no-such-aider-program'" in message
    assert "pip install" in message
    assert not (tmp_path / "state").exists()


def test_aider_argv_really_runs_in_the_worktree(tmp_path, repo, worktree):
    record = tmp_path / "record.json"
    aider = stand_in_aider(tmp_path / "bin", record)
    agent = get_agent("aider", Config(aider_cmd=str(aider), model="ollama/qwen2.5-coder:7b", num_ctx=16384,
                                      ollama_api_base="http://127.0.0.1:11999"))
    state = repo / ".gasworks"
    agent.prepare(state)
    spec = agent.launch(context(worktree, repo, state))
    assert not any(SECRET in part or "frobnicat" in part for part in spec.argv)
    result = subprocess.run(spec.argv, cwd=worktree, env={**os.environ, **spec.env}, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    seen = json.loads(record.read_text())
    assert Path(seen["cwd"]).resolve() == worktree.resolve()
    assert seen["ollama_api_base"] == "http://127.0.0.1:11999"
    assert seen["argv"][seen["argv"].index("--model") + 1] == "ollama_chat/qwen2.5-coder:7b"
    assert seen["argv"][seen["argv"].index("--message-file") + 1] == ".current_task.txt"
    assert "--yes-always" in seen["argv"] and "--no-check-update" in seen["argv"]
    assert seen["settings_exists"] is True
    assert "num_ctx: 16384" in seen["settings"]
    assert '"ollama_chat/qwen2.5-coder:7b"' in seen["settings"]
    assert SECRET in seen["message"]  # the task reaches Aider through the file...
    assert not any("frobnicat" in part.lower() for part in seen["argv"])  # ...and never through argv


# -- command


def test_command_fills_every_placeholder(tmp_path):
    config = Config(agent="command", command=["my-agent", "--task-file", "{task_file}", "--workdir={worktree}",
                                              "{task_id}", "slot:{slot}", "{attempt}", "{repo_root}", "{{literal}}"])
    agent = get_agent("command", config)
    ctx = context(tmp_path / "wt", tmp_path / "root", tmp_path / "state", slot="w7", attempt=2)
    spec = agent.launch(ctx)
    assert spec.argv == ["my-agent", "--task-file", str(tmp_path / "wt" / TASK_FILE),
                         f"--workdir={tmp_path / 'wt'}", "gw-a1b2", "slot:w7", "2", str(tmp_path / "root"),
                         "{literal}"]
    assert spec.env == {}


def test_command_agent_without_command_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        get_agent("command", Config(agent="command"))
    assert "`command`" in str(info.value)


def test_command_agent_missing_program_fails_in_prepare(tmp_path):
    agent = get_agent("command", Config(command=["no-such-agent-program", "{task_file}"]))
    with pytest.raises(ConfigError) as info:
        agent.prepare(tmp_path)
    assert "'no-such-agent-program'" in str(info.value)


def test_command_agent_existing_program_passes_prepare(tmp_path):
    get_agent("command", Config(command=[sys.executable, "{task_file}"])).prepare(tmp_path)
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\n")
    get_agent("command", Config(command=[str(script)])).prepare(tmp_path)


# -- the fake agent, as a real process


def test_fake_launch_spec(tmp_path):
    spec = get_agent("fake", Config()).launch(context(tmp_path, tmp_path, tmp_path))
    assert spec.argv == [sys.executable, "-m", "gasworks.agents.fake", str(tmp_path / TASK_FILE)]


def run_fake(worktree: Path, task_id: str = "gw-a1b2", script: dict | str | None = None):
    if script is not None:
        block = script if isinstance(script, str) else json.dumps(script)
        (worktree / TASK_FILE).write_text(f"Task {task_id}: scripted\n\n```gasworks-fake\n{block}\n```\n")
    env = {**os.environ, "GASWORKS_TASK_ID": task_id, "GASWORKS_WORKTREE": str(worktree)}
    return subprocess.run([sys.executable, "-m", "gasworks.agents.fake", str(worktree / TASK_FILE)], cwd=worktree,
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def log(path: Path) -> list[str]:
    return git.run(["log", "--format=%s", "main..HEAD"], path).stdout.splitlines()


def test_fake_default_writes_and_commits(worktree):
    result = run_fake(worktree)
    assert result.returncode == 0, result.stderr
    assert (worktree / "fake" / "gw-a1b2.txt").read_text() == "done by the fake agent: gw-a1b2\n"
    assert log(worktree) == ["fake: gw-a1b2"]
    assert git.run(["show", "--name-only", "--format=", "HEAD"], worktree).stdout.split() == ["fake/gw-a1b2.txt"]
    assert not git.is_dirty(worktree)


def test_fake_script_write_append_suggest_exit(worktree):
    result = run_fake(worktree, script={"write": {"src/calc.py": "def sub(a, b):\n    return a - b\n"},
                                        "append": {"README.md": "more\n"},
                                        "suggest": ["Add tests for sub", "Document sub"], "exit": 3})
    assert result.returncode == 3, result.stderr
    assert (worktree / "src" / "calc.py").read_text() == "def sub(a, b):\n    return a - b\n"
    assert (worktree / "README.md").read_text() == "hello\nmore\n"
    assert (worktree / "suggested_tasks.txt").read_text() == "Add tests for sub\nDocument sub\n"
    assert not (worktree / "fake").exists()
    assert log(worktree) == ["fake: gw-a1b2"]
    assert not git.is_dirty(worktree)


def test_fake_no_commit_leaves_changes(worktree):
    result = run_fake(worktree, script={"write": {"b.txt": "b\n"}, "no_commit": True})
    assert result.returncode == 0, result.stderr
    assert (worktree / "b.txt").read_text() == "b\n"
    assert log(worktree) == []
    assert git.changed_files(worktree) == ["b.txt"]


def test_fake_refuses_a_path_outside_the_worktree(worktree):
    outside = worktree.parent / "x.txt"
    result = run_fake(worktree, script={"write": {"../x.txt": "escaped\n"}})
    assert result.returncode == 2
    assert "outside the worktree" in result.stderr
    assert not outside.exists()
    assert log(worktree) == []


def test_fake_refuses_an_absolute_path_outside(tmp_path, worktree):
    target = tmp_path / "abs.txt"
    result = run_fake(worktree, script={"append": {str(target): "escaped\n"}})
    assert result.returncode == 2
    assert not target.exists()


def test_fake_malformed_block_exits_2(worktree):
    result = run_fake(worktree, script={"write": {"a.txt": "a\n"}, "commit": True})
    assert result.returncode == 2
    assert "gasworks-fake block" in result.stderr
    assert not (worktree / "a.txt").exists()
    assert log(worktree) == []


def test_fake_invalid_json_block_exits_2(worktree):
    result = run_fake(worktree, script='{"write": ')
    assert result.returncode == 2
    assert log(worktree) == []
