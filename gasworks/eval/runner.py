"""Running a suite through the whole real loop, one configuration (agent, model, workers) at a time.

For each configuration, repeat and project: a throwaway repository is made from the project's
starting tree, its gasworks.toml written (agent, model, workers, gate), the tasks created through
the store's public API, and `gasworks run --until-done` run as a child process, exactly as a
user runs it. Then the results are read from that repository's store (tasks, attempts, merges)
and each task's hidden tests run on the target branch's final tree, outside any worktree an
agent used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gasworks import git, process
from gasworks.errors import ConfigError, InvalidValueError
from gasworks.eval.checks import hidden_pass, start_tree
from gasworks.eval.suite import Suite, SuiteProject
from gasworks.models import Attempt, MergeStatus, parse_time

SCRIPTED = ("oracle", "flaky")
REAL = ("builtin", "aider", "command")
ALL = 10_000_000  # every row, for the store's limit arguments
# Without --timeout, one run of the fleet may take TIMEOUT_BASE seconds plus, per task of the run,
# TIMEOUT_PER_TASK (a model-backed agent) or TIMEOUT_PER_SCRIPTED_TASK plus 3 x --think (a scripted one).
TIMEOUT_BASE, TIMEOUT_PER_TASK, TIMEOUT_PER_SCRIPTED_TASK = 300.0, 600.0, 60.0
# Why a run's figures are partial: it ran past its timeout, or the user pressed Ctrl+C.
TIMED_OUT, INTERRUPTED = "timeout", "interrupted"


@dataclass(frozen=True)
class Configuration:
    """One cell of the comparison: which agent (oracle, flaky[:P], builtin, aider, command), which
    model ("" as configured) and how many workers."""

    agent: str
    model: str
    workers: int

    @property
    def label(self) -> str:
        model = Path(self.model).name if self.model.endswith(".gguf") else self.model  # a file: its name
        return " ".join(part for part in (self.agent, model, f"w{self.workers}") if part)

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in self.label.replace(" ", "_"))


def configurations(agents: list[str], models: list[str], workers: list[int]) -> list[Configuration]:
    """The cross product, each agent name checked."""
    for agent in agents:
        kind, _, p = agent.partition(":")
        if kind not in SCRIPTED + REAL or (p and kind != "flaky"):
            raise InvalidValueError(f"unknown agent {agent!r}: use {', '.join(REAL)}, oracle or flaky[:P] "
                                    "(flaky:0.6 succeeds on 60% of the tasks)")
        if p and not _probability(p):
            raise InvalidValueError(f"{agent!r}: P must be a number from 0 to 1")
    return [Configuration(a, m, w) for a in agents for m in (models or [""]) for w in workers]


def _probability(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False


@dataclass
class Options:
    """What every run of one eval shares."""

    suite: Suite
    workdir: Path
    base: dict[str, Any]  # gasworks.toml keys every configuration starts from (--config)
    seed: int = 0
    limit: int = 0  # the first N tasks of each project (0: all)
    think: float = 0.0  # scripted agents wait this long per attempt, as a model would
    timeout: float | None = None  # seconds one `gasworks run` may take (0: no limit; None: default_timeout)


def default_timeout(config: Configuration, tasks: int, think: float) -> float:
    """Seconds one run of the fleet (one configuration, one project, once) may take unless --timeout
    says: scaled by its task count, with room for retries and conflicts; a scripted agent needs less."""
    scripted = config.agent.partition(":")[0] in SCRIPTED
    per_task = TIMEOUT_PER_SCRIPTED_TASK + 3 * think if scripted else TIMEOUT_PER_TASK
    return TIMEOUT_BASE + per_task * tasks


def settings_for(config: Configuration, project: SuiteProject, options: Options, map_file: Path,
                 repeat: int) -> dict[str, Any]:
    """The gasworks.toml of one run: the base config, then the configuration and the project's gate."""
    settings: dict[str, Any] = {"retry_backoff": 1, "grace_seconds": 5, **options.base, "tracker": "gasworks",
                                "num_workers": config.workers, "gate": project.gate_argv()}
    kind, _, p = config.agent.partition(":")
    if kind in SCRIPTED:
        settings["agent"] = "command"
        settings["command"] = [
            sys.executable, "-m", "gasworks.eval.agents", kind, "--p", p or "0.6",
            "--seed", str(options.seed + repeat), "--think", str(options.think), "--suite", str(options.suite.path),
            "--map", str(map_file), "--task-id", "{task_id}", "--worktree", "{worktree}"]
        return settings
    settings["agent"] = kind
    if kind == "aider" and config.model:
        settings["model"] = config.model
    if kind == "builtin":
        settings.setdefault("embedded_parallel", min(config.workers, 64))
        if config.model and settings.get("endpoints"):
            settings["endpoints"] = [{**e, "model": config.model} for e in settings["endpoints"]]
        elif config.model:  # the named embedded model, not a local server's that autodetect would pick
            settings.update(embedded_model=config.model, autodetect=False)
    return settings


def check_settings(settings: dict[str, Any]) -> None:
    from gasworks.config import Config
    from gasworks.settings import SettingsError

    try:
        Config.validate(settings)
    except SettingsError as exc:
        raise ConfigError(f"eval config: {exc}") from None


def toml_text(settings: dict[str, Any]) -> str:
    """settings as TOML lines (strings, numbers, booleans, lists and tables of them)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (str, Path)):
            return json.dumps(str(v), ensure_ascii=False)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return "[" + ", ".join(value(x) for x in v) + "]"
    return "".join(f"{key} = {value(v)}\n" for key, v in settings.items())


def _make_repo(project: SuiteProject, root: Path) -> None:
    start_tree(project, root)
    git.init_repo(root)
    git.commit_all(root, f"eval: {project.name}, as the tasks find it")


def _seed(root: Path, project: SuiteProject, limit: int) -> dict[str, str]:
    """gasworks init and one task per suite task; {task id: "project/key"}."""
    from gasworks.project import init_project
    from gasworks.store import NewTask

    made, _ = init_project(root)
    store = made.open_store()
    try:
        tasks = project.tasks[:limit] if limit else project.tasks
        return {store.create_task(NewTask(t.title, description=t.text()), prefix="ev", actor="eval").id:
                f"{project.name}/{t.key}" for t in tasks}
    finally:
        store.close()


def run_fleet(root: Path, log: Path, timeout: float) -> tuple[int | None, float, str]:
    """`gasworks run --until-done` in the repository; (its exit code or None if stopped, seconds, why
    it was stopped: TIMED_OUT, INTERRUPTED by Ctrl+C, or "" when it ended by itself)."""
    started = time.monotonic()
    proc = process.spawn([sys.executable, "-m", "gasworks", "run", "--until-done"], cwd=root, log_path=log,
                         env={**os.environ, "GASWORKS_ACTOR": "eval"})
    try:
        return proc.wait(timeout=timeout or None), time.monotonic() - started, ""
    except subprocess.TimeoutExpired:
        stopped = TIMED_OUT
    except KeyboardInterrupt:  # the run is in a process group of its own, so it is stopped here
        stopped = INTERRUPTED
    except BaseException:
        _stop(proc)
        raise
    wall = time.monotonic() - started
    _stop(proc)
    return None, wall, stopped


def _stop(proc: subprocess.Popen) -> None:
    process.terminate_group(proc.pid)  # a graceful stop first: the run ends its agents itself
    try:
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:  # too slow, or Ctrl+C again: now
        process.terminate_group(proc.pid, hard=True)
        proc.wait()
        if isinstance(exc, KeyboardInterrupt):
            raise


def _seconds(attempt: Attempt) -> float:
    if not attempt.started_at or not attempt.ended_at:
        return 0.0
    return max(0.0, (parse_time(attempt.ended_at) - parse_time(attempt.started_at)).total_seconds())


def measure(root: Path, ids: dict[str, str]) -> dict[str, Any]:
    """What the repository's store says of the run: each suite task's status and whether it landed,
    and the fleet's attempts, gate failures, conflicts, tokens and agent-seconds."""
    from gasworks.project import find_project

    store = find_project(root).open_store()
    try:
        attempts = store.attempts(limit=ALL)
        merges = store.merges(limit=ALL)
        tasks = {t.id: t for t in store.list_tasks()}
    finally:
        store.close()
    landed = {m.task_id for m in merges if m.status == MergeStatus.LANDED}
    return {
        "tasks": {where: {"id": task_id, "status": tasks[task_id].status, "merged": task_id in landed}
                  for task_id, where in ids.items()},
        "attempts": len(attempts),
        "gate_failures": sum(1 for m in merges if m.status == MergeStatus.GATE_FAILED),
        "conflicts": sum(1 for m in merges if m.trial == "conflict"),
        "tokens": sum(a.tokens_in + a.tokens_out for a in attempts),
        "agent_seconds": round(sum(_seconds(a) for a in attempts), 3),
    }


def hidden_results(root: Path, project: SuiteProject, keys: list[str], scratch: Path) -> dict[str, bool]:
    """Each task's hidden tests, run on the target branch's final tree (exported, outside every
    worktree); {key: passed}."""
    final = scratch / "final"
    git.export_tree(root, "main", final)
    return {key: hidden_pass(final, project.task(key), scratch / "hidden" / key, project.hidden_argv())
            for key in keys}


def run_project(config: Configuration, project: SuiteProject, options: Options, repeat: int,
                phase: Callable[[str], None]) -> dict[str, Any]:
    """One project under one configuration: the repository made, the fleet run, the results read."""
    place = options.workdir / f"{config.slug}-r{repeat}"
    root, map_file = place / project.name, place / f"{project.name}.map.json"
    phase(f"{config.label} (run {repeat + 1}): {project.name}: making the repository")
    _make_repo(project, root)
    settings = settings_for(config, project, options, map_file, repeat)
    ids = _seed(root, project, options.limit)
    map_file.write_text(json.dumps(ids), encoding="utf-8")
    (root / "gasworks.toml").write_text("# written by gasworks eval\n" + toml_text(settings), encoding="utf-8")
    timeout = default_timeout(config, len(ids), options.think) if options.timeout is None else options.timeout
    phase(f"{config.label} (run {repeat + 1}): {project.name}: {len(ids)} tasks, {config.workers} workers"
          + (f", at most {timeout:g} s" if timeout else ""))
    code, wall, stopped = run_fleet(root, place / f"{project.name}.run.log", timeout)
    measured = measure(root, ids)
    phase(f"{config.label} (run {repeat + 1}): {project.name}: hidden tests")
    keys = [where.partition("/")[2] for where in ids.values()]
    correct = hidden_results(root, project, keys, place / f"{project.name}.check")
    for where, task in measured["tasks"].items():
        task["correct"] = correct[where.partition("/")[2]]
    return {"configuration": config.label, "repeat": repeat, "project": project.name, "root": str(root),
            "exit_code": code, "stopped": stopped or _ended_badly(code), "timeout": timeout,
            "wall_seconds": round(wall, 3), **measured}


def _ended_badly(code: int | None) -> str:
    """Why a run that ended by itself left partial figures: not 0 (done) or 1 (work left for humans)."""
    return "" if code in (0, 1) else f"exit {code}"


def _run_configuration(config: Configuration, options: Options, repeat: int,
                       phase: Callable[[str], None]) -> tuple[list[dict[str, Any]], bool]:
    """One configuration over every project, `repeat` times: (its runs, whether Ctrl+C stopped it;
    then the runs not begun are not run)."""
    runs: list[dict[str, Any]] = []
    try:
        for k in range(repeat):
            for project in options.suite.projects:
                runs.append(run_project(config, project, options, k, phase))
                if runs[-1]["stopped"] == INTERRUPTED:
                    return runs, True
    except KeyboardInterrupt:  # between runs, or while a run's results were read: that run is not counted
        return runs, True
    return runs, False


def run_eval(configs: list[Configuration], options: Options, repeat: int,
             phase: Callable[[str], None]) -> dict[str, Any]:
    """Every configuration, `repeat` times, over every project of the suite: the report (its per
    configuration figures and every run's records)."""
    from gasworks.eval.report import summarize
    from gasworks.models import now_iso

    for config in configs:  # a bad key or value stops the eval before any repository is made
        for project in options.suite.projects:
            check_settings(settings_for(config, project, options, Path("map.json"), 0))
    started, runs, rows = now_iso(), [], []
    interrupted = False
    for config in configs:
        mine, interrupted = _run_configuration(config, options, repeat, phase)
        runs.extend(mine)
        rows.append(summarize(config.label, mine, INTERRUPTED if interrupted else ""))
        if interrupted:
            break
    return {"suite": options.suite.name, "started_at": started, "seed": options.seed, "repeat": repeat,
            "limit": options.limit, "tasks_per_run": sum(len(p.tasks[:options.limit] if options.limit else p.tasks)
                                                         for p in options.suite.projects),
            "workdir": str(options.workdir), "configurations": rows, "runs": runs,
            "interrupted": interrupted, "not_run": [config.label for config in configs[len(rows):]]}
