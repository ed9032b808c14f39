"""What start-up skips or puts off gives what the long way gives: the stand-in for `inspect`
(gasworks/deferred.py), the names the model and store packages give from modules of their own, and
settings' annotations read without compiling them."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gasworks
from gasworks import deferred, models, store
from gasworks.store import board


def python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    env.update(GASWORKS_ACTOR="tester", PYTHONPATH=str(Path(gasworks.__file__).parents[1]), COLUMNS="100")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)


def docstrings() -> list[str]:
    """Every docstring of the package's modules, classes and functions, as written."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.walk_packages(gasworks.__path__, "gasworks."):
        if any(part in info.name for part in (".tui", ".web", ".eval", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for value in [module, *vars(module).values()]:
            for item in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                doc = getattr(item, "__doc__", None)
                if isinstance(doc, str):
                    found.append(doc)
    return found


EDGES = ["", "x", "  x  ", "\n", "\n\n  a\n   b\n\n", "a\n\tb\n\t\tc", "a\n  \n    b\n  c", "\u3000a\n\u3000\u3000b",
         " first\n\n    second\n      third\n", "a\r\n  b\r\n", "\x0ca\n \x0cb"]


@pytest.mark.skipif(not deferred._SAME_CLEANDOC, reason="the stand-in is not used on this Python")
def test_the_stand_ins_cleandoc_is_inspects():
    texts = docstrings() + EDGES
    assert len(texts) > 500
    for text in texts:
        assert deferred.cleandoc(text) == inspect.cleandoc(text), repr(text)


STAND_IN = """
import sys
from gasworks.deferred import defer_inspect
defer_inspect()
import click, dataclasses
standin = sys.modules["inspect"]
print(type(standin).__name__, click.core.inspect is standin, dataclasses.inspect is standin)

@dataclasses.dataclass
class NoDoc:  # dataclasses asks inspect.signature of a class without a docstring
    x: int

import inspect
print(NoDoc.__doc__, type(inspect).__name__, sys.modules["inspect"] is inspect)
print(standin.signature is inspect.signature, standin.cleandoc is inspect.cleandoc)
"""


@pytest.mark.skipif(not deferred._SAME_CLEANDOC, reason="the stand-in is not used on this Python")
def test_anything_but_cleandoc_loads_the_real_inspect_for_everyone():
    result = python(STAND_IN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["_Deferred True True", "NoDoc(x: int) module True", "True True"]


def test_the_stand_in_gives_the_real_modules_spec():
    result = python("import importlib.util, sys\nfrom gasworks.deferred import defer_inspect\ndefer_inspect()\n"
                    "spec = importlib.util.find_spec('inspect')\nimport inspect\n"
                    "print(spec.name, spec.origin == inspect.__file__, type(sys.modules['inspect']).__name__)")
    assert result.stdout.split() == ["inspect", "True", "module"], result.stderr


def test_an_inspect_already_loaded_is_left_alone():
    result = python("import inspect, sys\nfrom gasworks.deferred import defer_inspect\ndefer_inspect()\n"
                    "print(sys.modules['inspect'] is inspect)")
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.parametrize("args", [["--help"], ["create", "--help"], ["list", "--help"], ["update", "--help"],
                                  ["dep", "--help"], ["redy"], ["list", "-n", "x"]])
def test_the_cli_says_the_same_with_the_stand_in(args, project_dir):
    run_cli = "import sys\nsys.argv = ['gasworks', *sys.argv[1:]]\nfrom gasworks.cli import main\nmain()\n"
    deferred_run = python(run_cli, *args, cwd=project_dir)
    real_run = python("import inspect\n" + run_cli, *args, cwd=project_dir)
    assert (deferred_run.returncode, deferred_run.stdout, deferred_run.stderr) == \
        (real_run.returncode, real_run.stdout, real_run.stderr)
    assert deferred_run.stdout or deferred_run.stderr


def test_the_packages_give_what_loads_on_first_use():
    from gasworks import records
    from gasworks.models import Attempt, Event, Merge
    from gasworks.records.attempt import Attempt as Attempted
    from gasworks.records.event import Event as Happened
    from gasworks.records.merge import Merge as Merged
    from gasworks.store import ImportResult, NewTask
    from gasworks.store.board import BoardFilter
    from gasworks.store.board_filter import BoardFilter as Filter
    from gasworks.store.values import ImportResult as Result
    from gasworks.store.values import NewTask as New

    assert (Attempt, Event, Merge) == (records.Attempt, records.Event, records.Merge) == (Attempted, Happened, Merged)
    assert (NewTask, ImportResult, BoardFilter) == (New, Result, Filter)
    for package, name in ((models, "Attemp"), (records, "Events"), (store, "NewTasks"), (board, "Filter")):
        with pytest.raises(AttributeError, match=f"has no attribute '{name}'"):
            getattr(package, name)


def test_settings_hints_are_what_eval_gives():
    """Bare names are looked up without compiling them (settings._hint): each hint is eval's."""
    import sys as _sys

    from gasworks import config
    from gasworks.settings import Settings

    classes = [value for value in vars(config).values()
               if isinstance(value, type) and issubclass(value, Settings) and value is not Settings]
    assert len(classes) >= 2
    for cls in classes:
        module = vars(_sys.modules[cls.__module__])
        annotations = vars(cls)["__annotations__"]
        for spec in cls.__specs__:
            assert spec.hint == eval(annotations[spec.name], module), (cls, spec.name)  # noqa: S307
