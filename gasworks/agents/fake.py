"""The fake agent: deterministic, shipped for tests, demos and benchmarks. It fakes only the intelligence.

With no instructions it writes `fake/<task-id>.txt` and commits. A fenced block tagged
`gasworks-fake` in the task description holding a JSON object scripts it:

    write        {path: content}  files to write (relative paths inside the worktree)
    append       {path: text}     text to append
    suggest      [lines]          follow-up ideas appended to suggested_tasks.txt
    sleep        seconds          wait before finishing
    hang         true             never exit (until stopped)
    spawn_child  true             start a long-lived child process, then go on
    no_commit    true             leave the changes uncommitted
    exit         code             exit with this code (after committing)

Given GASWORKS_RESOLVE_ONTO (a merge-conflict task), it merges that branch in instead and
resolves each conflict by keeping both sides.

With `endpoints` configured it depends on them as a model-backed agent does (its intelligence is
fake, its server is not): the run probes them first, and each attempt first asks one of them
for its model list, exiting 75 (the model is down) when none answers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gasworks.agents import AgentContext, LaunchSpec
from gasworks.config import Config

_BLOCK = re.compile(r"```gasworks-fake[ \t]*\r?\n(.*?)\r?\n[ \t]*```", re.DOTALL)
KNOWN = {"write", "append", "suggest", "sleep", "hang", "spawn_child", "no_commit", "exit"}


class FakeAgent:
    name = "fake"

    def __init__(self, config: Config) -> None:
        self.config = config

    def prepare(self, state_dir: Path) -> None:
        pass

    def probe_targets(self) -> list[dict]:
        return [endpoint.as_dict() for endpoint in self.config.endpoints]

    def healthy(self) -> bool:
        """Whether any endpoint answers (the dispatcher asks before it claims again)."""
        from gasworks.llm.probe import probe_all

        return not self.config.endpoints or any(p.ok for p in probe_all(self.probe_targets(), timeout=2.0))

    def close(self) -> None:
        pass

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        lists = [f"{e.url.rstrip('/')}{'/api/tags' if e.kind == 'ollama' else '/v1/models'}"
                 for e in self.config.endpoints]
        return LaunchSpec([sys.executable, "-m", "gasworks.agents.fake", str(ctx.task_file)],
                          {"GASWORKS_FAKE_ENDPOINTS": json.dumps(lists)} if lists else {})


def script_of(task_text: str) -> dict[str, Any]:
    match = _BLOCK.search(task_text)
    if not match:
        return {}
    script = json.loads(match.group(1))
    if not isinstance(script, dict) or set(script) - KNOWN:
        raise ValueError(f"gasworks-fake block: expected an object with keys from {sorted(KNOWN)}")
    return script


def _inside(worktree: Path, name: str) -> Path:
    path = (worktree / name).resolve()
    if not path.is_relative_to(worktree.resolve()):
        raise ValueError(f"refusing to write outside the worktree: {name}")
    return path


def run(task_file: Path, worktree: Path, task_id: str) -> int:
    from gasworks import git  # the agent's own commit, like a real agent's

    script = script_of(task_file.read_text(encoding="utf-8"))
    print(f"fake agent on {task_id}: {sorted(script) or 'default'}", flush=True)
    onto = os.environ.get("GASWORKS_RESOLVE_ONTO")
    if onto:  # a merge-conflict task: bring the target in and keep both sides
        resolve_by_union(worktree, onto)
        return int(script.get("exit", 0))
    writes = dict(script.get("write", {}))
    if "write" not in script and "append" not in script:
        writes[f"fake/{task_id}.txt"] = f"done by the fake agent: {task_id}\n"
    for name, content in writes.items():
        target = _inside(worktree, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    for name, text in script.get("append", {}).items():
        with open(_inside(worktree, name), "a", encoding="utf-8") as handle:
            handle.write(text)
    if script.get("suggest"):
        with open(worktree / "suggested_tasks.txt", "a", encoding="utf-8") as handle:
            handle.writelines(f"{line}\n" for line in script["suggest"])
    if script.get("spawn_child"):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("started a child process", flush=True)
    time.sleep(float(script.get("sleep", 0)))
    while script.get("hang"):
        time.sleep(1)
    if not script.get("no_commit") and git.is_dirty(worktree):
        git.commit_all(worktree, f"fake: {task_id}")
        print("committed", flush=True)
    return int(script.get("exit", 0))


def resolve_by_union(worktree: Path, onto: str) -> None:
    """Merge `onto` into the branch; where both sides changed the same lines, keep both (ours first)."""
    from gasworks import git

    merged, conflicts = git.merge_keeping_conflicts(worktree, onto, f"Merge {onto}, keeping both sides")
    for name in conflicts:
        path = worktree / name
        kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                if not line.startswith(("<<<<<<< ", "=======", ">>>>>>> "))]
        path.write_text("".join(kept), encoding="utf-8")
        print(f"resolved {name} by keeping both sides", flush=True)
    if not merged:
        git.commit_all(worktree, f"Merge {onto}, keeping both sides")
    print(f"merged {onto}", flush=True)


def endpoint_answers(urls: list[str]) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 servers, never a proxy
    for url in urls:
        try:
            with opener.open(url, timeout=2.0) as response:
                if response.status < 400:
                    return True
        except OSError:
            continue
    return False


def main() -> None:
    from gasworks.agents import ENDPOINT_DOWN_EXIT

    task_file = Path(sys.argv[1])
    urls = json.loads(os.environ.get("GASWORKS_FAKE_ENDPOINTS") or "[]")
    if urls and not endpoint_answers(urls):
        print(f"fake agent: no model endpoint answers ({', '.join(urls)})", file=sys.stderr, flush=True)
        sys.exit(ENDPOINT_DOWN_EXIT)
    worktree = Path(os.environ.get("GASWORKS_WORKTREE") or task_file.parent)
    task_id = os.environ.get("GASWORKS_TASK_ID", "unknown")
    try:
        code = run(task_file, worktree, task_id)
    except (ValueError, OSError) as exc:
        print(f"fake agent: {exc}", file=sys.stderr, flush=True)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
