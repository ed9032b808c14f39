"""`gasworks models`: pulling a GGUF through huggingface_hub from a server on 127.0.0.1 that speaks the
Hub's download protocol, listing what is at hand (files, endpoints, local servers), choosing the default."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gasworks.config import load_config, set_value
from gasworks.errors import ConfigError
from tests.test_llm_clients import MODEL, Reply, servers  # noqa: F401  (the fixture)

pytest.importorskip("huggingface_hub")

REPO, FILE = "Owner/Tiny-GGUF", "tiny-q4.gguf"
SPEC = f"{REPO}/{FILE}"
CONTENT = b"GGUF" + bytes(range(256)) * 2048  # 512 KiB: several chunks
COMMIT = "c0ffee" + "0" * 34


class Hub:
    """The Hub's download protocol: HEAD and GET /{repo}/resolve/{revision}/{file} with X-Repo-Commit,
    an ETag that is the file's sha256 (as for git-LFS files) and Content-Length; 404 with the Hub's
    X-Error-Code for an unknown repository. `etag` may lie; `cut_first` drops the first download
    halfway. Every request is recorded."""

    def __init__(self) -> None:
        self.files = {(REPO, FILE): CONTENT}
        self.etag = hashlib.sha256(CONTENT).hexdigest()
        self.cut_first = False
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

            def log_message(self, *_args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def downloads(self) -> int:
        return sum(1 for method, path in self.requests if method == "GET" and "/resolve/" in path)

    def answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append((h.command, h.path))
        repo, _, rest = h.path.partition("/resolve/")
        revision, _, name = rest.partition("/")
        data = self.files.get((repo.strip("/"), name.split("?")[0]))
        if data is None:
            h.send_response(404)
            h.send_header("X-Error-Code", "RepoNotFound" if "/resolve/" in h.path else "EntryNotFound")
            h.send_header("X-Error-Message", "Repository not found")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        if h.headers.get("Range"):
            start = int(h.headers["Range"].split("=")[1].split("-")[0])
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("ETag", f'"{self.etag}"')
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if not body:
            return
        if self.cut_first:
            self.cut_first = False
            h.wfile.write(data[start:len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(data[start:])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub(tmp_path: Path):
    served = Hub()
    yield served
    served.stop()


def env_for(tmp_path: Path, hub: Hub | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update({"GASWORKS_MODELS_DIR": str(tmp_path / "models"), "HF_HOME": str(tmp_path / "hf-home"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "GASWORKS_LOCAL_SERVERS": "none"})
    env.update(extra)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    return env


def gasworks(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_pull_downloads_checks_and_keeps_the_file_and_a_second_pull_reuses_it(hub, tmp_path):
    env = env_for(tmp_path, hub)
    done = gasworks(tmp_path, env, "models", "pull", SPEC)
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "models" / "Owner--Tiny-GGUF" / FILE
    assert kept.read_bytes() == CONTENT
    assert f"pulling {FILE}" in done.stderr and "commit c0ffee000000" in done.stderr
    assert f"gasworks models use {Path(FILE).stem}" in done.stdout
    assert hub.downloads() == 1
    again = gasworks(tmp_path, env, "models", "pull", SPEC, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["name"] == SPEC and hub.downloads() == 1  # asked, not fetched again
    listed = json.loads(gasworks(tmp_path, env, "models", "--json").stdout)
    assert [row["name"] for row in listed["embedded"] if row["path"] == str(kept)] == [SPEC]


def test_a_file_that_does_not_match_its_sha256_is_refused_and_deleted(hub, tmp_path):
    hub.etag = hashlib.sha256(b"another file").hexdigest()
    done = gasworks(tmp_path, env_for(tmp_path, hub), "models", "pull", SPEC)
    assert done.returncode == 1
    assert "refused and deleted" in done.stderr and "Traceback" not in done.stderr
    assert not list((tmp_path / "models").rglob("*.gguf"))


def test_a_download_cut_halfway_ends_whole_and_checked(hub, tmp_path):
    hub.cut_first = True
    done = gasworks(tmp_path, env_for(tmp_path, hub), "models", "pull", SPEC)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "Owner--Tiny-GGUF" / FILE).read_bytes() == CONTENT
    assert hub.downloads() == 2


def test_offline_mode_and_unknown_repositories_are_one_line(hub, tmp_path):
    offline = gasworks(tmp_path, env_for(tmp_path, hub, HF_HUB_OFFLINE="1"), "models", "pull", SPEC)
    assert offline.returncode == 1 and offline.stderr.startswith(f"gasworks: error: cannot pull {SPEC}: ")
    assert len(offline.stderr.strip().splitlines()) == 1 and hub.requests == []
    missing = gasworks(tmp_path, env_for(tmp_path, hub), "models", "pull", "Owner/Nothing-GGUF/x.gguf")
    assert missing.returncode == 1 and "cannot pull Owner/Nothing-GGUF/x.gguf" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = gasworks(tmp_path, env_for(tmp_path, hub), "models", "pull", "just-a-file.gguf")
    assert bad.returncode == 1 and "is not OWNER/REPO/FILE.gguf" in bad.stderr
    assert gasworks(tmp_path, env_for(tmp_path, hub), "models", "pull", SPEC).returncode == 0
    asked = len(hub.requests)
    again = gasworks(tmp_path, env_for(tmp_path, hub, HF_HUB_OFFLINE="1"), "models", "pull", SPEC)
    assert again.returncode == 0, again.stderr
    assert len(hub.requests) == asked  # offline: the kept file, nothing asked


def test_use_sets_the_default_keeping_the_file_and_refuses_what_is_not_at_hand(project_dir, tmp_path):
    env = env_for(tmp_path)
    kept = tmp_path / "models" / "Owner--Tiny-GGUF" / FILE
    kept.parent.mkdir(parents=True)
    kept.write_bytes(CONTENT)
    config = project_dir / "gasworks.toml"
    config.write_text(config.read_text() + 'embedded_model = "smollm2"  # was\nnum_workers = 3\n')
    done = gasworks(project_dir, env, "models", "use", "tiny-q4")
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert [line for line in text.splitlines() if line.startswith("embedded_model")] == [
        f'embedded_model = "{SPEC}"']  # the line replaced, not another added
    assert "# Which agent runs each task" in text and "num_workers = 3" in text  # the rest untouched
    assert load_config(project_dir).embedded_model == SPEC
    listed = json.loads(gasworks(project_dir, env, "models", "list", "--json").stdout)
    assert [row["name"] for row in listed["embedded"] if row["default"]] == [SPEC]
    refused = gasworks(project_dir, env, "models", "use", "nothing-here")
    assert refused.returncode == 1 and "pull it first" in refused.stderr
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    assert "not a GGUF model file" in gasworks(project_dir, env, "models", "use", str(not_gguf)).stderr
    assert config.read_text() == text  # nothing written by the refusals
    assert gasworks(project_dir, env, "models", "use", "smollm2").returncode == 0
    assert load_config(project_dir).embedded_model == "smollm2"


def test_use_adds_the_key_above_the_first_table_and_refuses_a_broken_file(project_dir, tmp_path):
    env = env_for(tmp_path)
    config = project_dir / "gasworks.toml"
    config.write_text('num_workers = 2\n[[endpoints]]\nurl = "http://127.0.0.1:1"\nmodel = "m"\n')
    done = gasworks(project_dir, env, "models", "use", "smollm2")
    assert done.returncode == 0, done.stderr
    assert config.read_text().startswith('num_workers = 2\nembedded_model = "smollm2"\n[[endpoints]]')
    assert "the embedded model is used only without them" in done.stderr
    config.write_text("num_workers = 0\n")
    refused = gasworks(project_dir, env, "models", "use", "smollm2")
    assert refused.returncode == 1 and "key 'num_workers'" in refused.stderr
    assert config.read_text() == "num_workers = 0\n"
    config.write_text("num_workers = 2\n")
    with pytest.raises(ConfigError, match="key 'agent'.*nothing was changed"):
        set_value(project_dir, "agent", "no-such-agent")
    assert config.read_text() == "num_workers = 2\n"


def test_the_listing_shows_endpoints_and_what_local_servers_offer(project_dir, tmp_path, servers):  # noqa: F811
    ollama, vllm, endpoint = servers(), servers(), servers()
    ollama.script("/api/tags", Reply({"models": [{"name": "qwen2.5-coder:7b"}, {"name": "llama3:8b"}]}))
    (project_dir / "gasworks.toml").write_text(
        f'endpoints = [{{url = "{endpoint.url}", kind = "openai", model = "{MODEL}"}}]\n')
    env = env_for(tmp_path, GASWORKS_LOCAL_SERVERS=f"11434={ollama.port},8000={vllm.port},1234=1")
    listed = json.loads(gasworks(project_dir, env, "models", "--json").stdout)
    assert [(s["label"], s["kind"], s["models"]) for s in listed["local_servers"]] == [
        ("Ollama", "ollama", ["qwen2.5-coder:7b", "llama3:8b"]), ("vLLM", "openai", [MODEL])]
    assert listed["endpoints"] == [{"endpoint": f"openai {endpoint.url}", "ok": True, "cause": "", "models": [MODEL]}]
    assert listed["embedded"][0]["name"] == "smollm2" and listed["embedded"][0]["default"]
    text = gasworks(project_dir, env, "models").stdout
    assert f"Ollama at {ollama.url} (ollama): qwen2.5-coder:7b, llama3:8b" in text
    assert "not used while endpoints are set" in text


def test_the_help_says_which_qwen_coder_size_fits_how_much_ram(tmp_path):
    text = gasworks(tmp_path, env_for(tmp_path), "models", "--help").stdout
    for size, ram in (("0.5B", "2 GB"), ("7B", "8 GB"), ("32B", "32 GB")):
        assert any(size in line and f"{ram} RAM" in line for line in text.splitlines()), size
