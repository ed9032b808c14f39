"""A host that vanishes without closing its store connection (power loss, a cut cable) must not keep
the refinery lock for hours. Everything runs in a network namespace of its own: a PostgreSQL server
on its 127.0.0.1, host A holding the lock over TCP; then the namespace's loopback goes down, so no
packet of A's connection, not even a FIN or RST, gets through any more, as when a machine loses
power. Host B asks for the lock over the server's Unix socket, which the link does not touch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from gasworks.store.postgres import PostgresStore
from tests.pg import PostgresUnavailable, Server

HOLDER = """
import sys, time
from gasworks.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], keepalive=float(sys.argv[2]))
print(store.take_lock("refinery", "host-a", ttl=60), flush=True)
time.sleep(600)
"""
TAKER = """
import sys, time
from gasworks.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1])
while True:
    taken, previous = store.take_lock("refinery", "host-b", ttl=60)
    if taken:
        print("taken from", previous, flush=True)
        break
    time.sleep(0.2)
"""


def namespace_or_skip() -> str:
    missing = [tool for tool in ("ip", "runuser") if shutil.which(tool) is None]
    reason = (f"needs {', '.join(missing)} (scripts/system-deps installs iproute2)" if missing
              else "needs root for `ip netns`" if os.geteuid() != 0 else "")
    name = f"gasworks-{os.getpid()}"
    if not reason:
        made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        reason = f"`ip netns add` failed: {made.stderr.strip()}" if made.returncode else ""
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return name


@pytest.fixture
def namespace():
    name = namespace_or_skip()
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_namespace(name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


@pytest.mark.parametrize("keepalive, let_go", [(2.0, True), (0.0, False)], ids=["probed", "server-default"])
def test_a_vanished_host_lets_go_of_the_refinery_lock(namespace, keepalive, let_go):
    """With probes every couple of seconds the server drops A and B takes over in seconds; with the
    server's own default (two hours before the first probe) B is still waiting 30 s later."""
    try:
        server = Server(prefix=tuple(in_namespace(namespace))).start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc)) if not os.environ.get("CI") else pytest.fail(str(exc))
    holder = subprocess.Popen(in_namespace(namespace, sys.executable, "-c", HOLDER, server.url, str(keepalive)),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "(True, '')"
        subprocess.run(in_namespace(namespace, "ip", "link", "set", "lo", "down"), check=True)
        over_socket = f"postgresql://postgres@/postgres?host={server.dir}&port={server.port}"
        try:
            taken = subprocess.run(in_namespace(namespace, sys.executable, "-c", TAKER, over_socket),
                                   capture_output=True, text=True, timeout=30)
            assert let_go, f"the lock was let go with the server's default keepalive: {taken.stdout}"
            assert taken.stdout.strip() == "taken from host-a", taken.stderr
        except subprocess.TimeoutExpired:
            assert not let_go, "host A's lock was still held 30 s after it vanished"
    finally:
        holder.kill()
        holder.wait()
        server.stop()


def test_the_store_asks_the_server_to_probe_its_connection(pg_url):
    """What the test above relies on, on the suite's own server: the session settings hold."""
    names = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")

    def settings(store: PostgresStore) -> list[str]:
        with store._tx() as db:
            return [db.execute(f"SHOW {name}").fetchone()[0] for name in names]

    default, off = PostgresStore(pg_url), PostgresStore(pg_url, keepalive=0)
    try:
        assert settings(default) == ["30", "10", "3", "60000"]
        assert settings(off)[0] in ("0", "7200")  # the server's own: the kernel's, two hours on Linux
    finally:
        default.close()
        off.close()
