"""A scripted stand-in for Gas Town's `gt`, for testing qwen-agent where no real gt can be installed.

It answers in the shapes the Gas Town notes document (steveyegge/gastown at a8bd79bf) and records
every call. State lives in $FAKEGT_DIR:

    scenario.json  written by the test: {"bead": {id, title, description, ...},
                   "no_work": N (the first N `gt hook --json` answer has_work false),
                   "hooked": M (the next M show the bead "hooked", then "in_progress"),
                   "refuse_completed": bool (`gt done` without --status fails, as with 0 commits ahead)}
    calls.jsonl    one line a call: argv, cwd, whether stdin was /dev/null, whether this fake read
                   stdin (as `gt prime --hook` does without GT_SESSION_ID), what it answered
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

STATE = Path(os.environ["FAKEGT_DIR"])
TARGET = "gasworks/polecats/toast"


def stdin_is_devnull() -> bool:
    try:
        mine, null = os.fstat(0), os.stat(os.devnull)
    except OSError:
        return True  # closed
    return stat.S_ISCHR(mine.st_mode) and (mine.st_dev, mine.st_ino) == (null.st_dev, null.st_ino)


def record(entry: dict) -> None:
    line = json.dumps(entry) + "\n"
    fd = os.open(STATE / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))  # one write: lines from concurrent calls never interleave
    finally:
        os.close(fd)


def scenario() -> dict:
    path = STATE / "scenario.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def hook(entry: dict) -> int:
    counter = STATE / "hook_count"
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    plan = scenario()
    bead = plan.get("bead")
    if bead is None or count < plan.get("no_work", 0):
        answer = {"target": TARGET, "role": "polecat", "has_work": False, "is_wisp": False,
                  "next_action": "Nothing on hook - check mail or wait for work"}
    else:
        status = "hooked" if count < plan.get("no_work", 0) + plan.get("hooked", 0) else "in_progress"
        pinned = {"id": bead["id"], "title": bead.get("title", ""), "description": bead.get("description", ""),
                  "status": status, "priority": 2, "issue_type": "task", "assignee": TARGET,
                  "acceptance_criteria": bead.get("acceptance_criteria", "")}
        answer = {"target": TARGET, "role": "polecat", "agent_bead_id": "gw-gasworks-polecat-toast",
                  "has_work": True, "pinned_bead": pinned, "attached_molecule": "gw-wisp-1",
                  "attached_formula": "mol-polecat-work", "is_wisp": False,
                  "next_action": "Continue working on the hooked bead"}
        entry["status"] = status
    entry["has_work"] = answer["has_work"]
    record(entry)
    print(json.dumps(answer, indent=2))
    return 0


def done(entry: dict, args: list[str]) -> int:
    status = args[args.index("--status") + 1].upper() if "--status" in args else "COMPLETED"
    record(entry)
    if status not in ("COMPLETED", "ESCALATED", "DEFERRED"):
        print(f"Error: invalid exit status '{status}': must be COMPLETED, ESCALATED, or DEFERRED", file=sys.stderr)
        return 1
    if status == "COMPLETED" and scenario().get("refuse_completed"):
        print("Error: branch 'polecat/toast' has 0 commits ahead of origin/main; nothing to merge", file=sys.stderr)
        return 1
    print(f"→ Signaling {status}" if status != "COMPLETED" else "✓ Work submitted to merge queue")
    return 0


def main() -> int:
    args = sys.argv[1:]
    entry = {"argv": args, "cwd": os.getcwd(), "stdin_devnull": stdin_is_devnull(), "read_stdin": False,
             "env": {k: os.environ.get(k, "") for k in ("GT_SESSION_ID", "GT_HOOK_SOURCE", "GT_SESSION")}}
    if args[:1] == ["prime"]:
        if "--hook" in args and not os.environ.get("GT_SESSION_ID"):
            entry["read_stdin"] = True  # the real prime waits for Claude's hook JSON here
            sys.stdin.read()
        record(entry)
        print("# Polecat context\n\nAUTONOMOUS WORK MODE\n")
        return 0
    if args[:2] == ["hook", "--json"]:
        return hook(entry)
    if args[:1] == ["heartbeat"]:
        record(entry)
        if not os.environ.get("GT_SESSION"):
            print("Error: GT_SESSION not set (not running in a Gas Town session)", file=sys.stderr)
            return 1
        state = next((a.split("=", 1)[1] for a in args if a.startswith("--state=")), "working")
        print(f"Heartbeat updated: state={state}")
        return 0
    if args[:1] == ["done"]:
        return done(entry, args)
    record(entry)
    print(f"Error: unknown command {args[:1]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
