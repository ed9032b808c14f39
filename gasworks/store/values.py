"""Plain values handed to the store and back: a task to create, what an import did. `gasworks.store`
gives them too (loading this module on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class NewTask:
    """What `create` needs; everything else is filled in by the store."""

    title: str
    description: str = ""
    design: str = ""
    acceptance_criteria: str = ""
    notes: str = ""
    priority: int = 2
    issue_type: str = "task"
    assignee: str = ""
    labels: list[str] = field(default_factory=list)
    parent: str = ""
    deps: list[tuple[str, str]] = field(default_factory=list)  # (depends_on_id, type)


@dataclass(slots=True)
class ImportResult:
    """What an import did: how many tasks it created, updated and skipped, and their ids."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    ids: list[str] = field(default_factory=list)
    memories: int = 0
    warnings: list[str] = field(default_factory=list)  # edges left out, as Beads leaves them out
