"""Validated configuration, layered: CLI flag > GASWORKS_* env var > gasworks.toml > dispatch_config.json > default.

Every key is declared once, with its meaning, on `Config`: the gasworks.toml `gasworks init` writes
(`template()`) and README.md's table of keys (`keys_table()`) are generated from those declarations.
An unknown key or a bad value is an error that names where it came from, the key, and what is accepted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from gasworks.errors import ConfigError, InvalidValueError
from gasworks.ids import check_prefix
from gasworks.settings import Field, Problem, Section, Settings, SettingsError, field_validator, markdown_table
from gasworks.settings import template as settings_template

CONFIG_FILE = "gasworks.toml"
CLASSIC_CONFIG_FILE = "dispatch_config.json"
ENV_PREFIX = "GASWORKS_"
# What an argv template for the `command` agent may name. Task text is never among them:
# it reaches the agent only through the task file.
COMMAND_PLACEHOLDERS = ("task_file", "worktree", "task_id", "slot", "attempt", "repo_root", "model")
# The agents by name; agent NAME is the class <Name>Agent in gasworks/agents/NAME.py.
AgentName = Literal["builtin", "aider", "command", "fake"]
AGENTS: tuple[str, ...] = typing.get_args(AgentName)
# A TOML file of blank lines and comments only (as `gasworks init` writes it) sets nothing, so it is
# read without loading the TOML parser; a comment holding a character TOML forbids still goes to it.
_NOTHING_SET = re.compile(r"(?:[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?\n)*[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?")


class EndpointConfig(Settings):
    """One model server: `kind` is the protocol (openai for vLLM, llama.cpp, LM Studio; ollama)."""

    url: str
    kind: Literal["openai", "ollama"] = "openai"
    model: str
    max_concurrency: int = Field(4, ge=1, le=256)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class Config(Settings):
    """Settings for one repository, in the order `gasworks init` writes them (see `template()`).
    Unknown keys are refused, so a typo never goes unnoticed."""

    agent: AgentName = Field(
        "builtin", section=Section("Agents and models", "What runs each task, and the model it talks to."),
        description="Which agent runs each task: \"builtin\" (a small tool-using loop over a model), \"aider\", "
                    "\"command\" (the argv in `command`) or \"fake\" (deterministic, for demos and tests); "
                    "`gasworks run --agent` chooses for one run.")
    endpoints: list[EndpointConfig] = Field(
        [], example=[{"url": "http://127.0.0.1:11434", "kind": "ollama", "model": "qwen2.5-coder:7b",
                      "max_concurrency": 4}],
        description="Model servers for the builtin agent (kind \"openai\" for vLLM, llama.cpp's server, LM Studio; "
                    "\"ollama\"). None: the embedded model (SmolLM2-135M, fetched once into the models folder: it "
                    "proves the loop, it cannot really code).")
    autodetect: bool = Field(True, description="With no endpoints, use a coding model that a model server on "
                                                "127.0.0.1 offers (Ollama 11434, llama.cpp 8080, LM Studio 1234, vLLM "
                                                "8000; Qwen2.5-Coder preferred) before the embedded model.")
    embedded_model: str = Field("smollm2", description="The embedded model: smollm2, a .gguf path or a model "
                                                       "`gasworks models` lists.")
    embedded_parallel: int = Field(4, ge=1, le=64, description="Requests the embedded model serves at once.")
    embedded_ctx: int = Field(2048, ge=256, le=131072, description="Context per slot of the embedded model, in "
                                                                   "tokens.")
    agent_max_steps: int = Field(12, ge=1, description="Actions the builtin agent may take per attempt.")
    agent_max_tokens: int = Field(6000, ge=100, description="Tokens the builtin agent may spend per attempt.")
    model: str = Field("ollama_chat/qwen2.5-coder:7b", description="Model for Aider (a litellm name), or "
                                                                   "\"embedded\" for the embedded model.")
    aider_cmd: list[str] = Field(["aider"], description="How to start Aider (argv, or a string split like a "
                                                      "shell would, but never run by one).")
    ollama_api_base: str = Field("http://127.0.0.1:11434", description="Ollama server for Aider.")
    num_ctx: int = Field(8192, ge=512, description="Fixed context size for Ollama, so it never reloads the "
                                                  "model between requests.")
    command: list[str] = Field(
        [], example=["my-agent", "--task-file", "{task_file}", "--workdir", "{worktree}"],
        description="argv template for agent = \"command\"; placeholders "
                    + ", ".join("{%s}" % p for p in COMMAND_PLACEHOLDERS) + ".")

    num_workers: int = Field(14, ge=1, le=256, section=Section("The fleet"),
                             description="Agents running at once, each in its own git worktree (`gasworks run "
                                         "--workers` for one run).")
    worktree_placement: Literal["inside", "sibling"] = Field(
        "inside", description="inside: worktrees/w1..wN in the repository; sibling: ../<worktree_prefix>1..N.")
    worktree_prefix: str = Field("", description="Name stem of sibling worktrees (empty: <repository name>-w).")
    branch: str = Field("", example="main", description="The branch agents start from and finished work is merged "
                                                        "into (empty: the branch checked out when the first run "
                                                        "started, kept in .gasworks/target); it must exist.")
    auto_merge_worktrees: bool = Field(True, description="Merge finished branches into the target branch (false: "
                                                         "close the task, leave the branch).")

    gate: list[list[str]] = Field(
        [], example=[["pytest", "-q"]], section=Section(
            "The merge queue", "Each branch is tried against the tip without touching a worktree, then merged (or "
                               "rebased) onto it in .gasworks/integration, the gate run there, and exactly the "
                               "tested commit lands. Several branches can share one gate run."),
        description="Commands that must pass before a branch lands, each an argv list, run in the integration "
                    "worktree (none: no gate). A program that cannot be found stops `gasworks run` at the "
                    "start.")
    gate_timeout: float = Field(1800.0, gt=0, description="Seconds one gate command may run.")
    merge_strategy: Literal["merge", "rebase"] = Field(
        "merge", description="merge: a merge commit on the tip; rebase: the branch's commits replayed on it.")
    merge_batch_size: int | Literal["auto"] = Field(
        1, description="Branches gated together: 1 to 32 (1: one at a time), or \"auto\": sized from the failure "
                       "rate.")
    gate_workers: int = Field(1, ge=1, le=16, description="Gates run at once, each on the speculated result of the "
                                                          "branches ahead of it (tip + batch 1, + batch 2, ...).")
    pregate: bool | Literal["auto"] = Field(
        False, description="Gate each finished branch, merged onto the tip, in its agent's own worktree before it "
                           "enters the merge queue; a failure goes back at once. \"auto\": when the measured "
                           "failure rate makes it pay (see `gasworks merges`).")
    review: bool = Field(False, description="Each finished (and pre-gated) branch waits for a human's `gasworks "
                                            "approve` before it enters the merge queue (`reject --note` sends it "
                                            "back); a task labelled `review` waits even when this is false.")

    store: str = Field(
        "", example="postgresql://gasworks@db-host/gasworks",
        section=Section("Several hosts", "Several hosts on one queue: each runs `gasworks run --host-id NAME` in "
                                         "its own clone, all with the same PostgreSQL `store` and the same git "
                                         "`remote`; branches are pushed there and one refinery at a time (a "
                                         "PostgreSQL advisory lock) moves the target there with a lease check."),
        description="Where tasks live: a postgresql:// URL shared by several hosts (pip install "
                    "'gasworks[postgres]'); empty: .gasworks/gasworks.db in this repository.")
    remote: str = Field("", example="origin", description="A git remote shared by several hosts: finished branches "
                                                          "are pushed there and the target moves there; empty: this "
                                                          "repository only.")
    host_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,40}$",
                         description="This host's name among several on one store (letters, digits, . _ -; "
                                     "`gasworks run --host-id` for one run).")
    store_keepalive: float = Field(30.0, ge=0, description="PostgreSQL store: seconds a host's connection may sit "
                                   "silent before the server probes it, so a host that vanished (power loss, cable) "
                                   "lets go of the refinery lock in about twice this; 0: the server's own setting "
                                   "(often 2 hours).")

    tracker: Literal["auto", "gasworks", "beads"] = Field(
        "auto", section=Section("Beads as the tracker"),
        description="Where tasks live: \"beads\" (the bd CLI), \"gasworks\" (its own store in .gasworks/; keep a "
                    ".beads/issues.jsonl in step with `gasworks import` and `gasworks export`), or \"auto\": bd "
                    "when the repository has .beads/ and bd is installed.")
    bd_cmd: list[str] = Field(["bd"], description="How to start bd (argv, or a string split like a shell would, "
                                                  "but never run by one).")
    bd_sync: bool = Field(True, description="With bd as the tracker: run `bd sync` once when `gasworks run` ends "
                                            "(bd versions that have it).")

    prefix: str = Field("gw", section=Section("Tasks"),
                        description="Prefix of new task ids: gw gives gw-a1b2 (children gw-a1b2.1). Unset: the "
                                    "prefix most of the newest 1,000 tasks carry (bd after importing bd-* issues), "
                                    "else gw.")
    lease_seconds: float = Field(900.0, gt=0, description="Lifetime of a claim unless its holder renews it. A "
                                                          "running agent's claim is renewed; claims of dead agents "
                                                          "expire and the task goes back to open.")
    max_suggestions_per_task: int = Field(5, ge=0, description="Follow-up ideas (lines agents append to "
                                                               "suggested_tasks.txt) taken from one attempt.")
    max_suggested_backlog: int = Field(200, ge=0, description="Open suggested tasks at most; more are dropped.")
    conflict_aware: bool = Field(True, description="Do not run two tasks whose `files:` labels overlap at once "
                                                   "while other ready work exists.")

    attempt_timeout: float = Field(1800.0, ge=0, section=Section("Time limits and retries"),
                                   description="Seconds an attempt may run (0: no limit).")
    grace_seconds: float = Field(30.0, ge=0, description="After the first Ctrl+C, how long running agents "
                                                        "may finish before they are stopped.")
    max_attempts: int = Field(3, ge=1, description="Failed attempts before a task is blocked with the label "
                                                   "needs-human.")
    max_conflict_rounds: int = Field(3, ge=1, le=100, description="Merge-conflict resolutions of one branch in "
                                                                  "a row that did not take the target in; when it "
                                                                  "conflicts again after that many, its task is "
                                                                  "blocked with the label needs-human.")
    retry_backoff: float = Field(10.0, ge=0, description="Seconds a failed task waits before its next attempt, "
                                                          "doubled after each failure.")
    retry_backoff_max: float = Field(600.0, ge=0, description="The longest such wait.")
    stall_timeout: float = Field(600.0, ge=0, description="Stop an agent after this many seconds with no log "
                                                          "output and no file change (0: never).")
    breaker_seconds: float = Field(30.0, ge=0, description="When the model endpoints stop answering, claim no "
                                                           "tasks for this long, then check them again.")
    until_done_patience: float = Field(600.0, ge=0, description="With --until-done: how long the run waits for "
                                                                "model endpoints that stopped answering (or a full "
                                                                "log folder) before it ends and says so.")

    sandbox: Literal["none", "bwrap"] = Field(
        "none", section=Section("Sandbox"),
        description="bwrap: each agent's process tree sees the file system read-only (a private /tmp aside) and "
                    "may write only its own worktree; needs bubblewrap (Linux).")
    sandbox_writable: list[Path] = Field([], example=["~/.aider"], description="More folders sandboxed agents may "
                                                                               "write to.")
    max_file_mb: float = Field(100.0, gt=0, description="An attempt that writes or commits a file larger than "
                                                        "this many MiB fails; its work is not taken in.")

    create_bead_on_merge_conflict: bool = Field(
        True, section=Section("Keys of the classic dispatch_config.json", "Honoured here too, with their "
                                                                          "meaning."),
        description="A merge conflict becomes a task \"Resolve merge conflict\".")
    auto_retry_merge_on_conflict_close: bool = Field(
        True, description="Put the branch back in the merge queue when its conflict task closes.")
    merge_slot: str = Field(".gasworks/merge.lock", description="Lock file that makes merges one at a time.")
    repo_root: str = Field("", description="The repository; when set, it must be the one gasworks runs in.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return check_prefix(value)
        except InvalidValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if "://" in value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"{value.split('://')[0]}:// stores are not supported: use a postgresql:// URL or "
                             "a SQLite file path (empty: .gasworks/gasworks.db)")
        return value

    @field_validator("sandbox_writable")
    @classmethod
    def _home(cls, value: list[Path]) -> list[Path]:
        return [path.expanduser() for path in value]

    @field_validator("tracker", mode="before")
    @classmethod
    def _tracker(cls, value: Any) -> Any:
        if value not in ("auto", "gasworks", "beads"):
            raise ValueError("use \"auto\" (bd when the repository has .beads/ and bd is installed), \"gasworks\" "
                             "(its own store in .gasworks/) or \"beads\" (tasks live in bd)")
        return value

    @field_validator("aider_cmd", "bd_cmd", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            import shlex  # here, like string below: checks run only on values given

            value = shlex.split(value, posix=os.name != "nt")
        if not value:
            raise ValueError("must name a program")
        return value

    @field_validator("worktree_prefix")
    @classmethod
    def _stem(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it becomes a directory name)")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        # Aider's `ollama/` provider sends a varying context size; `ollama_chat/` is the one to use.
        return "ollama_chat/" + value[len("ollama/"):] if value.startswith("ollama/") else value

    @field_validator("command")
    @classmethod
    def _template(cls, value: list[str]) -> list[str]:
        import string

        for part in value:
            for _, name, _, _ in string.Formatter().parse(part):
                if name is not None and name not in COMMAND_PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}} (accepted: "
                                     + ", ".join("{%s}" % p for p in COMMAND_PLACEHOLDERS) + ")")
        return value

    @field_validator("gate", mode="before")
    @classmethod
    def _gate(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
            value = [value]  # one command given as a flat argv list
        if isinstance(value, list) and any(not command for command in value):
            raise ValueError("each gate command must be a non-empty argv list, e.g. [[\"pytest\", \"-q\"]]")
        return value

    @field_validator("merge_batch_size")
    @classmethod
    def _batch(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= int(value) <= 32:
            raise ValueError("use a number from 1 to 32, or \"auto\"")
        return value

    def worktree_stem(self, root: Path) -> str:
        return self.worktree_prefix or f"{root.name}-w"


def _describe(problems: list[Problem], origins: Mapping[str, str]) -> str:
    messages = []
    for problem in problems:
        key, inside = str(problem.loc[0]), "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                                                   for part in problem.loc[1:])
        where = origins.get(key, "default")
        if problem.unknown and not inside:
            messages.append(f"{where}: unknown key {key!r} (accepted keys: {', '.join(problem.value)})")
        elif problem.unknown:
            messages.append(f"{where}: key {key!r}: unknown key {inside.rpartition('.')[2]!r} in {key}"
                            f"{inside.rpartition('.')[0]} (accepted keys: {', '.join(problem.value)})")
        else:
            at = f" at {key}{inside}" if inside else ""
            messages.append(f"{where}: key {key!r}{at}: {problem.message} (got {problem.value!r})")
    return "; ".join(messages)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if _NOTHING_SET.fullmatch(text):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of settings")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in Config.keys():
            continue  # GASWORKS_ACTOR and friends are not settings
        try:
            values[key] = json.loads(raw) if raw.strip().startswith("[") else raw
        except json.JSONDecodeError as exc:
            raise ConfigError(f"environment (GASWORKS_*): {name} is not a valid JSON list: {exc}") from None
    return values


def load_config(root: Path, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None) -> Config:
    """Build the config for the repository at `root` from every layer, lowest first (`defaults`, a
    program's own defaults such as qwen-agent's agent = "aider", come below every file)."""
    root = Path(root)
    layers: list[tuple[str, dict[str, Any]]] = [("default", dict(defaults))] if defaults else []
    if (root / CLASSIC_CONFIG_FILE).exists():
        layers.append((str(root / CLASSIC_CONFIG_FILE), _read_json(root / CLASSIC_CONFIG_FILE)))
    if (root / CONFIG_FILE).exists():
        layers.append((str(root / CONFIG_FILE), _read_toml(root / CONFIG_FILE)))
    layers.append(("environment (GASWORKS_*)", _from_env(os.environ if env is None else env)))
    layers.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for source, values in layers:
        merged.update(values)
        origins.update(dict.fromkeys(values, source))
    try:
        return Config.validate(merged)
    except SettingsError as exc:
        raise ConfigError(_describe(exc.problems, origins)) from None


def set_value(root: Path, key: str, value: str) -> Path:
    """Set one top-level string key in gasworks.toml, keeping every other line and comment: the key's
    line is replaced, or the key is added above the first table. The file is checked as a whole
    before it replaces the old one (a temp file, then a rename); nothing is written when it fails."""
    path = Path(root) / CONFIG_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    setting = f"{key} = {json.dumps(value, ensure_ascii=False)}\n"  # a JSON string is a TOML basic string
    tables = [i for i, line in enumerate(lines) if line.lstrip().startswith("[")]
    top = tables[0] if tables else len(lines)
    found = [i for i in range(top) if re.match(rf"\s*{re.escape(key)}\s*=", lines[i])]
    if found:
        lines[found[0]] = setting
    else:
        if top and not lines[top - 1].endswith("\n"):
            lines[top - 1] += "\n"
        lines.insert(top, setting)
    text = "".join(lines)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        Config.validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; nothing was changed") from None
    except SettingsError as exc:
        raise ConfigError(_describe(exc.problems, {}) + "; nothing was changed") from None
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return path


HEADER = """\
gasworks configuration. Every key is optional; the value shown is the default.
Precedence: command-line flag > GASWORKS_<KEY> environment variable (lists as JSON) > this file > \
dispatch_config.json (the classic scripts' file, honoured as it is) > default."""


def template() -> str:
    """The gasworks.toml `gasworks init` writes: every key commented out, from Config's declarations."""
    return settings_template(Config, HEADER)


def keys_table() -> str:
    """The table of keys in README.md's Configuration section (`python -m gasworks.config` prints it)."""
    return markdown_table(Config)


if __name__ == "__main__":
    print(keys_table(), end="")
