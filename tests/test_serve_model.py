"""The embedded model server a run starts never outlives it, however the run ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil

STARTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gasworks.llm.embedded import ModelProcess, ServeOptions

    engine = ModelProcess(ServeOptions("smollm2", parallel=1, ctx=256, threads=1), Path(sys.argv[1]) / "model.log")
    engine.start()
    (Path(sys.argv[1]) / "server.pid").write_text(str(engine.proc.pid))
    time.sleep(3600)
""")


def test_a_run_killed_with_sigkill_leaves_no_model_server(tmp_path):
    run = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], stdin=subprocess.DEVNULL)
    pid_file = tmp_path / "server.pid"
    try:
        deadline = time.monotonic() + 300
        while not pid_file.exists():
            assert run.poll() is None, "the starter died before the server was up"
            assert time.monotonic() < deadline, "the model server did not start"
            time.sleep(0.1)
        server = psutil.Process(int(pid_file.read_text()))
        assert server.is_running()
        run.kill()  # as the OOM killer or `kill -9` would: no finally, no atexit
        run.wait()
        server.wait(timeout=60)  # psutil.TimeoutExpired here: the server outlived its run
    finally:
        if run.poll() is None:
            run.kill()
        if pid_file.exists() and psutil.pid_exists(int(pid_file.read_text())):
            psutil.Process(int(pid_file.read_text())).kill()
