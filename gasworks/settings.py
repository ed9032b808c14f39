"""Declared, validated settings in the standard library: what config.py's models are made of.

Every command loads the config, and the quick ones (`gasworks ready`, the fake agent) answer in a
few tens of milliseconds, so the checks here do not import pydantic. A `Settings` subclass is
declared as a pydantic model would be (`name: type = Field(default, ge=..,
description=..)`, `@field_validator`), and it reads values the way the config layers give them,
like pydantic's lax mode: TOML and JSON values as they are, environment variables as text ("4" for
a number, "true" for a flag, a JSON list). A bad value or an unknown key raises SettingsError,
which lists every `Problem`: where (the key, then inside a list or table), what is accepted, and
what was given. `template()` writes a class's settings out as a commented TOML file, from their
declarations: sections, descriptions, defaults, accepted values and examples.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")
_BOUNDS = (("gt", "greater than", lambda v, b: v > b), ("ge", "greater than or equal to", lambda v, b: v >= b),
           ("le", "less than or equal to", lambda v, b: v <= b))


class Problem(NamedTuple):
    loc: tuple[str | int, ...]  # the key, then list indexes and table keys inside it
    message: str
    value: Any
    unknown: bool = False  # the key itself is not a setting (value is then the list of accepted keys)


class SettingsError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems))
        self.problems = problems


class _Validator(NamedTuple):
    func: Callable[..., Any]
    names: tuple[str, ...]
    before: bool


_REQUIRED = object()


class Section(NamedTuple):
    """A group of settings in the template: its heading, and what to know about all of them."""

    title: str
    note: str = ""


class _Field(NamedTuple):
    default: Any = _REQUIRED
    description: str = ""
    bounds: tuple[tuple[str, float], ...] = ()
    pattern: str | None = None
    example: Any = _REQUIRED  # a value worth showing besides the default
    section: Section | None = None  # this setting opens a section; those after it belong to it


class _Spec(NamedTuple):
    name: str
    hint: Any
    field: _Field
    before: tuple[Callable[..., Any], ...]
    after: tuple[Callable[..., Any], ...]


def _hint(hint: Any, module: dict[str, Any]) -> Any:
    """An annotation's value, as eval gives it; a bare name (int, str: most settings) is looked up in
    the module, then the builtins, without compiling it (every command declares the settings)."""
    if not isinstance(hint, str):
        return hint
    if hint.isidentifier() and hint in module:
        return module[hint]
    if hint.isidentifier() and hint in vars(builtins):
        return vars(builtins)[hint]
    return eval(hint, module)  # noqa: S307


def Field(default: Any = _REQUIRED, *, description: str = "", gt: float | None = None,  # noqa: N802
          ge: float | None = None, le: float | None = None, pattern: str | None = None, example: Any = _REQUIRED,
          section: Section | None = None) -> Any:
    """A setting's default (a list is copied for each instance), bounds (numbers), pattern (text)
    and meaning; for the template, an example value and the section it opens."""
    bounds = tuple((name, limit) for name, limit in (("gt", gt), ("ge", ge), ("le", le)) if limit is not None)
    return _Field(default, description, bounds, pattern, example, section)


def field_validator(*names: str, mode: Literal["before", "after"] = "after") -> Callable[[Any], _Validator]:
    """Check or normalise the named settings: `before` on the value as given, `after` on the value
    once its type is checked. The function (a classmethod) raises ValueError with what is accepted."""
    def mark(method: Any) -> _Validator:
        return _Validator(getattr(method, "__func__", method), names, mode == "before")
    return mark


class Settings:
    """Base of a group of settings: each annotated class attribute is one, and an instance is frozen,
    made with keyword arguments only, every value given checked (`Cls(**values)`);
    `Cls.validate(values)` also turns unknown and missing keys into Problems."""

    __specs__: tuple[_Spec, ...] = ()
    fields_set: frozenset[str] = frozenset()  # set per instance: the keys given, not defaulted

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validators = [v for v in vars(cls).values() if isinstance(v, _Validator)]
        module = vars(sys.modules[cls.__module__])
        specs = []
        for name, hint in vars(cls).get("__annotations__", {}).items():
            declared = vars(cls).get(name, _REQUIRED)
            specs.append(_Spec(name, _hint(hint, module),
                               declared if isinstance(declared, _Field) else _Field(declared),
                               tuple(v.func for v in validators if name in v.names and v.before),
                               tuple(v.func for v in validators if name in v.names and not v.before)))
        cls.__specs__ = tuple(specs)

    def __init__(self, **values: Any) -> None:
        unknown = [key for key in values if key not in self.keys()]
        missing = [s.name for s in self.__specs__ if s.field.default is _REQUIRED and s.name not in values]
        if unknown or missing:
            raise TypeError(f"{type(self).__name__}: unknown {unknown}, missing {missing}")
        problems: list[Problem] = []
        for name, hint, field, before, after in self.__specs__:
            if name not in values:  # a default is what it is declared to be, unchecked (as in pydantic)
                object.__setattr__(self, name, field.default.copy() if isinstance(field.default, list)
                                   else field.default)
                continue
            given = values[name]
            try:
                value = given.copy() if isinstance(given, list) else given
                for check in before:
                    value = check(type(self), value)
                value = _coerce(hint, value, (name,))
                _check_limits(field, value)
                for check in after:
                    value = check(type(self), value)
            except SettingsError as exc:
                problems.extend(exc.problems)
            except ValueError as exc:
                problems.append(Problem((name,), str(exc), given))
            else:
                object.__setattr__(self, name, value)
        if problems:
            raise SettingsError(problems)
        object.__setattr__(self, "fields_set", frozenset(values))  # the keys given, not defaulted

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: make a new one")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, spec.name) for spec in self.__specs__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{s.name}={getattr(self, s.name)!r}' for s in self.__specs__)})"

    def as_dict(self) -> dict[str, Any]:
        return {spec.name: getattr(self, spec.name) for spec in self.__specs__}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(spec.name for spec in cls.__specs__)

    @classmethod
    def default(cls, name: str) -> Any:
        """The declared default of a setting (for code that must agree with it without an instance)."""
        return next(spec.field.default for spec in cls.__specs__ if spec.name == name)

    @classmethod
    def validate(cls, values: Mapping[str, Any]) -> Any:
        """An instance from a mapping of settings (a TOML table, merged config layers), every
        problem in one SettingsError: unknown keys, missing required ones, bad values."""
        keys = cls.keys()
        problems = [Problem((key,), "unknown key", keys, unknown=True) for key in values if key not in keys]
        missing = [Problem((s.name,), "missing: this key is required", dict(values)) for s in cls.__specs__
                   if s.field.default is _REQUIRED and s.name not in values]
        try:
            made = None if missing else cls(**{key: value for key, value in values.items() if key in keys})
        except SettingsError as exc:
            problems += exc.problems
        if problems or missing:
            raise SettingsError(problems + missing)
        return made


def template(cls: type[Settings], header: str, width: int = 96) -> str:
    """The settings of `cls` as a TOML file that sets nothing: `header`, then each section's heading
    and note, and for each setting its description, `# key = default` with what is accepted, and
    `# e.g. key = example` where an example is declared. Every line is a comment or blank."""
    lines = _comment(header, width)
    for spec in cls.__specs__:
        field = spec.field
        if field.section is not None:
            lines += ["", "", f"# -- {field.section.title} ".ljust(width, "-")]
            lines += _comment(field.section.note, width)
        lines += ["", *_comment(field.description, width)]
        accepted = accepted_values(spec)
        shown = f"# {spec.name} = {toml_value(field.default)}" if field.default is not _REQUIRED else f"# {spec.name} ="
        lines.append(f"{shown}  # {accepted}" if accepted else shown)
        if field.example is not _REQUIRED:
            lines.append(f"# e.g. {spec.name} = {toml_value(field.example)}")
    return "\n".join(lines) + "\n"


def markdown_table(cls: type[Settings]) -> str:
    """The settings of `cls` as a Markdown table of key, default and meaning (for a README)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "&lt;")

    rows = ["| key | default | meaning |", "|---|---|---|"]
    for spec in cls.__specs__:
        accepted = accepted_values(spec)
        meaning = spec.field.description + (f" Accepted: {accepted}." if accepted else "")
        rows.append(f"| `{spec.name}` | `{toml_value(spec.field.default)}` | {cell(meaning)} |")
    return "\n".join(rows) + "\n"


def accepted_values(spec: _Spec) -> str:
    """What a setting accepts, in a few words, when its declaration says more than its type: the
    choices of a Literal, the range of a bounded number."""
    if typing.get_origin(spec.hint) is Literal:
        return _choices(typing.get_args(spec.hint), toml_value)
    bounds = {name: _number(limit) for name, limit in spec.field.bounds}
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']} to {bounds['le']}"
    words = {"ge": "at least", "gt": "more than", "le": "at most"}
    return ", ".join(f"{words[name]} {limit}" for name, limit in bounds.items())


def toml_value(value: Any) -> str:
    """`value` written as TOML: a whole float as a whole number, a path or text as a basic string, a
    group of settings as an inline table."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, Settings):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


def _comment(text: str, width: int) -> list[str]:
    import textwrap

    return [f"# {line}".rstrip() for paragraph in text.split("\n")
            for line in (textwrap.wrap(paragraph, width - 2, break_on_hyphens=False) or [""])] if text else []


def _choices(options: tuple[Any, ...], show: Callable[[Any], str] = repr) -> str:
    shown = [show(option) for option in options]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _coerce(hint: Any, value: Any, loc: tuple[str | int, ...]) -> Any:
    """`value` as type `hint`, converted where the layers give text; ValueError says what is accepted."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        options = typing.get_args(hint)
        if any(value == option and type(value) is type(option) for option in options):
            return value
        raise ValueError(f"Input should be {_choices(options)}")
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(typing.get_args(hint), value, loc)
    if origin is list:
        return _coerce_list(typing.get_args(hint)[0], value, loc)
    if isinstance(hint, type) and issubclass(hint, Settings):
        return _coerce_settings(hint, value, loc)
    if hint in _SCALARS:
        return _SCALARS[hint](value)
    raise TypeError(f"no check for settings of type {hint!r}")


def _coerce_union(members: tuple[Any, ...], value: Any, loc: tuple[str | int, ...]) -> Any:
    exact = [m for m in members
             if type(value) is m or (typing.get_origin(m) is Literal and value in typing.get_args(m))]
    expected = []
    for member in exact + [m for m in members if m not in exact]:
        try:
            return _coerce(member, value, loc)
        except ValueError as exc:
            expected.append(str(exc).removeprefix("Input should be "))
    raise ValueError(f"Input should be {' or '.join(expected)}")


def _coerce_list(item: Any, value: Any, loc: tuple[str | int, ...]) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("Input should be a valid list")
    items, problems = [], []
    for index, element in enumerate(value):
        try:
            items.append(_coerce(item, element, (*loc, index)))
        except SettingsError as exc:
            problems.extend(exc.problems)
        except ValueError as exc:
            problems.append(Problem((*loc, index), str(exc), element))
    if problems:
        raise SettingsError(problems)
    return items


def _coerce_settings(cls: type[Settings], value: Any, loc: tuple[str | int, ...]) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"Input should be a table of {', '.join(cls.keys())}")
    try:
        return cls.validate(value)
    except SettingsError as exc:
        raise SettingsError([p._replace(loc=(*loc, *p.loc)) for p in exc.problems]) from None


def _check_limits(field: _Field, value: Any) -> None:
    for name, words, holds in _BOUNDS:
        limit = dict(field.bounds).get(name)
        if limit is not None and isinstance(value, (int, float)) and not holds(value, limit):
            raise ValueError(f"Input should be {words} {limit}")
    pattern = field.pattern
    if pattern and isinstance(value, str) and not re.search(pattern, value):
        raise ValueError(f"String should match pattern '{pattern}'")


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("Input should be a valid boolean (true or false)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, not true or false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError("Input should be a valid integer, got a number with a fractional part")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError("Input should be a valid integer, unable to parse string as an integer" if isinstance(value, str)
                     else "Input should be a valid integer")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError("Input should be a valid number, unable to parse string as a number") from None
    raise ValueError("Input should be a valid number")


def _to_path(value: Any) -> Path:
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise ValueError("Input should be a valid path")


_SCALARS: dict[Any, Callable[[Any], Any]] = {str: _to_str, bool: _to_bool, int: _to_int, float: _to_float,
                                             Path: _to_path}
