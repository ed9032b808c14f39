"""gasworks.settings: values read as the config layers give them, every problem named, frozen results."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from gasworks.settings import Field, Section, Settings, SettingsError, field_validator, template


class Inner(Settings):
    url: str
    size: int = Field(4, ge=1, le=8)


class Sample(Settings):
    count: int = Field(2, ge=1, description="How many.")
    ratio: float = Field(0.5, gt=0)
    on: bool = True
    mode: Literal["fast", "slow"] = "fast"
    batch: int | Literal["auto"] = 1
    names: list[str] = Field([])
    paths: list[Path] = Field([])
    inners: list[Inner] = Field([])
    tag: str = Field("", pattern=r"^[a-z]*$")

    @field_validator("names", mode="before")
    @classmethod
    def _split(cls, value):
        return value.split() if isinstance(value, str) else value

    @field_validator("tag")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def problems_of(**values) -> dict[str, str]:
    with pytest.raises(SettingsError) as info:
        Sample.validate(values)
    return {".".join(map(str, p.loc)): p.message for p in info.value.problems}


def test_text_from_the_environment_becomes_the_declared_type():
    s = Sample.validate({"count": " 7 ", "ratio": "2.5", "on": "off", "batch": "3", "paths": ["a/b"]})
    assert (s.count, s.ratio, s.on, s.batch, s.paths) == (7, 2.5, False, 3, [Path("a/b")])
    assert Sample.validate({"batch": "auto"}).batch == "auto"
    assert Sample.validate({"count": 3.0}).count == 3


def test_validators_run_before_and_after_the_type_check():
    s = Sample.validate({"names": "a b", "tag": "xy"})
    assert (s.names, s.tag) == (["a", "b"], "XY")


def test_every_problem_is_named_with_what_is_accepted():
    found = problems_of(count=0, ratio="many", on="maybe", mode="warp", batch="x", tag="A!", colour=1)
    assert found["count"] == "Input should be greater than or equal to 1"
    assert "unable to parse string as a number" in found["ratio"]
    assert "valid boolean" in found["on"]
    assert found["mode"] == "Input should be 'fast' or 'slow'"
    assert "integer" in found["batch"] and "'auto'" in found["batch"]
    assert "pattern" in found["tag"]
    assert found["colour"] == "unknown key"


def test_integers_refuse_fractions_and_flags():
    assert "fractional" in problems_of(count=2.5)["count"]
    assert "integer" in problems_of(count=True)["count"]


def test_nested_tables_are_checked_with_their_place():
    found = problems_of(inners=[{"url": "u", "size": 9}, {"size": 2}, {"url": "v", "extra": 1}, "x"])
    assert found["inners.0.size"] == "Input should be less than or equal to 8"
    assert "required" in found["inners.1.url"]
    assert found["inners.2.extra"] == "unknown key"
    assert "table" in found["inners.3"]
    assert Sample.validate({"inners": [{"url": "u"}]}).inners == [Inner(url="u", size=4)]


def test_defaults_are_copied_and_results_are_frozen():
    a, b = Sample(), Sample()
    assert a == b and a.names is not b.names
    with pytest.raises(AttributeError):
        a.count = 3
    assert Sample(count=3) != a and Sample.keys()[0] == "count"
    assert Inner(url="u").as_dict() == {"url": "u", "size": 4}


class Documented(Settings):
    mode: Literal["fast", "slow"] = Field("fast", section=Section("Speed", "How fast it goes."),
                                          description="The pace, as a word.")
    count: int = Field(2, ge=1, le=8, description="How many.")
    ratio: float = Field(0.5, gt=0)
    where: Path = Field(Path("a/b"), section=Section("Places"), description="A folder.")
    names: list[str] = Field([], example=["a", "b"], description="Names.")
    inners: list[Inner] = Field([], example=[{"url": "u", "size": 2}])


def test_the_template_is_written_from_the_declarations():
    assert template(Documented, "Header, then the settings.", width=24) == "\n".join([
        "# Header, then the",
        "# settings.",
        "",
        "",
        "# -- Speed -------------",
        "# How fast it goes.",
        "",
        "# The pace, as a word.",
        '# mode = "fast"  # "fast" or "slow"',
        "",
        "# How many.",
        "# count = 2  # 1 to 8",
        "",
        "# ratio = 0.5  # more than 0",
        "",
        "",
        "# -- Places ------------",
        "",
        "# A folder.",
        '# where = "a/b"',
        "",
        "# Names.",
        "# names = []",
        '# e.g. names = ["a", "b"]',
        "",
        "# inners = []",
        '# e.g. inners = [{url = "u", size = 2}]',
    ]) + "\n"


def test_a_declared_default_is_read_from_the_class():
    assert (Sample.default("count"), Sample.default("mode"), Documented.default("where")) == (2, "fast", Path("a/b"))
