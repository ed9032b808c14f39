"""Shared fixtures: real git repositories and real SQLite files in tmp dirs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gasworks import git
from gasworks.cli import cli
from gasworks.project import init_project
from gasworks.store import NewTask, Store
from gasworks.store.sqlite import SQLiteStore
from tests import fakebd


@pytest.fixture(autouse=True)
def no_local_model_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto-detection looks at no model server of this machine (tests that want one point it at
    their own servers); runs in subprocesses inherit this."""
    monkeypatch.setenv("GASWORKS_LOCAL_SERVERS", "none")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git.init_repo(path)
    (path / "README.md").write_text("hello\n", encoding="utf-8")
    git.commit_all(path, "initial")
    return path


@pytest.fixture
def project_dir(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    init_project(repo)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GASWORKS_ACTOR", "tester")
    return repo


@pytest.fixture(scope="session")
def pg_server():
    """One private PostgreSQL server for the session (tests/pg.py). Under CI a server that cannot
    start fails the run; elsewhere the PostgreSQL tests are skipped, saying why."""
    from tests.pg import PostgresUnavailable, Server

    try:
        server = Server().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL could not start: {exc}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path):
    """The store contract: every test that uses this runs on both backends."""
    if request.param == "sqlite":
        db = SQLiteStore(tmp_path / "store.db")
    else:
        from gasworks.store.postgres import PostgresStore

        db = PostgresStore(request.getfixturevalue("pg_url"))
    yield db
    db.close()


class Refused(Exception):
    """The failure `failing()` brings about in an SQL store's transaction."""


class Backend:
    """One backend of the store contract (tests/test_store_contract.py says what each part is for)."""

    def __init__(self, kind: str, opener: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind, self.opener, self.monkeypatch = kind, opener, monkeypatch
        self.opened: list[Store] = []
        self.store = self.reopen()

    def reopen(self, where: str = "here") -> Store:
        store = self.opener(where)
        self.opened.append(store)
        return store

    def elsewhere(self) -> Store:
        return self.reopen(f"host{len(self.opened)}")

    @contextlib.contextmanager
    def failing(self) -> Iterator[None]:
        """Whatever change is made inside fails with its transaction: raises Refused or TrackerError."""
        if self.kind == "beads":
            with self.monkeypatch.context() as patch:
                patch.setenv("FAKEBD_FAIL", "update")
                yield
            return
        with self.store.batch():
            yield
            raise Refused

    def make(self, title: str, **fields) -> str:
        return self.store.create_task(NewTask(title, **fields), prefix="gw", actor="tester").id

    def not_with(self, kind: str, why: str) -> None:
        """Skip on the `kind` backend, saying why the test cannot apply there."""
        if self.kind == kind:
            pytest.skip(f"not with {kind}: {why}")


@pytest.fixture(params=["sqlite", "postgres", "beads"])
def backend(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The store contract's backends: SQLite, PostgreSQL, and Beads (BeadsStore over the bd stand-in)."""
    if request.param == "sqlite":
        made = Backend("sqlite", lambda _where: SQLiteStore(tmp_path / "store.db"), monkeypatch)
    elif request.param == "postgres":
        from gasworks.store.postgres import PostgresStore

        url = request.getfixturevalue("pg_url")
        made = Backend("postgres", lambda _where: PostgresStore(url), monkeypatch)
    else:
        from gasworks.store.bd import BdCli
        from gasworks.store.beads_cli import BeadsStore

        repo = request.getfixturevalue("repo")
        bd = [str(fakebd.install(tmp_path / "bin"))]
        BdCli(bd, repo).run(["init"], ["--prefix=gw"], as_json=False)
        made = Backend("beads", lambda where: BeadsStore(tmp_path / f"mirror-{where}.db", BdCli(bd, repo)),
                       monkeypatch)
    yield made
    for store in made.opened:
        store.close()


@pytest.fixture
def make(store):
    """make("title", deps=[...], ...) -> task id, with prefix gw."""

    def _make(title: str, **fields) -> str:
        return store.create_task(NewTask(title, **fields), prefix="gw", actor="tester").id

    return _make


class Cli:
    """Runs `gasworks ARGS` in-process; `.json()` parses stdout."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, input: str | None = None):
        result = self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.output, result.stderr)
        return result

    def json(self, *args: str):
        import json

        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def gw(project_dir: Path) -> Cli:
    return Cli()


def run_gasworks(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    env = {**os.environ, "GASWORKS_ACTOR": "tester", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=kwargs.pop("timeout", 120), **kwargs)
