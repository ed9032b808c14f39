"""gasworks's own log, through the standard `logging` module: `--verbose`/`--debug` on stderr, and a
file per `gasworks run` under the state folder.

Nothing happens at import. The quick commands never import `logging` (it costs start-up time):
`debug()` logs only once something has imported and configured it, which `configure()` does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOGGER = "gasworks"
RUN_LOGGER = f"{LOGGER}.run"  # what `gasworks run` shows on the terminal: logged to its file, not again to stderr
RUN_LOGS_DIR = "run-logs"  # in .gasworks/: one file per `gasworks run`
KEEP_RUN_LOGS = 20         # the newest run logs kept; older ones are removed when a run starts
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: int) -> None:
    """Log gasworks's messages of `level` and above to stderr (`--verbose`: INFO, `--debug`: DEBUG)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(lambda record: record.name != RUN_LOGGER)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.level or logging.WARNING))


def debug(message: str, *args: Any) -> None:
    """A debug message, from modules on the quick path: dropped at no cost unless logging is set up."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(LOGGER).debug(message, *args)


def start_run_log(state_dir: Path, *, debug_level: bool = False) -> Path:
    """A log file for this run (`.gasworks/run-logs/run-<UTC time>-<pid>.log`), getting every
    gasworks message of INFO and above (DEBUG with debug_level); the oldest beyond KEEP_RUN_LOGS
    are removed. Returns its path."""
    import logging

    folder = state_dir / RUN_LOGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("run-*.log"))[:-KEEP_RUN_LOGS + 1 or None]:
        old.unlink(missing_ok=True)
    path = folder / f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    level = logging.DEBUG if debug_level else logging.INFO
    handler.setLevel(level)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(min(level, logger.level or logging.WARNING))
    return path


def teeing(say: Callable[[str], None]) -> Callable[[str], None]:
    """`say`, each line also logged at INFO (so the run log has what the terminal showed)."""
    import logging

    logger = logging.getLogger(RUN_LOGGER)

    def both(line: str) -> None:
        logger.info(line)
        say(line)
    return both



def crashed() -> None:
    """Log the exception being handled, with its traceback (the run log keeps what ended a run)."""
    import logging

    logging.getLogger(RUN_LOGGER).exception("gasworks run ended by an error")
