"""The `bd` (Beads) command line, run as a subprocess: argv lists, never a shell, with timeouts.

Task text reaches bd only as the value of a `--flag=value` argument, as a positional argument
after `--` (which ends bd's option parsing), or in a file named by `--body-file`, so a title
such as `--help` is never read as an option, and nothing ever passes through a shell.

bd reports an error with `--json` as `{"error": ...}` on stderr or (newer versions) on stdout,
otherwise as `Error: ...` on stderr. `BdCli.run` turns every failure into one TrackerError line
naming the bd command.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gasworks.errors import TrackerError
from gasworks.store.tracker import find_bd as find_bd  # where it was before
from gasworks.store.tracker import resolve_tracker as resolve_tracker

if TYPE_CHECKING:
    import subprocess

BD_TIMEOUT_SECONDS = 120.0
MAX_ARG_CHARS = 100_000  # Linux refuses one argument over 128 KiB
TRACKERS = ("auto", "gasworks", "beads")


@dataclass
class BdResult:
    """What one bd command gave back."""

    data: Any      # the parsed JSON (an object's "data" if bd wrapped it in an envelope)
    warning: str   # bd's last stderr line, for the cases where it exits 0 but did nothing


def csv_value(item: str) -> str:
    """One item of a bd list flag (--labels, --add-label: pflag reads them as CSV), quoted when it
    holds a comma, a quote or a line break, so it stays one item."""
    if any(char in item for char in ',"\r\n'):
        return '"' + item.replace('"', '""') + '"'
    return item


def capped(text: str) -> str:
    return text if len(text) <= MAX_ARG_CHARS else text[: MAX_ARG_CHARS - 1] + "\u2026"


class BdCli:
    """Runs `bd` in the repository; every call asks for JSON."""

    def __init__(self, bd_cmd: Sequence[str], cwd: Path, timeout: float = BD_TIMEOUT_SECONDS) -> None:
        self.bd_cmd = list(bd_cmd) or ["bd"]
        self.cwd = Path(cwd)
        self.timeout = timeout

    def run(self, command: Sequence[str], flags: Sequence[str] = (), args: Sequence[str] = (), *,
            actor: str = "", body: str | None = None, as_json: bool = True) -> BdResult:
        """`bd COMMAND [--json] [--actor=A] FLAGS [--body-file=F] -- ARGS`. Flags must be
        `--name=value` or bare switches; everything after `--` is a positional argument."""
        head = [*self.bd_cmd, *command, *(["--json"] if as_json else []), *([f"--actor={actor}"] if actor else [])]
        body_file = None
        try:
            if body is not None:
                body_file = _write_body(body)
                flags = [*flags, f"--body-file={body_file}"]
            argv = [*head, *flags, *(["--", *args] if args else [])]
            proc = self._spawn(argv, command, args)
        finally:
            if body_file:
                os.unlink(body_file)
        what = " ".join(["bd", *command, *args[:3]]) if all(_is_id(a) for a in args) else " ".join(["bd", *command])
        if proc.returncode != 0:
            raise TrackerError(f"`{what}` failed: {error_message(proc.stdout, proc.stderr, proc.returncode)}")
        warning = _last_line(proc.stderr)
        if not as_json:
            return BdResult(proc.stdout, warning)
        data = parse_json(proc.stdout)
        if isinstance(data, dict) and "error" in data and len(data) <= 4:  # an error reported with exit 0
            raise TrackerError(f"`{what}` failed: {_one_line(str(data['error']))}")
        return BdResult(data, warning)

    def _spawn(self, argv: list[str], command: Sequence[str], args: Sequence[str]) -> subprocess.CompletedProcess:
        import subprocess  # here: without bd, the quick commands never start a process

        name = " ".join(["bd", *command])
        try:
            return subprocess.run(argv, cwd=self.cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  encoding="utf-8", errors="replace", timeout=self.timeout)
        except FileNotFoundError:
            raise TrackerError(f"`{name}` failed: {self.bd_cmd[0]!r} was not found: install Beads (bd), set "
                               "bd_cmd to where it is, or set tracker = \"gasworks\"") from None
        except subprocess.TimeoutExpired:
            raise TrackerError(f"`{name}` did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise TrackerError(f"`{name}` could not start: {exc.strerror or exc}") from None


def _write_body(text: str) -> str:
    import tempfile

    handle, path = tempfile.mkstemp(prefix="gasworks-bd-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def _is_id(text: str) -> bool:
    return 0 < len(text) <= 100 and all(c.isalnum() or c in "-_.:" for c in text)


def _one_line(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else ""


def parse_json(text: str) -> Any:
    """bd's JSON answer; lines bd printed before it (notes, warnings) are skipped. Empty: None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _first_json(text)
    if isinstance(data, dict) and set(data) == {"schema_version", "data"}:  # BD_JSON_ENVELOPE=1
        return data["data"]
    return data


def _first_json(text: str) -> Any:
    decoder = json.JSONDecoder()
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith(("[", "{")):
            try:
                return decoder.raw_decode(text, offset + len(line) - len(stripped))[0]
            except json.JSONDecodeError:
                pass
        offset += len(line)
    raise TrackerError(f"bd answered something that is not JSON: {_one_line(text, 120)}")


def error_message(stdout: str, stderr: str, code: int) -> str:
    """bd's own words: an `{"error": ...}` object on stderr or stdout, else its last `Error:` line."""
    for text in (stderr, stdout):
        for data in _json_objects(text):
            nested = data.get("data")
            inner: dict = nested if isinstance(nested, dict) else data
            listed = inner.get("failed")
            failed = listed if isinstance(listed, list) else []
            first = failed[0] if failed and isinstance(failed[0], dict) and failed[0].get("error") else inner
            if first.get("error"):
                return _one_line(str(first["error"]))
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    chosen = (errors or lines or [f"exit code {code}"])[-1]
    return _one_line(chosen[6:].strip() if chosen.lower().startswith("error:") else chosen)


def _json_objects(text: str) -> list[dict]:
    """Every JSON object that starts a line, in order: compact ones one a line, indented ones over
    several (bd's --json errors), also after plain lines such as "Issue X not found"."""
    decoder = json.JSONDecoder()
    found = []
    for start in re.finditer(r"^[ \t]*\{", text or "", re.M):
        try:
            data, _ = decoder.raw_decode(text, start.end() - 1)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            found.append(data)
    return found
