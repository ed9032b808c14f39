"""Edit-and-test: how the built-in agent gets real work out of a small model.

When the task names the file to change, the agent does not ask the model to drive tools. It shows
the model the task, the tests the task gives and the file's current text, starts the answer for it
(a code block opening with the `def` line of the function the task names), and takes the code the
model writes: Python functions and classes replace their namesakes in the file or are appended,
other files are written whole. Then it runs the project's checks (the gate's commands) in the
worktree; on a failure it tries again, sampling afresh, with the failure's tail in the prompt, until
the checks pass or the tries run out. The model never touches the tests: files the task gives in
full (a fenced block after a line naming its path) are written by the agent as given.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gasworks import confined

FENCE = "```"
# A path-like word with an extension: calc.py, docs/usage.md, src/pkg/mod.py (not "e.g." or "1.0").
_PATH = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]*[A-Za-z_][\w-]*\.[A-Za-z]{1,8})(?![\w/-])")
# A call-like signature in the task: name(args), args without parentheses.
_SIGNATURE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(([^()\n]*)\)")
# A fenced block right after a line that names a path: the file the task gives in full.
_GIVEN = re.compile(r"^[^\n]*?`?((?:[\w-]+/)*[\w.-]+\.[A-Za-z]{1,8})`?[^\n]*\n```[\w+-]*\n(.*?)^```",
                    re.MULTILINE | re.DOTALL)
_BLOCK = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
KEYWORDS = {"print", "len", "range", "int", "str", "float", "list", "dict", "set", "open", "isinstance"}
TEXT_LIMIT = 3000  # characters of a file shown to the model


@dataclass
class EditPlan:
    """What an edit-and-test attempt works on, read from the task text."""

    target: str                                            # the file the model writes
    given: dict[str, str] = field(default_factory=dict)   # files the task gives in full (its tests)
    function: str = ""                                     # `name(args)` the task names, for the def line


def plan_edit(task: str, worktree: Path) -> EditPlan | None:
    """The edit plan for a task that names a file to change, else None (the tool loop takes it).
    Only the task's own part is read: the standing instructions after it name files too."""
    own = task.split("\nHow to work:")[0]
    given = {path: text for path, text in _GIVEN.findall(own) if _inside(worktree, path)}
    prose = _GIVEN.sub("", own)
    prose = _BLOCK.sub("", prose)
    targets = [p for p in _PATH.findall(prose) if p not in given and _inside(worktree, p)
               and not Path(p).name.startswith("test")]
    if not targets:
        return None
    target = next((p for p in targets if (worktree / p).is_file()), targets[0])
    if not target.endswith(".py") and (worktree / target).is_file() and \
            (worktree / target).stat().st_size > TEXT_LIMIT:
        return None  # written whole from a view of its start, it would lose its end: the tool loop edits it
    function = ""
    if target.endswith(".py"):
        for name, args in _SIGNATURE.findall(prose):
            if name not in KEYWORDS:
                function = f"{name}({args.strip()})"
                break
    return EditPlan(target, given, function)


def _inside(worktree: Path, path: str) -> bool:
    resolved = (worktree / path).resolve()
    return resolved.is_relative_to(worktree.resolve()) and ".git" not in Path(path).parts


def prefill(plan: EditPlan) -> str:
    """How the answer starts: a code block, and for a named function its def line (a small model
    then only has to write the body; without it, it wanders off into prose)."""
    language = "python" if plan.target.endswith(".py") else ""
    head = f"{FENCE}{language}\n"
    return head + f"def {plan.function}:" if plan.function else head


def prompt(task: str, plan: EditPlan, current: str | None, failure: str = "") -> str:
    """The user message: the task, the tests it gives, the file as it is now, the last failure."""
    own = task.split("\nHow to work:")[0].strip()
    parts = [own]
    if current is None:
        parts.append(f"{plan.target} does not exist yet: write it.")
    else:
        parts.append(f"The current {plan.target}:\n{FENCE}\n{current[:TEXT_LIMIT]}{FENCE}")
    if failure:
        parts.append(f"Your last change failed the checks:\n{FENCE}\n{failure}\n{FENCE}\nFix it.")
    what = "the functions to add or change" if plan.target.endswith(".py") else f"the whole new {plan.target}"
    parts.append(f"Reply with one code block that holds {what}, and nothing else.")
    return "\n\n".join(parts)


def code_of(reply: str, start: str) -> str:
    """The code in a reply that went on from `start`: servers return the prefill with the reply
    (llama.cpp), or only what follows it (Ollama), or ignore it and answer with a block of their own."""
    text = reply if FENCE in reply else start + reply
    found = _BLOCK.search(text)
    return found.group(1) if found else text


class EditError(ValueError):
    """The model's code cannot be applied (not Python, nothing usable in it)."""


def merge_python(current: str, code: str, wanted: str = "") -> str:
    """`current` with the functions and classes of `code` in it: each replaces its namesake or is
    appended; new imports go on top. Tests and example calls the model adds are left out, and with
    a `wanted` name, every definition that name does not use (small models ramble on)."""
    try:
        new = ast.parse(code)
        ast.parse(current)
    except SyntaxError as exc:
        raise EditError(f"not valid Python: {exc.msg} (line {exc.lineno})") from None
    lines = code.splitlines(keepends=True)
    result, imports, added = current, [], 0
    kept = _used_by(new, wanted) if wanted else None
    for node in new.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            statement = ast.get_source_segment(code, node) or ""
            if statement not in result and "unittest" not in statement:
                imports.append(statement + "\n")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not _is_test(node) \
                and (kept is None or node.name in kept):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            result = _put(result, node.name, "".join(lines[first - 1:node.end_lineno]).rstrip() + "\n")
            added += 1
    if not added:
        raise EditError("the reply holds no function or class")
    return "".join(imports) + result


def _used_by(module: ast.Module, name: str) -> set[str]:
    """`name` and the top-level definitions it uses, directly or not."""
    defined = {n.name: n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    if name not in defined:
        return set(defined)  # it named something else: keep what it wrote
    kept, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in kept or current not in defined:
            continue
        kept.add(current)
        todo += [n.id for n in ast.walk(defined[current]) if isinstance(n, ast.Name)]
    return kept


def _is_test(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef) and any("TestCase" in ast.unparse(base) for base in node.bases) \
        or getattr(node, "name", "").startswith("test")


def _put(text: str, name: str, source: str) -> str:
    """`text` with the top-level definition `name` replaced by `source`, or `source` appended."""
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            lines = text.splitlines(keepends=True)
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            return "".join(lines[:first - 1]) + source + "".join(lines[node.end_lineno:])
    body = text.rstrip("\n")
    return f"{body}\n\n\n{source}" if body else source


def apply(worktree: Path, plan: EditPlan, code: str) -> None:
    """Write the model's code into the target file (merged for Python, whole otherwise)."""
    # Never through a link: the checks ran the model's last code, which may have put one at the
    # file or a folder above it (to have gasworks read or write outside the worktree).
    current = confined.read_text(worktree, plan.target) or ""
    wanted = plan.function.split("(")[0]
    text = merge_python(current, code, wanted) if plan.target.endswith(".py") else code
    if not text.strip():
        raise EditError("the reply holds no text for the file")
    confined.write_text(worktree, plan.target, text if text.endswith("\n") else text + "\n")


def run_checks(worktree: Path, checks: list[list[str]], timeout: float, limit: int = 1500) -> tuple[bool, str]:
    """Each check command in the worktree; (all passed, the first failing one's output tail)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ for the commit to pick up
    for argv in checks:
        try:
            done = subprocess.run(argv, cwd=worktree, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return False, f"$ {' '.join(argv)}: timed out after {timeout:g} s"
        except OSError as exc:
            return False, f"$ {' '.join(argv)}: cannot start: {exc.strerror or exc}"
        if done.returncode != 0:
            return False, (done.stdout + done.stderr)[-limit:].strip()
    return True, ""
