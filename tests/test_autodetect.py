"""With no endpoints configured, a coding model that a local model server offers is used (said which
and why), before the embedded model; `autodetect = false` turns that off. Against scripted servers on
127.0.0.1 standing in for Ollama and an OpenAI-compatible server (their ports moved for the test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gasworks.llm.probe import LocalServer, choose, local_servers, scan
from tests.test_llm_clients import OllamaProtocol, Reply, free_port, servers  # noqa: F401  (the fixture)
from tests.test_probe import gasworks

PLAN = {"tasks": [{"title": "Add it", "description": "d", "acceptance_criteria": "", "priority": 2,
                   "files": [], "depends_on": []}]}


def local(*models: str, label: str = "Ollama") -> LocalServer:
    return LocalServer(label, "ollama", "http://127.0.0.1:1", list(models))


def test_a_qwen_coder_comes_first_then_the_most_parameters_then_any_coder():
    best = choose([local("llama3:8b", "deepseek-coder:33b"), local("qwen2.5-coder:1.5b", "qwen2.5-coder:7b",
                                                                    "qwen2.5-coder:latest", label="vLLM")])
    assert best is not None and (best[0].label, best[1]) == ("vLLM", "qwen2.5-coder:7b")
    file_named = choose([local("/models/Qwen2.5-Coder-14B-Instruct-Q4_K_M.gguf", "qwen2.5-coder-3b")])
    assert file_named is not None and file_named[1] == "/models/Qwen2.5-Coder-14B-Instruct-Q4_K_M.gguf"
    assert choose([local("llama3:8b", "codellama:7b")])[1] == "codellama:7b"  # type: ignore[index]
    assert choose([local("llama3:8b", "mistral")]) is None and choose([]) is None


def test_the_scan_reads_each_protocols_listing_and_skips_what_is_not_a_model_server(servers):  # noqa: F811
    ollama, openai, other = servers(), servers(), servers()
    ollama.script("/api/tags", Reply({"models": [{"name": "qwen2.5-coder:7b"}]}))
    other.script("/v1/models", Reply({"error": "no"}, status=404))
    candidates = local_servers({"GASWORKS_LOCAL_SERVERS": f"11434={ollama.port},8080={other.port},"
                                                          f"1234={free_port()},8000={openai.port}"})
    assert [c[0] for c in candidates] == ["Ollama", "llama.cpp server", "LM Studio", "vLLM"]
    found = scan(candidates)
    assert [(s.label, s.kind, s.url) for s in found] == [("Ollama", "ollama", ollama.url),
                                                         ("vLLM", "openai", openai.url)]
    assert local_servers({"GASWORKS_LOCAL_SERVERS": "none"}) == ()
    assert [c[2] for c in local_servers({})] == [11434, 8080, 1234, 8000]


@pytest.fixture
def ollama(servers, monkeypatch):  # noqa: F811
    """A scripted Ollama with a coding model and another, where auto-detection looks first."""
    server = servers()
    server.script("/api/tags", Reply({"models": [{"name": "llama3:8b"}, {"name": "qwen2.5-coder:7b"}]}))
    server.script(OllamaProtocol.chat_path, OllamaProtocol.reply(json.dumps(PLAN), prompt=5, completion=9))
    monkeypatch.setenv("GASWORKS_LOCAL_SERVERS", f"11434={server.port}")
    return server


def test_a_plan_with_no_endpoints_uses_the_local_servers_coding_model_and_says_so(project_dir: Path, ollama):
    # An embedded model that cannot start: only the detected server can answer this plan.
    (project_dir / "gasworks.toml").write_text('embedded_model = "no-such-model"\n')
    done = gasworks(project_dir, "plan", "Add it")
    assert done.returncode == 0, done.stderr
    assert f"using qwen2.5-coder:7b from Ollama at {ollama.url} (a Qwen2.5-Coder, preferred)" in done.stderr
    assert "autodetect = false" in done.stderr
    assert {body["model"] for body in ollama.bodies(OllamaProtocol.chat_path)} == {"qwen2.5-coder:7b"}
    assert [t["title"] for t in json.loads(gasworks(project_dir, "list", "--json").stdout)
            if t["issue_type"] != "epic"] == ["Add it"]


def test_autodetect_false_never_asks_the_local_server(project_dir: Path, ollama):
    (project_dir / "gasworks.toml").write_text('embedded_model = "no-such-model"\nautodetect = false\n')
    done = gasworks(project_dir, "plan", "Add it")
    assert done.returncode == 1 and "embedded_model 'no-such-model'" in done.stderr
    assert ollama.requests == [] and "using qwen2.5-coder" not in done.stderr


def test_a_server_without_a_coding_model_is_named_and_the_embedded_model_is_used(project_dir: Path, ollama):
    ollama.script("/api/tags", Reply({"models": [{"name": "llama3:8b"}]}))
    (project_dir / "gasworks.toml").write_text('embedded_model = "no-such-model"\n')
    done = gasworks(project_dir, "plan", "Add it")
    assert done.returncode == 1 and "embedded_model 'no-such-model'" in done.stderr
    assert f"no coding model on the local model servers (Ollama at {ollama.url}: llama3:8b)" in done.stderr
    assert not ollama.bodies(OllamaProtocol.chat_path)


def test_the_demo_runs_on_a_detected_server(tmp_path: Path, ollama):
    ollama.script(OllamaProtocol.chat_path, OllamaProtocol.reply("not an action", prompt=5, completion=3))
    done = gasworks(tmp_path, "demo", "--dir", str(tmp_path / "demo"), "-w", "2", timeout=240)
    assert done.returncode in (0, 1), done.stderr
    assert f"Running 2 agents on qwen2.5-coder:7b at {ollama.url}" in done.stdout
    assert "using qwen2.5-coder:7b from Ollama" in done.stdout
    assert {body["model"] for body in ollama.bodies(OllamaProtocol.chat_path)} == {"qwen2.5-coder:7b"}
