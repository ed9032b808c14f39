"""`inspect`, loaded on first real use, for the processes that must start fast (the CLI, the fake agent).

click cleans every option's help with `inspect.cleandoc` as the commands are declared, and
dataclasses imports inspect too; neither asks anything else of it unless help is shown or a class
has no docstring. Loading inspect (with ast, dis and tokenize) is about a sixth of a quick command's
start-up. `defer_inspect()` puts a stand-in in its place that has `cleandoc` and, for any other
name, loads the real module, from then on passing every name on to it (it takes the real module's
names as its own, so modules holding the stand-in see the real functions).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

# inspect.cleandoc below is the standard library's from Python 3.10 to 3.12; later versions get the real one.
_SAME_CLEANDOC = sys.version_info < (3, 13)


class _Deferred(types.ModuleType):
    """The stand-in for `inspect`: anything but cleandoc loads the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_load(self), name)


def _load(standin: types.ModuleType) -> types.ModuleType:
    if sys.modules.get("inspect") is standin:
        del sys.modules["inspect"]
    real = importlib.import_module("inspect")
    standin.__dict__.update(real.__dict__)
    return real


def cleandoc(doc: str) -> str | None:
    """inspect.cleandoc: the indentation common to the lines after the first removed, the first
    line's leading whitespace removed, and blank lines at either end dropped."""
    try:
        lines = doc.expandtabs().split("\n")
    except UnicodeError:
        return None
    margin = sys.maxsize
    for line in lines[1:]:
        content = len(line.lstrip())
        if content:
            margin = min(margin, len(line) - content)
    if lines:
        lines[0] = lines[0].lstrip()
    if margin < sys.maxsize:
        lines[1:] = [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def defer_inspect() -> None:
    """The stand-in as `inspect`, unless inspect is loaded already (or the Python is newer than the
    cleandoc copied here)."""
    if "inspect" in sys.modules or not _SAME_CLEANDOC:
        return
    spec = importlib.util.find_spec("inspect")  # found, not run: what the import system asks of a module
    standin = _Deferred("inspect", "The standard library's inspect, loaded on first use (gasworks.deferred).")
    standin.__spec__ = spec
    standin.__loader__ = spec.loader if spec else None
    standin.__package__ = ""
    standin.cleandoc = cleandoc  # type: ignore[attr-defined]
    sys.modules["inspect"] = standin
