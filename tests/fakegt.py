"""A scripted stand-in for Gas Town's `gt`, for testing qwen-agent where no real gt can be installed.

It answers in the shapes the Gas Town notes document (steveyegge/gastown at a8bd79bf) and records
every call. State lives in $FAKEGT_DIR:

    scenario.json  written by the test: {"bead": {id, title, description, ...},
                   "no_work": N (the first N `gt hook --json` answer has_work false),
                   "hooked": M (the next M show the bead "hooked", then "in_progress"),
                   "refuse_completed": bool (`gt done` without --status fails, as with 0 commits ahead)}
    calls.jsonl    one line a call: argv, cwd, whether stdin was /dev/null, whether this fake read
                   stdin (as `gt prime --hook` does without GT_SESSION_ID), what it answered
    agents.json    what `gt config agent set NAME CMD` stored
    convoys.json   the convoys `gt sling` made (one per slung bead, as gt's auto-convoy does)

The user-facing commands (`config agent set`, `sling`, `convoy list|status`) are only checked for
shape: their words, flags and argument counts as Gas Town's cobra commands declare them, parsed the
pflag way (the parser is fakebd's), so a misspelt command or flag fails here as it would there.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakebd import BdError, parse  # noqa: E402  (the same pflag-style option parser)

STATE = Path(os.environ["FAKEGT_DIR"])
TARGET = "gasworks/polecats/toast"
PRESETS = {"claude", "gemini", "codex", "cursor", "auggie", "amp", "opencode", "copilot", "kiro"}
# Flags and argument counts from Gas Town's cobra commands (internal/cmd/sling.go, convoy.go, config.go).
SLING = {"subject": "str", "message": "str", "dry-run": "bool", "on": "str", "var": "array", "args": "str",
         "stdin": "bool", "create": "bool", "force": "bool", "account": "str", "agent": "str", "no-convoy": "bool",
         "owned": "bool", "hook-raw-bead": "bool", "no-merge": "bool", "merge": "str", "no-boot": "bool",
         "max-concurrent": "int", "json": "bool", "help": "bool"}
SLING_SHORT = {"s": "subject", "m": "message", "n": "dry-run", "a": "args", "h": "help"}
USER_COMMANDS = {  # words: (flags, short flags, fewest args, most args)
    ("sling",): (SLING, SLING_SHORT, 1, 2),
    ("convoy", "list"): ({"json": "bool", "status": "str", "all": "bool", "tree": "bool", "help": "bool"},
                         {"h": "help"}, 0, 0),
    ("convoy", "status"): ({"json": "bool", "help": "bool"}, {"h": "help"}, 0, 1),
    ("config", "agent", "set"): ({"provider": "str", "help": "bool"}, {"h": "help"}, 2, 2),
}


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


def load(name: str) -> dict:
    path = STATE / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save(name: str, data: dict) -> None:
    (STATE / name).write_text(json.dumps(data, indent=2), encoding="utf-8")


def rig_bead(bead: str) -> None:
    """sling looks the bead up with bd; here, in the .beads/issues.jsonl around the working directory."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        path = folder / ".beads" / "issues.jsonl"
        if path.exists():
            ids = {json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
            if bead not in ids:
                raise BdError(f"bead '{bead}' not found")
            return


def user_command(words: tuple[str, ...], rest: list[str]) -> int:
    spec, short, fewest, most = USER_COMMANDS[words]
    flags, args = parse(rest, spec, short)
    if flags.get("help"):
        print(f"Usage:\n  gt {' '.join(words)} [flags]\n\n(fake gt: nothing was done)")
        return 0
    if not fewest <= len(args) <= most:
        raise BdError(f"accepts between {fewest} and {most} arg(s), received {len(args)}")
    if words == ("config", "agent", "set"):
        agents = load("agents.json")
        command, *extra = args[1].split()  # gt splits on whitespace: quoting is lost
        agents[args[0]] = {"command": command, "args": extra}
        save("agents.json", agents)
        print(f"Agent '{args[0]}' set: {args[1]}")
    elif words == ("sling",):
        agent = flags.get("agent")
        if agent and agent not in PRESETS and agent not in load("agents.json"):
            raise BdError(f"unknown agent '{agent}' (set it with gt config agent set)")
        rig_bead(args[0])
        convoys = load("convoys.json")
        if not flags.get("no-convoy"):
            convoy = "hq-cv-" + hashlib.sha256(args[0].encode()).hexdigest()[:5]
            convoys[convoy] = {"tracks": [args[0]], "rig": args[1] if len(args) > 1 else ""}
            save("convoys.json", convoys)
        print(f"Slung {args[0]} to {args[1] if len(args) > 1 else 'the current agent'}"
              + (f" (agent {agent})" if agent else ""))
    else:
        convoys = load("convoys.json")
        wanted = args or sorted(convoys)
        if args and args[0] not in convoys:
            raise BdError(f"convoy '{args[0]}' not found")
        for convoy in wanted:
            print(f"{convoy}  open  tracks {', '.join(convoys[convoy]['tracks'])}")
        if not wanted:
            print("No convoys found.")
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
    words = next((w for w in USER_COMMANDS if tuple(args[:len(w)]) == w), None)
    if words is not None:
        record(entry)
        try:
            return user_command(words, args[len(words):])
        except BdError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    record(entry)
    print(f"Error: unknown command {args[:1]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
