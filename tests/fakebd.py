"""A scripted stand-in for the Beads CLI (`bd`), for tests on machines without it.

It keeps issues in `.beads/issues.jsonl` of the repository around the working directory (one
issue per line, sorted by id, keys in bd's order, empty fields left out, as bd writes it) and
answers the subcommands gasworks uses with the JSON shapes, flags, exit codes and error JSON the
real bd uses (checked against its source): arrays from show/update/close/ready/list, objects (with
"schema_version": 1) from create and dep add, `ready --claim` and `update --claim` as one
compare-and-set, hash ids with the repository's prefix and `.N` children.

Options are parsed the way bd's (cobra/pflag) are: `--name=value`, `--name value`, `-x value`,
bare switches, list flags read as CSV, and `--` ends the options; `--help` anywhere before `--`
prints usage and does nothing else, an unknown flag is an error. So a task title passed where bd
would read it as an option shows up as a failure here too.

Test knobs (environment): FAKEBD_LOG (append every argv as a JSON line), FAKEBD_FAIL=<command>
(that command fails), FAKEBD_ERRORS_ON_STDOUT=1 (error JSON on stdout, as newer bd does for some
commands), FAKEBD_STEAL=<id,...> (someone else claims those issues just before a claim),
FAKEBD_NO_CLAIM=1 (a bd without --claim), FAKEBD_NO_SYNC=1 (a bd without `sync`).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ORDER = ("id", "title", "description", "design", "acceptance_criteria", "notes", "status", "priority", "issue_type",
         "assignee", "created_at", "created_by", "updated_at", "started_at", "closed_at", "close_reason", "labels",
         "dependencies", "comments")
ALWAYS = {"id", "title", "status", "priority", "issue_type", "created_at", "updated_at"}
STATUSES = ("open", "in_progress", "blocked", "deferred", "closed", "pinned", "hooked")
TYPES = ("bug", "feature", "task", "epic", "chore", "decision", "spike", "story", "milestone")
NOT_READY_TYPES = {"merge-request", "gate", "molecule", "message", "agent", "role", "rig"}
DONE = {"closed", "pinned"}
GLOBAL = {"json": "bool", "actor": "str", "help": "bool", "quiet": "bool", "no-daemon": "bool"}
GLOBAL_SHORT = {"h": "help", "q": "quiet"}
ISSUE_FLAGS = {"title": "str", "description": "str", "body-file": "str", "design": "str", "acceptance": "str",
               "notes": "str", "priority": "str", "type": "str", "assignee": "str", "external-ref": "str"}
ISSUE_SHORT = {"d": "description", "p": "priority", "t": "type", "a": "assignee"}
SPECS = {
    "init": ({"prefix": "str"}, {"p": "prefix"}),
    "create": ({**ISSUE_FLAGS, "labels": "slice", "label": "slice", "parent": "str", "deps": "slice", "id": "str",
                "silent": "bool", "status": "str"}, {**ISSUE_SHORT, "l": "labels", "s": "status"}),
    "show": ({}, {}),
    "ready": ({"limit": "int", "claim": "bool", "assignee": "str", "unassigned": "bool", "sort": "str",
               "label": "slice", "type": "str", "priority": "int", "plain": "bool"},
              {"n": "limit", "a": "assignee", "u": "unassigned", "s": "sort", "l": "label", "t": "type"}),
    "update": ({**ISSUE_FLAGS, "status": "str", "append-notes": "str", "add-label": "slice", "remove-label": "slice",
                "set-labels": "slice", "claim": "bool", "parent": "str", "force": "bool"},
               {**ISSUE_SHORT, "s": "status", "l": "add-label"}),
    "close": ({"reason": "array", "force": "bool"}, {"r": "reason", "f": "force"}),
    "list": ({"status": "str", "all": "bool", "limit": "int", "assignee": "str", "label": "slice", "type": "str"},
             {"s": "status", "n": "limit", "a": "assignee", "l": "label", "t": "type"}),
    "dep add": ({"type": "str"}, {"t": "type"}),
    "dep remove": ({}, {}),
    "comments add": ({}, {}),
    "sync": ({"flush-only": "bool", "no-push": "bool", "no-pull": "bool"}, {}),
    "reopen": ({"reason": "str"}, {"r": "reason"}),
    "dep tree": ({"max-depth": "int"}, {"d": "max-depth"}),
    "import": ({"dry-run": "bool"}, {}),
    "export": ({"output": "str", "force": "bool", "status": "str"}, {"o": "output"}),
}


class BdError(Exception):
    def __init__(self, message: str, code: str = "error", plain: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.plain = plain  # cobra's own errors (unknown flag, unknown command) are never JSON


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- options, the pflag way -----------------------------------------------------------------

def split_command(tokens: list[str]) -> tuple[str, list[str]]:
    words, rest = [], list(tokens)
    while rest and not rest[0].startswith("-") and len(words) < 2:
        words.append(rest.pop(0))
        if words[0] not in ("dep", "comments"):
            break
    return " ".join(words), rest


def parse(tokens: list[str], spec: dict[str, str], short: dict[str, str]) -> tuple[dict, list[str]]:
    flags: dict = {}
    args: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            args += tokens[index:]
            break
        if token.startswith("--"):
            name, equals, value = token[2:].partition("=")
            short_form = False
        elif token.startswith("-") and len(token) > 1:
            name, tail = short.get(token[1], ""), token[2:]
            if not name:
                raise BdError(f"unknown shorthand flag: '{token[1]}' in {token}", plain=True)
            equals, value, short_form = bool(tail), tail[1:] if tail.startswith("=") else tail, True
        else:
            args.append(token)
            continue
        kind = spec.get(name)
        if kind is None:
            raise BdError(f"unknown flag: --{name}", plain=True)
        if kind == "bool":
            value = value.lower() not in ("false", "0") if equals and not short_form else True
        elif not equals:
            if index >= len(tokens):
                raise BdError(f"flag needs an argument: --{name}", plain=True)
            value = tokens[index]
            index += 1
        if kind == "slice":
            flags.setdefault(name, []).extend(item for row in csv.reader([value]) for item in row)
        elif kind == "array":
            flags.setdefault(name, []).append(value)
        elif kind == "int":
            try:
                flags[name] = int(value)
            except ValueError:
                raise BdError(f'invalid argument "{value}" for "--{name}"', plain=True) from None
        else:
            flags[name] = value
    return flags, args


# -- the database: .beads/issues.jsonl ------------------------------------------------------

def beads_dir() -> Path:
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / ".beads").is_dir():
            return folder / ".beads"
    raise BdError("no beads database found (run 'bd init')", "not_initialized")


class Db:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "issues.jsonl"
        config = folder / "config.yaml"
        self.prefix = "bd"
        if config.exists():
            for line in config.read_text(encoding="utf-8").splitlines():
                if line.startswith("issue-prefix:"):
                    self.prefix = line.split(":", 1)[1].strip().strip('"')
        self.issues: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    issue = json.loads(line)
                    self.issues[issue["id"]] = issue

    def save(self) -> None:
        temp = self.path.with_suffix(".tmp")
        with open(temp, "w", encoding="utf-8") as out:
            for issue_id in sorted(self.issues):
                out.write(json.dumps(record(self.issues[issue_id]), ensure_ascii=False, separators=(",", ":")) + "\n")
        temp.replace(self.path)

    def resolve(self, text: str) -> str:
        if text in self.issues:
            return text
        found = [i for i in self.issues if i.startswith(text) or i.split("-", 1)[-1].startswith(text)]
        if len(found) > 1:
            raise BdError(f"ambiguous ID {text!r} matches {', '.join(sorted(found)[:5])}", "ambiguous")
        if not found:
            raise BdError(f"issue {text!r} not found", "not_found")
        return found[0]

    def new_id(self, seed: str) -> str:
        for length in range(4, 9):
            for nonce in range(10):
                digest = int.from_bytes(hashlib.sha256(f"{seed}|{nonce}".encode()).digest()[:8], "big")
                suffix = ""
                for _ in range(length):
                    digest, rest = divmod(digest, 36)
                    suffix = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + suffix
                if f"{self.prefix}-{suffix}" not in self.issues:
                    return f"{self.prefix}-{suffix}"
        raise BdError("no free id")

    def blocked(self, issue_id: str, seen: frozenset = frozenset()) -> bool:
        issue = self.issues.get(issue_id)
        if issue is None or issue["status"] in DONE or issue_id in seen:
            return False
        for dep in issue.get("dependencies", []):
            target = self.issues.get(dep["depends_on_id"])
            if dep["type"] in ("blocks", "conditional-blocks") and target and target["status"] not in DONE:
                return True
            if dep["type"] == "parent-child" and self.blocked(dep["depends_on_id"], seen | {issue_id}):
                return True
        return False

    def ready(self) -> list[dict]:
        found = [i for i in self.issues.values() if i["status"] == "open" and i.get("issue_type") not in
                 NOT_READY_TYPES and not i.get("ephemeral") and not self.blocked(i["id"])]
        found.sort(key=lambda i: i["id"])
        found.sort(key=lambda i: i["created_at"], reverse=True)
        found.sort(key=lambda i: i["priority"])  # priority, then newest first, then id (bd's default sort)
        return found


def record(issue: dict) -> dict:
    """Go's omitempty in the struct's field order."""
    out = {key: issue[key] for key in ORDER if key in issue and (key in ALWAYS or issue[key] not in ("", [], None))}
    out.update({key: value for key, value in issue.items() if key not in out and key not in ORDER})
    return out


def with_counts(db: Db, issue: dict) -> dict:
    out = record(issue)
    deps = issue.get("dependencies", [])
    out.update(dependency_count=len(deps), comment_count=len(issue.get("comments", [])),
               dependent_count=sum(1 for other in db.issues.values() for dep in other.get("dependencies", [])
                                   if dep["depends_on_id"] == issue["id"]))
    parent = next((dep["depends_on_id"] for dep in deps if dep["type"] == "parent-child"), None)
    if parent:
        out["parent"] = parent
    return out


def details(db: Db, issue: dict) -> dict:
    """`bd show`: dependencies are the target issues themselves, each with its dependency_type."""
    out = with_counts(db, issue)
    out.pop("comments", None)
    targets = []
    for dep in issue.get("dependencies", []):
        target = db.issues.get(dep["depends_on_id"], {"id": dep["depends_on_id"]})
        shown = {k: v for k, v in record(target).items() if k not in ("dependencies", "comments")}
        targets.append({**shown, "dependency_type": dep["type"]})
    if targets:
        out["dependencies"] = targets
    return out


def without_deps(issue: dict) -> dict:
    return {k: v for k, v in record(issue).items() if k != "dependencies"}


# -- commands -------------------------------------------------------------------------------

def priority_of(text: str) -> int:
    value = text[1:] if text[:1] in "Pp" else text
    if not value.isdigit() or not 0 <= int(value) <= 4:
        raise BdError(f"invalid priority {text!r} (use 0-4 or P0-P4)")
    return int(value)


def description_of(flags: dict) -> str | None:
    if "body-file" in flags:
        return Path(flags["body-file"]).read_text(encoding="utf-8")
    if "description" in flags:
        if flags["description"] == "-":
            return sys.stdin.read()
        return flags["description"]
    return None


def cmd_create(db: Db, flags: dict, args: list[str], actor: str):
    if len(args) > 1:
        raise BdError(f"accepts at most 1 arg(s), received {len(args)}", plain=True)
    title = (args[0] if args else flags.get("title", "")).strip()
    if not title:
        raise BdError("title required")
    issue_type = flags.get("type", "task")
    if issue_type not in TYPES:
        raise BdError(f"invalid issue type {issue_type!r}")
    stamp = now()
    parent = db.resolve(flags["parent"]) if flags.get("parent") else ""
    if parent:
        numbers = [int(i[len(parent) + 1:]) for i in db.issues if i.startswith(parent + ".")
                   and i[len(parent) + 1:].isdigit()]
        issue_id = f"{parent}.{max(numbers, default=0) + 1}"
    else:
        issue_id = db.new_id(f"{title}|{description_of(flags) or ''}|{actor}|{stamp}")
    labels = list(dict.fromkeys([*flags.get("labels", []), *flags.get("label", []),
                                 *(db.issues[parent].get("labels", []) if parent else [])]))
    issue = {"id": issue_id, "title": title, "description": description_of(flags) or "",
             "design": flags.get("design", ""), "acceptance_criteria": flags.get("acceptance", ""),
             "notes": flags.get("notes", ""), "status": flags.get("status", "open"),
             "priority": priority_of(flags.get("priority", "2")), "issue_type": issue_type,
             "assignee": flags.get("assignee", ""), "created_at": stamp, "created_by": actor, "updated_at": stamp,
             "labels": labels, "dependencies": []}
    edges = [(issue_id, parent, "parent-child")] if parent else []
    for spec in flags.get("deps", []):
        kind, _, target = spec.rpartition(":")
        target = db.resolve(target)
        if kind == "blocks":
            edges.append((target, issue_id, "blocks"))
        else:
            edges.append((issue_id, target, "blocks" if kind in ("", "depends-on", "blocked-by") else kind))
    db.issues[issue_id] = issue
    for source, target, kind in edges:
        db.issues[source].setdefault("dependencies", []).append(
            {"issue_id": source, "depends_on_id": target, "type": kind, "created_at": stamp, "created_by": actor})
    return {**without_deps(issue), "schema_version": 1}


def cmd_show(db: Db, flags: dict, args: list[str], actor: str):
    found = []
    for text in args:
        try:
            found.append(db.issues[db.resolve(text)])
        except BdError as exc:
            if exc.code != "not_found":
                raise
            print(f"Issue {text} not found", file=sys.stderr)
    if not found:
        raise BdError("no issues found matching the provided IDs", "not_found")
    return [details(db, issue) for issue in found]


def claim(db: Db, issue: dict, actor: str) -> None:
    """bd's ClaimIssueInTx: open and unassigned (or already ours) becomes in_progress for actor."""
    steal(issue)
    if issue["status"] == "in_progress" and issue.get("assignee") == actor:
        return
    if issue["status"] != "open" or issue.get("assignee") not in ("", None, actor):
        if issue.get("assignee") and issue["assignee"] != actor:
            raise BdError(f"issue already claimed by {issue['assignee']}", "already_claimed")
        raise BdError(f"issue not claimable: status {issue['status']}", "not_claimable")
    stamp = now()
    issue.update(status="in_progress", assignee=actor, updated_at=stamp)
    issue.setdefault("started_at", stamp)


def steal(issue: dict) -> None:
    """FAKEBD_STEAL: another agent claims the issue a moment before this claim."""
    if issue["id"] in os.environ.get("FAKEBD_STEAL", "").split(",") and issue.get("assignee") != "someone-else":
        issue.update(status="in_progress", assignee="someone-else", updated_at=now())


def cmd_ready(db: Db, flags: dict, args: list[str], actor: str):
    ready = db.ready()
    if flags.get("assignee"):
        ready = [i for i in ready if i.get("assignee") == flags["assignee"]]
    if flags.get("unassigned") or flags.get("claim"):
        ready = [i for i in ready if not i.get("assignee")]
    if flags.get("claim"):
        if not ready:
            return []
        claim(db, ready[0], actor)
        return [with_counts(db, ready[0])]
    limit = flags.get("limit", 100)
    return [with_counts(db, issue) for issue in (ready[:limit] if limit else ready)]


def apply_update(db: Db, issue: dict, flags: dict, actor: str) -> None:
    if flags.get("claim"):
        claim(db, issue, actor)
    if "assignee" in flags and issue["status"] == "in_progress" and issue.get("assignee") not in ("", None, actor) \
            and not flags.get("force") and not flags.get("claim"):
        raise BdError(f"{issue['id']} is claimed by {issue['assignee']}; only they may reassign it (or --force)")
    if "status" in flags:
        status = flags["status"]
        if status not in STATUSES:
            raise BdError(f"invalid status {status!r}")
        if status == "closed" and issue["status"] != "closed":
            issue["closed_at"] = now()
        elif status != "closed":
            issue.update(closed_at="", close_reason="")
        issue["status"] = status
    for flag, field in (("title", "title"), ("design", "design"), ("acceptance", "acceptance_criteria"),
                        ("notes", "notes"), ("assignee", "assignee"), ("type", "issue_type")):
        if flag in flags:
            issue[field] = flags[flag].strip() if flag == "title" else flags[flag]
    if "title" in flags and not issue["title"]:
        raise BdError("title cannot be empty")
    description = description_of(flags)
    if description is not None:
        issue["description"] = description
    if "priority" in flags:
        issue["priority"] = priority_of(flags["priority"])
    if "append-notes" in flags:
        issue["notes"] = f"{issue['notes']}\n{flags['append-notes']}" if issue.get("notes") else flags["append-notes"]
    labels = flags.get("set-labels", issue.get("labels", []))
    labels = [label for label in labels if label not in flags.get("remove-label", [])]
    issue["labels"] = list(dict.fromkeys([*labels, *flags.get("add-label", [])]))
    issue["updated_at"] = now()


def cmd_update(db: Db, flags: dict, args: list[str], actor: str):
    if not args:
        raise BdError("no issue ID provided")
    updated, failed = [], []
    for text in args:
        try:
            issue = db.issues[db.resolve(text)]
            if flags.get("claim"):
                steal(issue)
            before = json.dumps(issue)
            try:
                apply_update(db, issue, flags, actor)
            except BdError:
                db.issues[issue["id"]] = json.loads(before)
                raise
            updated.append(without_deps(issue))
        except BdError as exc:
            print(f"Error updating {text}: {exc}", file=sys.stderr)
            failed.append({"id": text, "error": f"updating issue: {exc}"})
    if failed:
        db.save()
        if updated and "json" in flags:
            print(json.dumps(updated, indent=2, ensure_ascii=False))
        if "json" in flags:
            print(json.dumps({"error": f"{len(failed)} of {len(args)} issues failed to update", "failed": failed,
                              "schema_version": 1}), file=sys.stderr)
        sys.exit(1)
    return updated


def cmd_close(db: Db, flags: dict, args: list[str], actor: str):
    reasons = flags.get("reason") or ["Closed"]
    if len(reasons) > 1 and len(reasons) != len(args):
        raise BdError(f"got {len(reasons)} close reasons for {len(args)} issue IDs")
    closed = []
    for number, text in enumerate(args):
        issue = db.issues[db.resolve(text)]
        if issue["status"] != "closed":
            children = [i for i in db.issues.values() if i["status"] not in DONE and any(
                d["type"] == "parent-child" and d["depends_on_id"] == issue["id"] for d in i.get("dependencies", []))]
            if children and not flags.get("force"):
                raise BdError(f"cannot close {issue['id']}: {len(children)} open child issue(s) (use --force)")
            if issue["status"] == "in_progress" and issue.get("assignee") not in ("", None, actor) \
                    and not flags.get("force"):
                raise BdError(f"{issue['id']} is claimed by {issue['assignee']}, not {actor} (use --force)")
            stamp = now()
            issue.update(status="closed", closed_at=stamp, updated_at=stamp,
                         close_reason=reasons[number if len(reasons) > 1 else 0])
        closed.append(without_deps(issue))
    return closed


def cmd_list(db: Db, flags: dict, args: list[str], actor: str):
    wanted = flags["status"].split(",") if flags.get("status") else None
    found = [i for i in db.issues.values() if (i["status"] in wanted if wanted else
                                              flags.get("all") or i["status"] not in DONE)]
    if flags.get("assignee"):
        found = [i for i in found if i.get("assignee") == flags["assignee"]]
    found.sort(key=lambda i: i["id"])
    limit = flags.get("limit", 50)
    return [with_counts(db, issue) for issue in (found[:limit] if limit else found)]


def cmd_dep(db: Db, flags: dict, args: list[str], actor: str, remove: bool = False):
    if len(args) != 2:
        raise BdError(f"accepts 2 arg(s), received {len(args)}", plain=True)
    issue = db.issues[db.resolve(args[0])]
    target = args[1] if args[1].startswith("external:") else db.resolve(args[1])
    edges = [d for d in issue.get("dependencies", []) if d["depends_on_id"] != target]
    kind = flags.get("type", "blocks")
    if remove:
        if len(edges) == len(issue.get("dependencies", [])):
            raise BdError(f"{issue['id']} does not depend on {target}", "not_found")
    else:
        if kind in ("blocks", "parent-child") and depends_on(db, target, issue["id"]):
            raise BdError(f"adding {issue['id']} -> {target} would create a dependency cycle")
        edges.append({"issue_id": issue["id"], "depends_on_id": target, "type": kind, "created_at": now(),
                      "created_by": actor})
    issue["dependencies"] = edges
    issue["updated_at"] = now()
    return {"status": "removed" if remove else "added", "issue_id": issue["id"], "depends_on_id": target,
            "type": kind, "schema_version": 1}


def depends_on(db: Db, start: str, goal: str) -> bool:
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack += [d["depends_on_id"] for d in db.issues.get(node, {}).get("dependencies", [])
                      if d["type"] in ("blocks", "parent-child")]
    return False


def cmd_comment(db: Db, flags: dict, args: list[str], actor: str):
    if len(args) != 2:
        raise BdError(f"accepts 2 arg(s), received {len(args)}", plain=True)
    issue = db.issues[db.resolve(args[0])]
    comment = {"id": len(issue.get("comments", [])) + 1, "issue_id": issue["id"], "author": actor,
               "text": args[1], "created_at": now()}
    issue.setdefault("comments", []).append(comment)
    return {**comment, "schema_version": 1}


def cmd_reopen(db: Db, flags: dict, args: list[str], actor: str):
    if not args:
        raise BdError("requires at least 1 arg(s), only received 0", plain=True)
    reopened = []
    for text in args:
        issue = db.issues[db.resolve(text)]
        if issue["status"] != "closed":
            raise BdError(f"{issue['id']} is not closed (status {issue['status']})")
        issue.update(status="open", closed_at="", close_reason="", updated_at=now())
        reopened.append(without_deps(issue))
    return reopened


def cmd_dep_tree(db: Db, flags: dict, args: list[str], actor: str):
    """What the issue waits on, one line a node, children indented (bd's default direction, "down")."""
    if len(args) != 1:
        raise BdError(f"accepts 1 arg(s), received {len(args)}", plain=True)
    lines: list[str] = []
    nodes: list[dict] = []

    def walk(issue_id: str, depth: int, seen: frozenset) -> None:
        issue = db.issues.get(issue_id, {"id": issue_id, "title": "", "status": "?", "priority": 2})
        lines.append(f"{'    ' * depth}{issue_id}: {issue['title']} [P{issue['priority']}] ({issue['status']})")
        nodes.append({"id": issue_id, "title": issue["title"], "status": issue["status"], "depth": depth})
        if issue_id in seen or depth >= flags.get("max-depth", 50):
            return
        for dep in issue.get("dependencies", []):
            walk(dep["depends_on_id"], depth + 1, seen | {issue_id})

    walk(db.resolve(args[0]), 0, frozenset())
    return nodes if flags.get("json") else "\n".join(lines)


def cmd_import(db: Db, flags: dict, args: list[str], actor: str):
    """Upsert by id; an incoming row older than ours is skipped (bd's filterStaleImportIssues)."""
    source = Path(args[0]) if args else db.path
    lines = source.read_text(encoding="utf-8").splitlines()
    count = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            incoming = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BdError(f"import failed: {source}:{number}: {exc}") from None
        if incoming.get("_type", "issue") != "issue" or incoming.get("status") == "tombstone":
            continue
        ours = db.issues.get(incoming["id"])
        if ours is None or incoming.get("updated_at", "") >= ours.get("updated_at", ""):
            if not flags.get("dry-run"):
                db.issues[incoming["id"]] = incoming
            count += 1
    print(f"Imported {count} issues from {source}", file=sys.stderr)
    return {"imported": count, "schema_version": 1} if flags.get("json") else ""


def cmd_export(db: Db, flags: dict, args: list[str], actor: str):
    """JSONL sorted by id, written through a temporary file; stdout without -o."""
    rows = [record(db.issues[i]) for i in sorted(db.issues)
            if not flags.get("status") or db.issues[i]["status"] == flags["status"]]
    text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    if not flags.get("output"):
        sys.stdout.write(text)
        return None
    out = Path(flags["output"])
    temp = out.with_name(out.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(out)
    print(f"Exported {len(rows)} issues to {out}", file=sys.stderr)
    return {"exported": len(rows), "schema_version": 1} if flags.get("json") else ""


def cmd_init(flags: dict, args: list[str]) -> None:
    folder = Path.cwd() / ".beads"
    folder.mkdir(exist_ok=True)
    prefix = flags.get("prefix") or Path.cwd().name
    (folder / "config.yaml").write_text(f"issue-prefix: {prefix}\n", encoding="utf-8")
    (folder / "issues.jsonl").touch()
    print(f"bd initialized in {folder} with prefix {prefix}")


COMMANDS = {"create": cmd_create, "show": cmd_show, "ready": cmd_ready, "update": cmd_update, "close": cmd_close,
            "list": cmd_list, "dep add": cmd_dep, "dep remove": lambda *a: cmd_dep(*a, remove=True),
            "comments add": cmd_comment, "reopen": cmd_reopen, "dep tree": cmd_dep_tree, "import": cmd_import,
            "export": cmd_export}


def run(argv: list[str]) -> int:
    command, rest = split_command(argv)
    if command not in SPECS:
        raise BdError(f'unknown command "{command}" for "bd"', plain=True)
    spec, short = SPECS[command]
    if command == "update" and os.environ.get("FAKEBD_NO_CLAIM"):
        spec = {k: v for k, v in spec.items() if k != "claim"}
    flags, args = parse(rest, {**GLOBAL, **spec}, {**GLOBAL_SHORT, **short})
    if flags.get("help"):
        print(f"Usage:\n  bd {command} [flags]\n\n(fake bd: nothing was done)")
        return 0
    if command == "sync" and os.environ.get("FAKEBD_NO_SYNC"):
        raise BdError('unknown command "sync" for "bd"', plain=True)
    if command == os.environ.get("FAKEBD_FAIL"):
        raise BdError("database is locked (fake failure)")
    if command == "init":
        cmd_init(flags, args)
        return 0
    actor = flags.get("actor") or os.environ.get("BEADS_ACTOR") or os.environ.get("BD_ACTOR") or \
        os.environ.get("USER", "someone")
    folder = beads_dir()
    with open(folder / ".fakebd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        db = Db(folder)
        if command == "sync":
            db.save()
            print("Sync complete")
            return 0
        try:
            answer = COMMANDS[command](db, flags, args, actor)
        finally:
            db.save()
    if answer is None or answer == "":
        pass  # export to stdout, or a command whose word went to stderr
    elif flags.get("json"):
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(answer if isinstance(answer, str) else f"ok: {command}")
    return 0


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("FAKEBD_LOG"):
        with open(os.environ["FAKEBD_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        code = run(argv)
    except BdError as exc:
        if as_json and not exc.plain:
            out = sys.stdout if os.environ.get("FAKEBD_ERRORS_ON_STDOUT") else sys.stderr
            print(json.dumps({"error": str(exc), "code": exc.code, "schema_version": 1}, indent=2), file=out)
        else:
            print(f"Error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


def install(folder: Path) -> Path:
    """Put an executable `bd` running this stand-in into folder; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "bd"
    wrapper.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
                       "from tests.fakebd import main\nmain()\n", encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


if __name__ == "__main__":
    main()
