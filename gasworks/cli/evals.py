"""`gasworks eval`: which agent, model and worker count does best on this machine, measured."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from gasworks import output
from gasworks.cli.base import cli, json_option, split_list
from gasworks.errors import GasworksError, InvalidValueError

# Keys of a --config file that would point the eval's throwaway repositories at the user's own
# state (a shared store, a remote, the branch) or that each configuration sets itself.
NOT_FROM_BASE = ("store", "remote", "host_id", "branch", "repo_root", "tracker", "bd_cmd", "bd_sync", "merge_slot",
                 "gate", "prefix", "worktree_placement", "worktree_prefix", "num_workers", "agent")


def _base_settings(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from gasworks.eval.suite import read_toml

    return {key: value for key, value in read_toml(path).items() if key not in NOT_FROM_BASE}


def _workers(values: tuple[str, ...]) -> list[int]:
    try:
        numbers = [int(v) for v in split_list(values)]
    except ValueError:
        raise InvalidValueError(f"--workers takes whole numbers, got {', '.join(values)}") from None
    if any(not 1 <= n <= 256 for n in numbers):
        raise InvalidValueError("--workers: use numbers from 1 to 256")
    return numbers or [4]


@cli.command(name="eval")
@click.option("--suite", default="small", show_default=True, metavar="NAME|FILE",
              help="A shipped suite (small: 12 tasks; large: 40 over 3 projects) or a suite file (docs/eval.md).")
@click.option("--agent", "agents", multiple=True, metavar="A",
              help="oracle, flaky[:P] (scripted, right on a share P of the tasks), builtin, aider or command; "
                   "repeat or comma-separate to compare (default: oracle).")
@click.option("--model", "models", multiple=True, metavar="M",
              help="Model to compare: Aider's model name, the builtin agent's endpoint model, or an embedded "
                   "model; repeat to compare (default: as configured).")
@click.option("-w", "--workers", "workers", multiple=True, metavar="N",
              help="Agents at once; repeat or comma-separate to compare (default: 4).")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Runs of each configuration (the flaky agent draws anew each run).")
@click.option("--tasks", "limit", type=click.IntRange(0), default=0,
              help="Only the first N tasks of each project (default: all).")
@click.option("--config", "base_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A gasworks.toml whose settings every configuration starts from (endpoints, aider_cmd, "
                   "command, time limits...); its store, remote, branch and gate are not used.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the flaky agent's draws.")
@click.option("--think", type=click.FloatRange(0), default=0.0,
              help="Seconds the scripted agents take per attempt, as a model would.")
@click.option("--timeout", type=click.FloatRange(0), default=None,
              help="Seconds one run of the fleet (one configuration on one project, once) may take; then it is "
                   "stopped and its row says `timeout`. Default: 300, plus per task of the run 600 (builtin, "
                   "aider, command) or 60 + 3 x --think (scripted agents). 0: no limit.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Make the throwaway repositories here and keep them (default: a temporary folder, removed).")
@click.option("--keep", is_flag=True,
              help="Keep the throwaway repositories (their stores, logs and run logs) and say where.")
@json_option
def eval_command(suite: str, agents: tuple[str, ...], models: tuple[str, ...], workers: tuple[str, ...],
                 repeat: int, limit: int, base_file: Path | None, seed: int, think: float, timeout: float | None,
                 directory: Path | None, keep: bool, as_json: bool) -> None:
    """Compare agents, models and worker counts on a suite of coding tasks, through the whole loop.

    Each configuration (the cross product of --agent, --model and --workers) runs every task
    of the suite in a throwaway repository with `gasworks run --until-done`: worktrees, agents,
    the gate (the tasks' visible tests), the merge queue. Then each task's hidden tests, which
    no agent saw, run on the merged result. Per configuration it reports tasks correct (hidden
    tests pass, with a 95% Wilson interval), merged, attempts, gate failures, merge conflicts,
    tokens and agent-seconds per merged task, wall time and merged tasks per hour.

    Nothing in this repository changes but one line appended to .gasworks/eval/results.jsonl
    (inside a gasworks project, at the end, stopped rows marked), which the dashboard's stats
    page charts. Example: gasworks eval --agent oracle,flaky:0.6 -w 1,4

    A run stopped by its --timeout, one that ended abnormally, or Ctrl+C (the configurations not
    begun are then not run) is named in the row's `stopped` column: that row's figures count only
    what was done by then. Exit status: 0, or 1 when a row was stopped, or 130 after Ctrl+C. If
    the harness itself fails, the throwaway repositories are kept and their folder is printed.
    """
    from gasworks.eval import report as reports
    from gasworks.eval.runner import Options, configurations, run_eval
    from gasworks.eval.suite import load_suite

    loaded = load_suite(suite)
    configs = configurations(split_list(agents) or ["oracle"], split_list(models), _workers(workers))
    workdir = directory.resolve() if directory else Path(tempfile.mkdtemp(prefix="gasworks-eval-"))
    if directory is not None and workdir.exists() and any(workdir.iterdir()):
        raise InvalidValueError(f"{workdir} is not empty: choose another --dir")
    options = Options(loaded, workdir, _base_settings(base_file), seed, limit, think, timeout)
    keep = keep or directory is not None
    with _kept_on_failure(workdir, keep, made=directory is None):
        with contextlib.nullcontext(output.no_phases) if as_json else output.Phases("eval") as phase:
            result = run_eval(configs, options, repeat, phase)
    saved = _save(result)
    if as_json:
        output.emit_json({**result, "saved_to": str(saved) if saved else None,
                          "workdir": str(workdir) if keep else None})
    else:
        click.echo(f"suite {loaded.name}: {result['tasks_per_run']} tasks per run, {repeat} run(s) per configuration")
        for line in reports.table_lines(result["configurations"]):
            click.echo(line)
        for line in reports.stopped_lines(result):
            click.echo(line)
        if saved:
            click.echo(f"results appended to {saved}")
        if keep:
            click.echo(f"repositories kept in {workdir}")
    if result["interrupted"]:
        raise click.exceptions.Exit(130)
    if any(row["stopped"] for row in result["configurations"]):
        raise click.exceptions.Exit(1)


@contextlib.contextmanager
def _kept_on_failure(workdir: Path, keep: bool, *, made: bool) -> Iterator[None]:
    """The throwaway folder (`made` here, or --dir) removed after the eval unless `keep`; when the
    harness itself fails, kept if anything is in it, and its path said, so nothing it made is lost."""
    try:
        yield
    except BaseException:
        if workdir.is_dir() and any(workdir.iterdir()):
            click.echo(f"gasworks: the eval's repositories and logs are kept in {workdir}", err=True)
        elif made:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)


def _save(result: dict[str, Any]) -> Path | None:
    """Into the results file of the gasworks project around the current folder, if there is one."""
    from gasworks.eval.report import save
    from gasworks.project import find_project

    try:
        project = find_project(Path.cwd())
    except GasworksError:
        return None
    return save(project.state_dir, result)


@cli.command(name="eval-check")
@click.option("--suite", default="small", show_default=True, metavar="NAME|FILE", help="The suite to check.")
@json_option
def eval_check(suite: str, as_json: bool) -> None:
    """Check a suite before it measures anything (exit 1 on a problem).

    Each task alone on its project's starting tree: its known solution must pass the gate and
    the hidden tests, and its wrong change (the flaky agent's) must fail the hidden tests.
    Writes nothing but temporary files.
    """
    from gasworks.eval.checks import check_suite
    from gasworks.eval.suite import load_suite

    loaded = load_suite(suite)
    with tempfile.TemporaryDirectory(prefix="gasworks-eval-check-") as scratch:
        with output.progress(f"checking {loaded.task_count()} tasks", quiet=as_json):
            findings, problems = check_suite(loaded, Path(scratch))
    if as_json:
        output.emit_json({"suite": loaded.name, "tasks": findings, "problems": problems})
    else:
        sneaky = sum(1 for f in findings if f["wrong_passes_gate"])
        click.echo(f"suite {loaded.name}: {len(findings)} tasks checked; {sneaky} wrong change(s) pass the gate "
                   "(the hidden tests catch them)")
        for problem in problems:
            click.echo(f"problem: {problem}")
    if problems:
        raise click.exceptions.Exit(1)


@cli.command(name="eval-import")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--repo", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default=True, help="The repository whose history becomes tasks.")
@click.option("--rev", default="HEAD", show_default=True, help="The newest commit to look at.")
@click.option("-n", "--commits", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="How many of the newest commits (with one parent) to look at.")
@click.option("--test-command", default="python -m pytest -q", show_default=True,
              help="Runs the repository's tests: the gate as it is, the hidden tests with their paths appended "
                   "(\"python\" is the Python gasworks runs on).")
@json_option
def eval_import(out: Path, repo: Path, rev: str, commits: int, test_command: str, as_json: bool) -> None:
    """Write a suite file (OUT) made from a repository's history, for `gasworks eval --suite OUT`.

    Each commit that changes test files and other files is a task: it starts from the commit's
    parent, its description is the commit's message, the commit's test files are its hidden
    tests, and the commit's other changes are the known solution. OUT must not exist.
    """
    import shlex

    from gasworks import git
    from gasworks.eval.history import suite_text

    if out.exists() or out.is_symlink():
        raise InvalidValueError(f"{out} exists: choose a new file")
    argv = shlex.split(test_command)
    if not argv:
        raise InvalidValueError("--test-command must name a program")
    if argv[0] in ("python", "python3"):
        argv[0] = "{python}"
    root = git.main_root(repo.resolve())
    text, made = suite_text(root, rev, commits, argv, out.stem)
    if not made:
        raise InvalidValueError(f"none of the newest {commits} commits of {root} at {rev} changes both test files "
                                "and other files: no task to make")
    git.write_new(out, text.encode("utf-8"))
    if as_json:
        output.emit_json({"suite": str(out), "tasks": made})
    else:
        click.echo(f"wrote {out}: {made} task(s); check it with `gasworks eval-check --suite {out}`")
