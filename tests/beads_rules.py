"""Beads' rules for `bd import` and `bd ready`, written from Beads' Go source and nothing of
gasworks, to check gasworks against on real files.

Sources (github steveyegge/beads, mid-2026):
- cmd/bd/import_shared.go importFromLocalJSONLFull: a `_schema` header line and memory lines
  (`"_type":"memory"`, kept when key and value are both non-empty) are not issues; tombstones are
  skipped; `"wisp": true` (v0.35-v0.37) means ephemeral.
- internal/storage/issueops/create.go PersistDependenciesWithResult: edges are stored issue by
  issue, in file order, after every issue exists; an edge to an issue that does not exist is left
  out (`external:` targets are kept); `CheckDependencyCycleInTx` refuses an edge to itself and a
  blocks/conditional-blocks edge whose target already reaches its source over such edges; the
  insert is `ON DUPLICATE KEY UPDATE type = type`, so the first edge to a target stays.
  (The classic importer, internal/importer/importer.go, skips refused edges with a warning.)
- internal/storage/issueops/wisp_routing.go / create.go IsWisp: ephemeral or no_history issues go
  to the wisps table, which `bd ready` does not read.
- internal/storage/issueops/blocked_state.go: is_blocked is the least fixpoint of: not closed or
  pinned, and (a blocks/conditional-blocks target not closed or pinned, or a parent-child parent
  that is blocked, or a waits-for target with a child not closed or pinned, unless the gate is
  any-children and some child is closed). The gate is read from the edge's metadata JSON.
- internal/storage/issueops/ready_work.go GetReadyWorkInTx with the CLI's Status=open: status
  open, pinned flag off, not a wisp, issue_type not merge-request/gate/molecule/message/agent/
  role/rig, defer_until absent or not in the future, no parent (parent-child) with a future
  defer_until, not blocked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

DONE = ("closed", "pinned")
BLOCKING = ("blocks", "conditional-blocks")
NOT_READY_TYPES = ("merge-request", "gate", "molecule", "message", "agent", "role", "rig")


def _time(text: str) -> datetime:
    """RFC 3339 as Go writes it (1 to 9 fractional digits, Z or an offset)."""
    head, frac, zone = text, "", ""
    for sign in ("Z", "z", "+", "-"):
        at = text.rfind(sign)
        if at > 10:  # past the date's own dashes
            head, zone = text[:at], text[at:]
            break
    if "." in head:
        head, frac = head.split(".", 1)
    zone = "+00:00" if zone in ("Z", "z") else zone
    stamp = f"{head}.{(frac + '000000')[:6]}{zone}"
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Edge:
    source: str
    target: str
    type: str
    metadata: object = None
    dropped: str = ""  # why Beads does not store it: duplicate, self, cycle, missing


@dataclass
class Beads:
    issues: dict[str, dict] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    memories: dict[str, str] = field(default_factory=dict)

    def stored(self) -> list[Edge]:
        return [e for e in self.edges if not e.dropped]


def load(text: str) -> Beads:
    beads = Beads()
    for line in text.split("\n"):
        if not line.strip():
            continue
        record = json.loads(line)
        if "_schema" in record:
            continue
        if record.get("_type") == "memory":
            if record.get("key") and record.get("value"):
                beads.memories[record["key"]] = record["value"]
            continue
        if record.get("status") == "tombstone":
            continue
        beads.issues[record["id"]] = record
    reach: dict[str, set[str]] = {}
    for issue_id, record in beads.issues.items():
        seen: set[str] = set()
        for raw in record.get("dependencies") or []:
            edge = Edge(issue_id, raw["depends_on_id"], raw.get("type") or "blocks", raw.get("metadata"))
            beads.edges.append(edge)
            if not edge.target.startswith("external:") and edge.target not in beads.issues:
                edge.dropped = "missing"
            elif edge.target == issue_id:
                edge.dropped = "self"
            elif edge.type in BLOCKING and _reaches(reach, edge.target, issue_id):
                edge.dropped = "cycle"
            elif edge.target in seen:
                edge.dropped = "duplicate"
            else:
                seen.add(edge.target)
                if edge.type in BLOCKING:
                    reach.setdefault(issue_id, set()).add(edge.target)
    return beads


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Beads' cycleReachabilityQuery: the closure of `start` over the edges, level by level."""
    closure, frontier = {start}, {start}
    while frontier and goal not in closure:
        frontier = {nxt for node in frontier for nxt in graph.get(node, ())} - closure
        closure |= frontier
    return goal in closure


def _wisp(record: dict) -> bool:
    return record.get("ephemeral") is True or record.get("wisp") is True or record.get("no_history") is True


def _any_children(metadata: object) -> bool:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return False
    return isinstance(metadata, dict) and metadata.get("gate") == "any-children"


def blocked(beads: Beads) -> set[str]:
    status = {i: r.get("status") or "open" for i, r in beads.issues.items()}
    children: dict[str, list[str]] = {}
    for e in beads.stored():
        if e.type == "parent-child":
            children.setdefault(e.target, []).append(e.source)
    marked: set[str] = set()
    changed = True
    while changed:
        changed = False
        for e in beads.stored():
            if e.source in marked or status[e.source] in DONE:
                continue
            kids = [status.get(c) for c in children.get(e.target, [])]
            if (e.type in BLOCKING and status.get(e.target, "closed") not in DONE) \
                    or (e.type == "parent-child" and e.target in marked) \
                    or (e.type == "waits-for" and any(s not in DONE for s in kids)
                        and not (_any_children(e.metadata) and "closed" in kids)):
                marked.add(e.source)
                changed = True
    return marked


def ready(beads: Beads, now: datetime) -> set[str]:
    def deferred(record: dict) -> bool:
        return bool(record.get("defer_until")) and _time(record["defer_until"]) > now

    held = blocked(beads)
    under_deferred = {e.source for e in beads.stored()
                      if e.type == "parent-child" and e.target in beads.issues and deferred(beads.issues[e.target])}
    return {
        i for i, r in beads.issues.items()
        if (r.get("status") or "open") == "open" and r.get("pinned") is not True and not _wisp(r)
        and (r.get("issue_type") or "task") not in NOT_READY_TYPES and not deferred(r)
        and i not in under_deferred and i not in held
    }
