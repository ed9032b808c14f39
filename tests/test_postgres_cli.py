"""The CLI against a PostgreSQL store: the same commands, and one clear line when the server is away."""

from __future__ import annotations

import json
import socket

from tests.conftest import run_gasworks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_init_create_claim_and_close_on_a_postgresql_store(repo, pg_url):
    env = {"GASWORKS_STORE": pg_url}
    init = run_gasworks(["init"], repo, env=env)
    assert init.returncode == 0 and "using the store postgresql://" in init.stdout
    assert not (repo / ".gasworks" / "gasworks.db").exists()
    first = run_gasworks(["create", "first", "-q", "-p", "1"], repo, env=env).stdout.strip()
    second = run_gasworks(["create", "second", "-q", "--deps", first], repo, env=env).stdout.strip()
    ready = json.loads(run_gasworks(["ready", "--json"], repo, env=env).stdout)
    assert [t["id"] for t in ready] == [first]
    claimed = run_gasworks(["update", first, "--claim", "--json"], repo, env=env)
    assert claimed.returncode == 0 and json.loads(claimed.stdout)[0]["status"] == "in_progress"
    assert run_gasworks(["close", first], repo, env=env).returncode == 0
    assert [t["id"] for t in json.loads(run_gasworks(["ready", "--json"], repo, env=env).stdout)] == [second]
    exported = run_gasworks(["export"], repo, env=env).stdout.splitlines()
    assert [json.loads(line)["id"] for line in exported] == sorted([first, second])


def test_an_unreachable_server_is_one_line_without_the_password(repo):
    url = f"postgresql://gasworks:hunter2@127.0.0.1:{free_port()}/gasworks"
    result = run_gasworks(["init"], repo, env={"GASWORKS_STORE": url})
    assert result.returncode != 0
    assert "cannot connect to the store postgresql://gasworks:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_store_url_psycopg_cannot_read_is_one_line_without_the_password(repo):
    url = f"postgresql://gasworks:hunter2@127.0.0.1:{free_port()}/gasworks?no_such_option=1"
    result = run_gasworks(["init"], repo, env={"GASWORKS_STORE": url})
    assert result.returncode != 0 and "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert "cannot connect to the store postgresql://gasworks:***@127.0.0.1" in result.stderr
    assert "no_such_option" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_store_url_of_another_kind_is_refused_naming_the_key(repo):
    result = run_gasworks(["init"], repo, env={"GASWORKS_STORE": "mysql://x@127.0.0.1/db"})
    assert result.returncode != 0 and "store" in result.stderr and "postgresql://" in result.stderr
