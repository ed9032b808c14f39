"""qwen-agent: gasworks's configured agent run as a Gas Town polecat.

Register it with `gt config agent set qwen-aider qwen-agent`, then `gt sling BEAD RIG --agent qwen-aider`.
gt starts it in the polecat's worktree, inside tmux, with the beacon as the last argument (ignored:
the work comes from the hook). It follows the recipe in the Gas Town notes, taken from the code of
steveyegge/gastown at a8bd79bf; none of it could be run against a real `gt` here:

1. never reads stdin, and gives every child /dev/null (gt types nudges and keys into the pane);
2. `gt prime --hook` with GT_SESSION_ID and GT_HOOK_SOURCE set, so prime skips its stdin read;
3. prints a line starting "❯ " (what gt's WaitForRuntimeReady waits for);
4. `gt heartbeat --state=working ...` every 60 s from a background thread;
5. `gt hook --json`, retried while has_work is false; the bead's attachment lines are stripped;
6. the bead goes into .current_task.txt and the agent runs as `gasworks agent-run` runs it;
7. before finishing, waits (bounded) for sling to have set the bead in_progress, so sling's
   bookkeeping cannot overwrite the idle state `gt done` sets;
8. always ends with `gt done --issue ID` (new commits) or `gt done --issue ID --status ESCALATED`
   (failure, no change, an error, SIGTERM/SIGHUP/SIGINT), after ending the agent's process group.

Options before the beacon: --agent KIND, --model NAME, --timeout SECONDS (default agent: aider).
Tuning by environment: QWEN_AGENT_HEARTBEAT_SECONDS (60), QWEN_AGENT_HOOK_WAIT_SECONDS (60),
QWEN_AGENT_SLING_WAIT_SECONDS (240), QWEN_AGENT_POLL_SECONDS (2), QWEN_AGENT_GT (gt).
Exit: 0 once `gt done` went through (either status), 1 if it failed, 2 when not run as a polecat.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gasworks import process
from gasworks.agents import render_task_file
from gasworks.agents.oneshot import RunResult, run_once
from gasworks.models import Outcome, Status, Task

NAME = "qwen-agent"
GT_TIMEOUT = 120.0
DONE_TIMEOUT = 600.0  # gt done pushes the branch
KEEP_OUT = (".claude", ".beads", ".runtime")  # Gas Town's files in the worktree: never committed by us
INSTRUCTIONS = """\
How to work:
- Work only inside this directory (a git worktree made for this task); do not touch anything outside it.
- Do not create, change or delete anything under .claude/, .beads/ or .runtime/, nor any CLAUDE*.md file.
- Make the change the task asks for, keep it small, and commit your work with a clear message.
"""
# Attachment lines gt keeps in a bead's description (internal/beads/fields.go); "mode:" and
# "convoy:" are left alone, as ordinary prose may start with them.
_METADATA = re.compile(r"\s*(attached[_-]?(molecule|formula|at|args|vars)|dispatched[_-]?by|formula[_-]?vars"
                       r"|no[_-]?merge|convoy[_-]?(id|owned)|merge[_-]?strategy)\s*:", re.IGNORECASE)
_FORMULA_VAR = re.compile(r"\s*[A-Za-z_][\w.-]*=")


def strip_metadata(description: str) -> str:
    """The description without gt's `key: value` attachment lines (formula_vars' key=value lines too)."""
    kept: list[str] = []
    in_vars = False
    for line in description.splitlines():
        if in_vars and _FORMULA_VAR.match(line):
            continue
        in_vars = False
        match = _METADATA.match(line)
        if match:
            in_vars = match.group(1).lower().replace("-", "_").replace("_", "") == "formulavars"
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def is_polecat(env: Mapping[str, str]) -> bool:
    """GT_ROLE is "polecat" in older gt, "<rig>/polecats/<name>" at a8bd79bf; BD_ACTOR is the latter."""
    role = env.get("GT_ROLE", "")
    return role == "polecat" or "/polecats/" in role or "/polecats/" in env.get("BD_ACTOR", "")


def parse_args(argv: list[str]) -> dict[str, Any]:
    """--agent, --model and --timeout (also as --name=value); all else, the beacon included, is ignored."""
    wanted = {"--agent": "agent", "--model": "model", "--timeout": "attempt_timeout"}
    found: dict[str, Any] = {}
    items = iter(argv)
    for item in items:
        flag, sep, value = item.partition("=")
        if flag in wanted:
            found[wanted[flag]] = value if sep else next(items, None)
    return {key: value for key, value in found.items() if value is not None}


@dataclass(frozen=True)
class Settings:
    heartbeat: float = 60.0
    hook_wait: float = 60.0
    sling_wait: float = 240.0
    poll: float = 2.0
    gt: str = "gt"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for name, key in (("HEARTBEAT_SECONDS", "heartbeat"), ("HOOK_WAIT_SECONDS", "hook_wait"),
                          ("SLING_WAIT_SECONDS", "sling_wait"), ("POLL_SECONDS", "poll")):
            raw = env.get(f"QWEN_AGENT_{name}", "")
            if raw:
                try:
                    values[key] = max(0.01, float(raw))
                except ValueError:
                    raise ValueError(f"QWEN_AGENT_{name} must be a number of seconds, not {raw!r}") from None
        return cls(**values, gt=env.get("QWEN_AGENT_GT") or "gt")


@dataclass(frozen=True)
class Bead:
    id: str
    title: str
    description: str
    acceptance_criteria: str
    status: str

    @classmethod
    def from_hook(cls, data: Mapping[str, Any]) -> Bead | None:
        pinned = data.get("pinned_bead") if data.get("has_work") else None
        if not isinstance(pinned, dict) or not pinned.get("id"):
            return None
        return cls(str(pinned["id"]), str(pinned.get("title") or ""), str(pinned.get("description") or ""),
                   str(pinned.get("acceptance_criteria") or ""), str(pinned.get("status") or ""))

    def task_text(self) -> str:
        task = Task(id=self.id, title=self.title, description=strip_metadata(self.description),
                    acceptance_criteria=self.acceptance_criteria)
        return render_task_file(task, INSTRUCTIONS)


class Gt:
    """The gt commands a polecat runs: argv lists, stdin from /dev/null, each bounded in time."""

    def __init__(self, program: str, say: Callable[[str], None]) -> None:
        self.program, self.say = program, say

    def call(self, args: list[str], *, timeout: float = GT_TIMEOUT,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run([self.program, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  encoding="utf-8", errors="replace", timeout=timeout,
                                  env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            self.say(f"gt {' '.join(args[:2])} did not finish within {timeout:g} s")
        except OSError as exc:
            self.say(f"cannot run {self.program!r} ({exc.strerror or exc}): is gt on PATH?")
        return None

    def prime(self) -> None:
        done = self.call(["prime", "--hook"], env={"GT_SESSION_ID": str(uuid.uuid4()), "GT_HOOK_SOURCE": "startup"})
        if done is not None and done.returncode != 0:
            self.say(f"gt prime --hook failed ({done.returncode}): {done.stderr.strip()[:200]}")

    def hook(self) -> dict[str, Any]:
        done = self.call(["hook", "--json"])
        try:
            data = json.loads(done.stdout) if done is not None and done.returncode == 0 else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def heartbeat(self, state: str, context: str) -> bool:
        done = self.call(["heartbeat", f"--state={state}", context])
        return done is not None and done.returncode == 0

    def done(self, issue: str, status: str = "") -> bool:
        args = ["done", *(["--issue", issue] if issue else []), *(["--status", status] if status else [])]
        finished = self.call(args, timeout=DONE_TIMEOUT)
        if finished is not None and finished.returncode != 0:
            self.say(f"gt {' '.join(args)} failed ({finished.returncode}): {finished.stderr.strip()[:300]}")
        return finished is not None and finished.returncode == 0


class Heartbeat(threading.Thread):
    """`gt heartbeat --state=working CONTEXT` now and then every `interval` seconds until stopped."""

    def __init__(self, gt: Gt, interval: float) -> None:
        super().__init__(name="qwen-agent-heartbeat", daemon=True)
        self.gt, self.interval = gt, interval
        self.context = f"{NAME}: starting"
        self.halt = threading.Event()

    def run(self) -> None:
        warned = False
        while not self.halt.is_set():
            if not self.gt.heartbeat("working", self.context) and not warned:
                self.gt.say("gt heartbeat failed; the witness may think this polecat is stuck")
                warned = True
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join()


class Say(Protocol):
    """How a polecat speaks: a line, or (prompt) a line that marks it ready for the next bead."""

    def __call__(self, message: str, *, prompt: bool = False) -> None: ...


class Polecat:
    """One polecat session: prime, find the bead, run the agent on it, and always `gt done`."""

    def __init__(self, argv: list[str], settings: Settings, stopping: Callable[[], bool], say: Say) -> None:
        self.overrides = parse_args(argv)
        self.settings, self.stopping, self.say = settings, stopping, say
        self.gt = Gt(settings.gt, say)
        self.heartbeat = Heartbeat(self.gt, settings.heartbeat)

    def run(self, checkout: Path) -> int:
        bead: Bead | None = None
        result: RunResult | None = None
        try:
            self.gt.prime()  # like every gt command, it also marks the session working
            self.heartbeat.start()
            self.say("ready", prompt=True)
            bead = self.wait_for_bead()
            if bead is not None and not self.stopping():
                result = self.work(checkout, bead)
        except Exception as exc:  # noqa: BLE001 - whatever happens, gt must hear `gt done`
            self.say(f"error: {type(exc).__name__}: {exc}")
        return self.finish(bead, result)

    def wait_for_bead(self) -> Bead | None:
        """The hooked bead; gt hook is asked again while has_work is false (sling's bookkeeping or
        Dolt may lag), for at most hook_wait seconds."""
        deadline = time.monotonic() + self.settings.hook_wait
        told = False
        while not self.stopping():
            bead = Bead.from_hook(self.gt.hook())
            if bead is not None:
                self.say(f"hooked bead {bead.id} ({bead.status or 'no status'})")
                return bead
            if time.monotonic() >= deadline:
                self.say(f"nothing on the hook after {self.settings.hook_wait:g} s (gt hook --json: has_work "
                         "false): reporting stuck, then escalating")
                self.heartbeat.stop()  # or its next "working" beat would hide the "stuck"
                self.gt.heartbeat("stuck", f"{NAME}: no hook")
                return None
            if not told:
                self.say(f"no work on the hook yet; asking again for up to {self.settings.hook_wait:g} s")
                told = True
            time.sleep(self.settings.poll)
        return None

    def work(self, checkout: Path, bead: Bead) -> RunResult:
        from gasworks import git
        from gasworks.config import load_config

        config = load_config(git.main_root(checkout), overrides=self.overrides, defaults={"agent": "aider"})
        self.heartbeat.context = f"{NAME}: {config.agent} on {bead.id}"
        result = run_once(checkout, bead.task_text(), config, task_id=bead.id, keep_out=KEEP_OUT,
                          stop=self.stopping, say=self.say)
        self.say(result.summary())
        return result

    def wait_for_sling(self, bead: Bead) -> None:
        """gt sling sets the bead in_progress only after it saw the "❯ " line; finishing before that
        would let its bookkeeping overwrite what gt done records. Wait for it, boundedly."""
        deadline = time.monotonic() + self.settings.sling_wait
        status = bead.status
        while status != Status.IN_PROGRESS and not self.stopping():
            if time.monotonic() >= deadline:
                self.say(f"{bead.id} is still {status or 'without a status'} after {self.settings.sling_wait:g} s; "
                         "finishing anyway")
                return
            time.sleep(self.settings.poll)
            current = Bead.from_hook(self.gt.hook())
            status = current.status if current is not None and current.id == bead.id else status

    def finish(self, bead: Bead | None, result: RunResult | None) -> int:
        self.heartbeat.context = f"{NAME}: finishing"
        issue = bead.id if bead is not None else ""
        completed = result is not None and result.outcome == Outcome.SUCCESS and not self.stopping()
        if bead is not None and not self.stopping():
            try:
                self.wait_for_sling(bead)
            except Exception as exc:  # noqa: BLE001 - gt done comes next, whatever happened
                self.say(f"error while waiting for sling: {exc}")
        self.heartbeat.stop()  # a later "working" beat would overwrite the state gt done sets
        if completed:
            if self.gt.done(issue):
                self.say(f"gt done: {issue} COMPLETED")
                return 0
            self.say("gt done refused COMPLETED; escalating instead")
        why = ("stopped by a signal" if self.stopping() else result.status if result is not None
               else "nothing on the hook" if bead is None else "the agent did not run")
        if self.gt.done(issue, "ESCALATED"):
            self.say(f"gt done: {issue or '(no bead)'} ESCALATED ({why})")
            return 0
        return 1


def _say(message: str, *, prompt: bool = False) -> None:
    """A line in the pane; after a hang-up the pane is gone, and that must not stop `gt done`."""
    try:
        print(f"❯ {NAME}: {message}" if prompt else f"{NAME}: {message}", flush=True)
    except (OSError, ValueError):
        pass


def main() -> None:
    """The console script. Never reads stdin."""
    try:
        sys.stdout.reconfigure(encoding="utf-8", errors="replace", line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass
    env = os.environ
    if not is_polecat(env):
        _say("not running as a Gas Town polecat (GT_ROLE names no polecat); register it with "
             "`gt config agent set qwen-aider qwen-agent` and start it with `gt sling BEAD RIG --agent qwen-aider`, "
             "or use `gasworks agent-run --task-file FILE` directly")
        sys.exit(2)
    try:
        settings = Settings.from_env(env)
    except ValueError as exc:
        _say(str(exc))
        settings = Settings(gt=env.get("QWEN_AGENT_GT") or "gt")
    given = env.get("GT_POLECAT_PATH", "")
    checkout = Path(given) if given and Path(given).is_dir() else Path.cwd()
    os.chdir(checkout)
    with process.stop_signals() as stopping:
        code = Polecat(sys.argv[1:], settings, stopping, _say).run(checkout)
    sys.exit(code)


if __name__ == "__main__":
    main()
