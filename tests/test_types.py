"""The type checker runs over the package as part of the tests (so in CI), and finds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_type_errors_in_the_package():
    pytest.importorskip("mypy", reason="the test extra installs mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_caller_typed_against_a_store_role_cannot_use_more_than_the_role(tmp_path: Path):
    """The store's roles are real seams: a page typed against the read-only StoreView that tries to
    claim a task is a type error, and so is a caller that probes for a method no role declares."""
    pytest.importorskip("mypy", reason="the test extra installs mypy")
    caller = tmp_path / "caller.py"
    caller.write_text("from gasworks.store import Store, StoreView\n\n\n"
                      "def page(store: StoreView) -> None:\n"
                      "    store.claim_next('gasworks:w1', lease_seconds=60)\n\n\n"
                      "def run(store: Store) -> None:\n"
                      "    store.reconcile('gasworks:')\n"
                      "    store.sync_everything()\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", str(caller)], cwd=tmp_path,
                          env={**os.environ, "MYPYPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, done.stdout + done.stderr
    assert '"StoreView" has no attribute "claim_next"' in errors[0]
    assert '"Store" has no attribute "sync_everything"' in errors[1]
