"""The planner: a big goal becomes an epic of small tasks with dependencies, from one model call.

The model sees the goal and a compact view of the repository and answers with JSON constrained
by a schema. The plan is checked (not too many tasks, each with a title); what has an obvious fix
is fixed and reported (a dependency on the task itself, on a task that does not exist, or one
that would close a circle is dropped), so a plan never fails on its dependencies; a bad answer
gets one repair round, then a clear error, and nothing is written.
Near-duplicates of open tasks are dropped (a dependency on one goes to the open task instead).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gasworks import git
from gasworks.errors import EndpointDownError, GasworksError
from gasworks.ingest import normalise_title
from gasworks.llm import ChatClient, Usage
from gasworks.models import FILES_LABEL
from gasworks.store import Bulk, NewTask, TaskEditor, TaskReader

DEFAULT_MAX_TASKS = 12


class PlanError(GasworksError):
    """The model's plan could not be used, even after a repair round; nothing was written."""


def plan_schema(max_tasks: int) -> dict[str, Any]:
    task = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 120},
            "description": {"type": "string", "maxLength": 600},
            "acceptance_criteria": {"type": "string", "maxLength": 300},
            "priority": {"type": "integer", "minimum": 0, "maximum": 4},
            "files": {"type": "array", "items": {"type": "string", "maxLength": 120}, "maxItems": 8},
            "depends_on": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 8},
        },
        "required": ["title", "description", "depends_on"],
    }
    return {"type": "object", "properties": {"tasks": {"type": "array", "items": task, "minItems": 1,
                                                       "maxItems": max_tasks}}, "required": ["tasks"]}


SYSTEM = """You split a software goal into small tasks for coding agents working in parallel.
Each task must be doable alone in one sitting, in a few files. Answer with JSON:
{"tasks": [{"title": "...", "description": "...", "acceptance_criteria": "...", "priority": 2,
            "files": ["path/it/changes.py"], "depends_on": [1]}]}
Tasks are numbered from 1 in the order given; depends_on lists the numbers of EARLIER tasks
that must be finished first. Priority 0 is most urgent, 4 least."""


@dataclass
class PlannedTask:
    title: str
    description: str = ""
    acceptance_criteria: str = ""
    priority: int = 2
    files: list[str] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)  # 1-based numbers of the tasks it waits for
    duplicate_of: str = ""  # an open task it repeats: not created


@dataclass
class Plan:
    goal: str
    tasks: list[PlannedTask]
    usage: Usage
    repaired: bool = False
    fixes: list[str] = field(default_factory=list)


def repo_view(root: Path, max_files: int = 150) -> str:
    """What the model sees of the repository: files, the README's head, recent commits."""
    files = git.run(["ls-files"], root).stdout.splitlines()
    readme = next((root / name for name in ("README.md", "README.rst", "README.txt", "README")
                   if (root / name).is_file()), None)
    head = "\n".join(readme.read_text(encoding="utf-8", errors="replace").splitlines()[:30]) if readme else ""
    log = git.run(["log", "--oneline", "-10"], root, check=False).stdout.strip()
    shown = "\n".join(files[:max_files]) + (f"\n... and {len(files) - max_files} more" if len(files) > max_files
                                            else "")
    return f"Files:\n{shown}\n\nREADME (start):\n{head}\n\nRecent commits:\n{log}"


def parse_plan(text: str, max_tasks: int, fixes: list[str] | None = None) -> list[PlannedTask]:
    """Check the model's answer; raise PlanError saying what is wrong, for the repair round. What
    has one obvious fix (a task depending on itself, or on a number that does not exist) is fixed
    here, and said in `fixes`, rather than costing a round with the model."""
    fixes = [] if fixes is None else fixes
    try:
        data = json.loads(text)
        raw = data["tasks"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PlanError("the answer is not a JSON object with a list of tasks") from None
    if not isinstance(raw, list) or not raw:
        raise PlanError("the plan has no tasks")
    if len(raw) > max_tasks:
        raise PlanError(f"the plan has {len(raw)} tasks; at most {max_tasks} are allowed")
    tasks = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not str(item.get("title", "")).strip():
            raise PlanError(f"task {number} has no title")
        deps = item.get("depends_on") or []
        if not isinstance(deps, list) or not all(isinstance(d, int) for d in deps):
            raise PlanError(f"task {number}: depends_on must be a list of task numbers")
        if number in deps:
            fixes.append(f"task {number} depended on itself: dropped that")
        if any(not 1 <= d <= len(raw) for d in deps):
            fixes.append(f"task {number} depended on a task that does not exist: dropped that")
        deps = [d for d in deps if d != number and 1 <= d <= len(raw)]
        priority = item.get("priority", 2)
        tasks.append(PlannedTask(
            title=str(item["title"]).strip()[:200], description=str(item.get("description", "")),
            acceptance_criteria=str(item.get("acceptance_criteria", "")),
            priority=priority if isinstance(priority, int) and 0 <= priority <= 4 else 2,
            files=[str(f) for f in item.get("files") or [] if str(f).strip()][:8],
            depends_on=sorted(set(deps))))
    drop_cycles(tasks, fixes)
    return tasks


def drop_cycles(tasks: list[PlannedTask], fixes: list[str]) -> None:
    """Keep each dependency in turn (task 1's first, each task's in number order) unless it would
    close a circle; those are dropped and said in `fixes`. The same plan always loses the same edges."""
    kept: dict[int, list[int]] = {number: [] for number in range(1, len(tasks) + 1)}

    def reaches(start: int, goal: int) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo += kept[current]
        return False

    for number, task in enumerate(tasks, start=1):
        for dep in task.depends_on:
            if reaches(dep, number):
                fixes.append(f"task {number} depended on task {dep}, which depends on it in turn: dropped that")
            else:
                kept[number].append(dep)
        task.depends_on = kept[number]


def mark_duplicates(tasks: list[PlannedTask], open_titles: dict[str, str], fixes: list[str] | None = None) -> None:
    """Mark planned tasks that repeat an open task (or an earlier planned one) by normalised title.
    What depended on a repeat depends on its original instead; a dependency that this turns into a
    task depending on itself, or into a cycle, is dropped and said in `fixes`."""
    fixes = [] if fixes is None else fixes
    seen: dict[str, str] = dict(open_titles)
    for number, task in enumerate(tasks, start=1):
        key = normalise_title(task.title)
        if key in seen:
            task.duplicate_of = seen[key]
        else:
            seen[key] = f"#{number}"
    original = {number: int(task.duplicate_of[1:]) if task.duplicate_of.startswith("#") else number
                for number, task in enumerate(tasks, start=1)}
    for number, task in enumerate(tasks, start=1):
        if task.duplicate_of:
            task.depends_on = []  # not created: its dependents wait on the original
            continue
        if any(original[dep] == number for dep in task.depends_on):
            fixes.append(f"task {number} depended on a repeat of itself: dropped that")
        task.depends_on = sorted({original[dep] for dep in task.depends_on} - {number})
    drop_cycles(tasks, fixes)


async def make_plan(client: ChatClient, goal: str, view: str, *, max_tasks: int,
                    phase: Callable[[str], None] = lambda _text: None) -> Plan:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"{view}\n\nGoal:\n{goal}\n\nAt most {max_tasks} tasks."}]
    usage, schema = Usage(), plan_schema(max_tasks)
    for attempt in range(2):
        reply = await client.chat(messages, schema=schema, max_tokens=400 + 250 * max_tasks)
        usage.add(reply.usage)
        fixes: list[str] = []
        try:
            return Plan(goal, parse_plan(reply.text, max_tasks, fixes), usage, repaired=attempt > 0, fixes=fixes)
        except PlanError as exc:
            if attempt:
                raise PlanError(f"the model's plan was unusable twice ({exc}); nothing was written") from None
            phase(f"the plan cannot be used ({exc}): asking the model to repair it")
            messages += [{"role": "assistant", "content": reply.text},
                         {"role": "user", "content": f"That plan cannot be used: {exc}. Answer again with a "
                                                     "corrected plan."}]
    raise AssertionError("unreachable")


def to_new_tasks(plan: Plan) -> list[NewTask]:
    """The epic ("#0") and its children in dependency order, with `blocks` edges, for
    store.create_tasks(). A duplicate is not created; what depended on it depends on its original."""
    order: list[int] = []
    for number in range(1, len(plan.tasks) + 1):
        _visit(plan.tasks, number, order)
    refs: dict[int, str] = {}
    for position, number in enumerate((n for n in order if not plan.tasks[n - 1].duplicate_of), start=1):
        refs[number] = f"#{position}"
    for number in order:
        original = plan.tasks[number - 1].duplicate_of
        if original:
            refs[number] = refs.get(int(original[1:]), "") if original.startswith("#") else original
    title = plan.goal.strip().splitlines()[0][:120]
    news = [NewTask(title, description=plan.goal, issue_type="epic", priority=1, labels=["plan"])]
    for number in order:
        task = plan.tasks[number - 1]
        if task.duplicate_of:
            continue
        deps = list(dict.fromkeys((refs[d], "blocks") for d in task.depends_on if refs.get(d)))
        news.append(NewTask(task.title, description=task.description, acceptance_criteria=task.acceptance_criteria,
                            priority=task.priority, parent="#0", deps=deps,
                            labels=[f"{FILES_LABEL}{f}" for f in task.files]))
    return news


def _visit(tasks: list[PlannedTask], number: int, order: list[int]) -> None:
    """Depth-first: a task comes after everything it depends on (the plan has no cycles)."""
    if number in order:
        return
    original = tasks[number - 1].duplicate_of
    for dep in [*tasks[number - 1].depends_on, *([int(original[1:])] if original.startswith("#") else [])]:
        _visit(tasks, dep, order)
    order.append(number)


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {"goal": plan.goal, "repaired": plan.repaired, "fixes": plan.fixes,
            "tokens": {"prompt": plan.usage.prompt_tokens, "completion": plan.usage.completion_tokens},
            "tasks": [{"number": n, "title": t.title, "description": t.description,
                       "acceptance_criteria": t.acceptance_criteria, "priority": t.priority, "files": t.files,
                       "depends_on": t.depends_on, "duplicate_of": t.duplicate_of}
                      for n, t in enumerate(plan.tasks, start=1)]}


class Planning(TaskReader, TaskEditor, Bulk, Protocol):
    """What writing a plan uses of the store: the open tasks (for duplicates), creating, the prefix."""


def run_plan(project: Any, store: Planning, goal: str, *, max_tasks: int, dry_run: bool,
             phase: Callable[[str], None] = lambda _text: None) -> tuple[Plan, list[Any]]:
    """Ask the configured model (or the embedded one) for a plan; write it unless dry_run. Every
    endpoint is probed first: with none answering, the error says why and how to fix it. `phase`
    hears what is happening, for a progress line. Returns the plan and the tasks created (the epic first)."""
    import asyncio

    from gasworks.llm import probe
    from gasworks.llm.embedded import model_endpoints
    from gasworks.llm.pool import pool_from_specs

    phase("checking the model endpoints" if project.config.endpoints else "starting the embedded model")
    specs, engine = model_endpoints(project.config, project.state_dir)
    try:
        found = probe.probe_all(specs)
        if not any(p.ok for p in found):
            raise EndpointDownError(probe.explain(found) + "\nnothing was written")

        async def ask() -> Plan:
            pool = pool_from_specs(specs, project.state_dir / "llm-slots")
            try:
                return await make_plan(pool, goal, repo_view(project.root), max_tasks=max_tasks, phase=phase)
            finally:
                await pool.aclose()

        phase("waiting for the model's plan")
        plan = asyncio.run(ask())
    finally:
        if engine is not None:
            engine.stop()
    open_titles = {normalise_title(t.title): t.id for t in store.list_tasks(include_closed=False)}
    mark_duplicates(plan.tasks, open_titles, plan.fixes)
    if dry_run:
        return plan, []
    from gasworks.project import task_prefix

    phase("writing the tasks")
    return plan, store.create_tasks(to_new_tasks(plan), prefix=task_prefix(project.config, store), actor="planner")
