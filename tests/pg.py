"""A private PostgreSQL server for the tests: Debian's binaries (scripts/system-deps installs
them), a fresh cluster in a temporary folder, on a free 127.0.0.1 port, run as the unprivileged
`postgres` user when the tests run as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(Exception):
    pass


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL is not installed (scripts/system-deps installs it)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`prefix` goes before every server command, e.g. ["ip", "netns", "exec", NAME] to run it in a
    network namespace of its own."""

    def __init__(self, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self.bin = _bin_dir()
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="gasworks-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.created = 0

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        user = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run([*self.prefix, *user, *argv], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def start(self) -> Server:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        init = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                         "-E", "UTF8", "--locale=C.UTF-8")
        if init.returncode:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                            str(self.dir / "log"), "-w", "-t", "60", "start")
        if started.returncode:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log[-2000:]}")
        return self

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self.created += 1
        name = f"t{os.getpid()}_{self.created}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise PostgresUnavailable(f"nothing listens on 127.0.0.1:{port}")
