"""Commands that run things: run, the merge queue, ingest, plan, serve-model, demo."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gasworks import git, output, process
from gasworks import status as fleet_status
from gasworks.cli.base import DEBUG_WANTED, actor_name, cli, json_option, open_project
from gasworks.config import AGENTS
from gasworks.errors import InvalidValueError
from gasworks.ingest import read_text_file
from gasworks.models import MergeStatus
from gasworks.project import ensure_excludes, find_project, run_lock, task_prefix


@cli.command()
@click.option("-w", "--workers", type=click.IntRange(1, 256), default=None,
              help="Agents at once (default: num_workers from the config, 14).")
@click.option("--agent", type=click.Choice(AGENTS), default=None, help="Which agent runs tasks (default: config).")
@click.option("--until-done", is_flag=True,
              help="Exit once nothing is ready, running or waiting to merge: 0 if all done, 1 if work is left "
                   "blocked or failed.")
@click.option("--host-id", default=None, metavar="NAME",
              help="This host's name when several hosts share one PostgreSQL `store` and git `remote`.")
@click.pass_context
def run(ctx: click.Context, workers: int | None, agent: str | None, until_done: bool, host_id: str | None) -> None:
    """Keep agents busy on ready tasks, each in its own git worktree, merging what they finish.

    Ctrl+C once: claim nothing more and let running agents finish (grace_seconds); twice:
    stop them at once. Either way every unfinished task goes back to the queue. After a
    crash, the next run ends leftover agents and requeues their tasks.

    Several hosts: each runs `gasworks run --host-id NAME` in its own clone, with the same
    `store` (postgresql://...) and `remote`; one refinery at a time lands their branches.
    """
    from gasworks import runlog
    from gasworks.agents import get_agent
    from gasworks.dispatcher import Dispatcher
    from gasworks.fleet import run_fleet, snapshot
    from gasworks.stats import run_summary, summary_line

    project = find_project(Path.cwd(), overrides={"num_workers": workers, "agent": agent, "host_id": host_id})
    ensure_excludes(project.root)
    with run_lock(project):
        store = project.open_store()
        config = project.config
        view = fleet_status.FleetView(sys.stdout.isatty())
        log_file = runlog.start_run_log(project.state_dir, debug_level=bool(ctx.meta.get(DEBUG_WANTED)))
        say = runlog.teeing(view.say)
        say(f"run log: {log_file}")
        dispatcher = Dispatcher(project, store, get_agent(config.agent, config), config, say=say)
        started = time.time()
        try:
            with view:
                code = run_fleet(dispatcher, until_done=until_done,
                                 on_tick=lambda now: view.update(snapshot(dispatcher, now)))
        except Exception:
            runlog.crashed()
            raise
        say(summary_line(run_summary(store, started, time.time() - started)))
        say("tasks: " + ", ".join(f"{n} {s}" for s, n in store.counts().items()))
    sys.exit(code)


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Also show finished merges (default: the queue and the "
                                                          "last 20 results).")
@json_option
def merges(show_all: bool, as_json: bool) -> None:
    """The merge queue (oldest first), the branches waiting for review (`gasworks approve`/`reject`)
    and recent results: trial merge, gate runs and seconds, outcome."""
    from gasworks.speculation import policy_for

    project = open_project()
    store = project.open_store()
    queue = store.merges(statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)
    review = store.merges(statuses=[MergeStatus.REVIEW], oldest_first=True)
    done = [m for m in store.merges(limit=100_000 if show_all else 20)
            if m.status not in (MergeStatus.QUEUED, MergeStatus.MERGING, MergeStatus.REVIEW)]
    policy = policy_for(store, project.config)
    if as_json:
        output.emit_json({"queue": [output.merge_dict(m) for m in queue],
                          "review": [output.merge_dict(m) for m in review],
                          "recent": [output.merge_dict(m) for m in done],
                          "stats": output.merge_stats(store.merges(limit=100_000), store.gate_run_totals()),
                          "policy": {"batch": policy.batch, "depth": policy.depth, "pregate": policy.pregate,
                                     "why": policy.why}})
        return
    output.print_merges(queue, done, review)
    click.echo(f"policy: batches of {policy.batch}, {policy.depth} gated at once, "
               f"{'pre-gated' if policy.pregate else 'no pre-gate'}; {policy.why}")


@cli.command(name="merge-retry")
@click.argument("task_id")
@json_option
def merge_retry(task_id: str, as_json: bool) -> None:
    """Put a task's branch (gasworks/TASK_ID) back in the merge queue."""
    from gasworks.refinery import Refinery
    from gasworks.upstream import make_upstream

    project = open_project()
    store = project.open_store()
    task_id = store.resolve_id(task_id)
    upstream = make_upstream(project.root, project.config, project.state_dir)
    refinery = Refinery(project, store, project.config, upstream)
    merge = refinery.retry(task_id)
    if as_json:
        output.emit_json(output.merge_dict(merge))
    else:
        click.echo(f"queued {merge.branch} ({merge.head[:12]}) to merge again")


@cli.command()
@click.option("--once", is_flag=True, help="Exit when the queue is empty (default: keep watching it).")
@click.pass_context
def refinery(ctx: click.Context, once: bool) -> None:
    """Run the merge queue alone, without agents (one refinery at a time lands changes).

    SIGINT, SIGTERM or SIGHUP stop it (exit 130): a gate command running is ended and its
    branches go back in the queue."""
    from gasworks.refinery import Refinery
    from gasworks.upstream import make_upstream

    project = open_project()
    store = project.open_store()
    view = fleet_status.FleetView(False)
    merger = Refinery(project, store, project.config, make_upstream(project.root, project.config, project.state_dir),
                      say=view.say)
    merger.ensure()
    with process.stop_signals() as stopping:
        _merge_until_stopped(merger, once, stopping)
    if stopping():
        ctx.exit(130)


def _merge_until_stopped(merger: Any, once: bool, stopping: Callable[[], bool]) -> None:
    """Merge rounds in a thread while this one waits for them to end or for a signal; then it
    ends the gate command, which runs in a session of its own that no signal to us reaches."""
    failed: list[BaseException] = []

    def rounds() -> None:
        try:
            while not stopping():
                worked = merger.process()
                if once and not worked and not merger.moving():
                    return
                if not worked:
                    time.sleep(0.2)
        except BaseException as exc:  # raised again in the main thread
            failed.append(exc)

    worker = threading.Thread(target=rounds, name="gasworks-refinery", daemon=True)
    worker.start()
    while worker.is_alive() and not stopping():
        worker.join(0.05)
    if stopping():
        merger.abort()
    worker.join()
    if failed:
        raise failed[0]


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--from", "source", default=None, metavar="ID", help="The task these ideas came from.")
@json_option
@click.pass_context
def ingest(ctx: click.Context, file: Path | None, source: str | None, as_json: bool) -> None:
    """Turn the lines of suggested_tasks.txt (in the repository root) into tasks, then clear it.

    One idea per line. Blank lines, duplicates (also of open tasks), overlong lines and lines
    with control characters are dropped and counted; max_suggestions_per_task and
    max_suggested_backlog cap the rest. New tasks get priority 3 and the label `suggested`.
    A file that is not UTF-8 text, or holds a NUL byte, is refused whole and left as it is.
    """
    from gasworks.ingest import SUGGESTIONS_FILE, parse_suggestions

    project = open_project()
    store = project.open_store()
    path = file or project.root / SUGGESTIONS_FILE
    if path.is_symlink():  # a committed link could point at any file of the user's
        raise InvalidValueError(f"{path} is a symbolic link: gasworks reads and clears only a regular file")
    if not path.is_file():
        raise InvalidValueError(f"{path} does not exist: nothing to ingest")
    # Undecodable bytes or a NUL: refuse the whole file (and keep it) rather than lose its lines.
    titles, dropped = parse_suggestions(read_text_file(path, nul_ok=False))
    made, refused = store.add_suggestions(
        titles, source=store.resolve_id(source) if source else None, prefix=task_prefix(project.config, store),
        actor=actor_name(ctx), max_per_task=len(titles) if not source else project.config.max_suggestions_per_task,
        backlog_cap=project.config.max_suggested_backlog)
    git.write_new(path, b"")  # the tasks are stored: only now is the file cleared (never through a link)
    report: dict[str, Any] = {"file": str(path), "created": made, "dropped": {**dropped, **refused}}
    if as_json:
        output.emit_json(report)
        return
    lost = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in report["dropped"].items() if n)
    click.echo(f"{len(made)} suggestion(s) became tasks" + (f"; dropped: {lost}" if lost else "")
               + f"; {path.name} cleared")


@cli.command()
@click.argument("goal")
@click.option("--max-tasks", type=click.IntRange(1, 50), default=12, show_default=True)
@click.option("--dry-run", is_flag=True, help="Show the plan, write nothing.")
@json_option
def plan(goal: str, max_tasks: int, dry_run: bool, as_json: bool) -> None:
    """Split a big GOAL into small tasks with dependencies (an epic and its children).

    The model (the configured endpoints, else a local server's coding model, else the embedded
    one) sees the goal and a view of the repository, and answers in a JSON schema. Every
    endpoint is probed first; with none answering, the error says why (refused, timed out,
    HTTP status, unknown model) and how to fix it. Dependencies that close a cycle are
    dropped and reported ("fixed:"); a plan with bad references gets one repair round, then
    a clear error, and nothing is written. Tasks that repeat an open task are dropped. Each task's expected files become
    `files:` labels for the scheduler. A progress line says what it waits for meanwhile.
    """
    from gasworks.planner import plan_dict, run_plan

    project = open_project()
    store = project.open_store()
    with contextlib.nullcontext(output.no_phases) if as_json else output.Phases("planning") as phase:
        made_plan, created = run_plan(project, store, goal, max_tasks=max_tasks, dry_run=dry_run, phase=phase)
    report = {**plan_dict(made_plan), "dry_run": dry_run, "created": [t.id for t in created]}
    if as_json:
        output.emit_json(report)
        return
    for number, task in enumerate(made_plan.tasks, start=1):
        after = f"  (after {', '.join(map(str, task.depends_on))})" if task.depends_on else ""
        dropped = f"  [repeats {task.duplicate_of}: not created]" if task.duplicate_of else ""
        click.echo(f"{number:>2}. P{task.priority} {output.oneline(task.title)}{after}{dropped}")
    for fix in made_plan.fixes:
        click.echo(f"    fixed: {fix}")
    if created:
        click.echo(f"created epic {created[0].id} with {len(created) - 1} tasks: "
                   + ", ".join(t.id for t in created[1:]))
    elif dry_run:
        click.echo("(dry run: nothing written)")


cli.add_command(plan, name="split")


@cli.command(name="serve-model")
@click.option("--model", default="smollm2", show_default=True,
              help="smollm2 (the default), a path to a .gguf file, or a model `gasworks models` lists.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Requests served at once (slots).")
@click.option("--ctx", type=click.IntRange(256, 131072), default=2048, show_default=True,
              help="Context size of each slot, in tokens.")
@click.option("--threads", type=click.IntRange(0, 256), default=0, help="CPU threads (default: all cores).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write {\"url\": ...} here once serving (for scripts).")
@click.option("--parent", type=click.IntRange(1), default=None,
              help="Stop once the process with this pid (the one that started the server) is gone, even if it "
                   "was killed (kill -9): a run or test that dies leaves no model server behind.")
def serve_model(model: str, parallel: int, ctx: int, threads: int, port: int, ready_file: Path | None,
                parent: int | None) -> None:
    """Serve the embedded model as an OpenAI-compatible endpoint on 127.0.0.1 until Ctrl+C.

    Aider or any tool can use it: point it at the printed URL (e.g. aider --model
    openai/smollm2 --openai-api-base URL --openai-api-key none).
    """
    from gasworks.llm.embedded import EmbeddedServer, ServeOptions

    server = EmbeddedServer(ServeOptions(model, parallel, ctx, threads, port))
    url = server.start()
    with process.stop_signals() as stopped:  # SIGHUP too: a closed terminal stops the server, not leaves it
        if ready_file is not None:
            temp = ready_file.with_suffix(".tmp")
            temp.write_text(json.dumps({"url": url, "model": str(server.model_path), "parallel": parallel}))
            temp.replace(ready_file)
        click.echo(f"serving {server.model_path.name} at {url}/v1 with {parallel} slots of {ctx} tokens; "
                   "Ctrl+C to stop", err=ready_file is not None)
        while not stopped() and (parent is None or os.getppid() == parent):  # a dead parent's child is re-parented
            time.sleep(0.1)
    server.stop()


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create the demo repository (default: a new temporary directory).")
@click.option("--agent", type=click.Choice(["builtin", "fake"]), default="builtin", show_default=True,
              help="builtin: the built-in agent on the embedded model (a few minutes); fake: scripted, seconds.")
@click.option("-w", "--workers", type=click.IntRange(1, 14), default=4, show_default=True)
@json_option
def demo(directory: Path | None, agent: str, workers: int, as_json: bool) -> None:
    """Make a sample repository with tests and eight small tasks, and run the whole loop on it.

    Each task says what to add and gives the tests it must pass. Agents work in their own
    worktrees, every branch is gated by the repository's tests, and what passes is merged
    into main. The default runs the built-in agent on the coding model of a local Ollama,
    llama.cpp, LM Studio or vLLM server when one is up, else on the embedded model, which
    needs no server: tiny, but the agent's edit-and-test loop (try, run the tests, try
    again) gets it through tasks this small.
    """
    from gasworks.demo import run_demo

    report = run_demo(directory, say=(lambda _line: None) if as_json else click.echo, agent=agent, workers=workers)
    if as_json:
        output.emit_json(report)
