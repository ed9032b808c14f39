"""Validated configuration. `gasworks.toml` in the repository root; errors name the key and what is accepted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gasworks.errors import ConfigError, InvalidValueError
from gasworks.ids import check_prefix

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE = "gasworks.toml"

TEMPLATE = """\
# gasworks configuration. Every key is optional; the value shown is the default.
# `gasworks --help` and the README explain each command.

# Prefix of new task ids: "gw" gives ids like gw-a1b2 (children gw-a1b2.1, gw-a1b2.2).
# prefix = "gw"

# How long a claim on a task lasts before it is released back to the queue (seconds),
# unless the agent holding it renews it. Claims of dead agents expire; none are lost.
# lease_seconds = 3600
"""


class Config(BaseModel):
    """Settings for one repository. Unknown keys are refused, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field("gw", description="Prefix of new task ids.")
    lease_seconds: float = Field(3600.0, gt=0, description="Lifetime of a claim unless renewed.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            return check_prefix(value)
        except InvalidValueError as exc:
            raise ValueError(str(exc)) from None


def describe_validation_error(source: str, error: ValidationError) -> str:
    problems = []
    accepted = ", ".join(Config.model_fields)
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(file)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r} (accepted keys: {accepted})")
        else:
            problems.append(f"key {key!r}: {item['msg']} (got {item.get('input')!r})")
    return f"{source}: " + "; ".join(problems)


def load_config(root: Path) -> Config:
    path = Path(root) / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None
