"""Hostile and malformed input: text is stored and shown as given, never run, never a path or a branch;
a malformed file is one clear line naming the file and the line, and nothing of it is written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gasworks import git
from gasworks.ingest import SUGGESTIONS_FILE, parse_suggestions
from gasworks.project import init_project
from tests.conftest import Cli, run_gasworks
from tests.fleet import fake_script

MEGABYTE = 1024 * 1024
HOSTILE_TITLES = [
    "$(touch pwned)", "`touch pwned`", "a; touch pwned", "a | tee pwned", "a && touch pwned #",
    "--help", "-p", "../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "gasworks/../../x",
    "first line\nsecond line", "windows\r\nline", "\ttabbed  and  spaced ", "'single' \"double\" \\back",
    "\u05e9\u05dc\u05d5\u05dd \u202eright-to-left\u202c \u0645\u0631\u062d\u0628\u0627",
    "emoji \U0001f680\U0001f469\u200d\U0001f4bb \u2764\ufe0f", "line\u2028separator\u2029para\u0085next",
    "\x1b[31mred\x1b[0m \x07bell", "{task_file} {worktree} %s %(x)s",
]


def export(gw: Cli) -> str:
    return gw("export").stdout


def records(jsonl: str) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, filter(None, jsonl.split("\n")))}  # not splitlines(): see U+2028


def one_error_line(result, *needles: str) -> str:
    """The error is exactly one line on stderr that contains every needle."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gasworks: error: "), result.stderr
    for needle in needles:
        assert re.search(needle, lines[0]), (needle, lines[0])
    return lines[0]


def no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not list(root.rglob("pwned")), f"task text was run as a command under {root}"


def fresh_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    root = tmp_path / name
    git.init_repo(root)
    (root / "README.md").write_text("x\n", encoding="utf-8")
    git.commit_all(root, "initial")
    init_project(root)
    monkeypatch.chdir(root)
    return root


# -- text is stored and shown as given ---------------------------------------------------------


def test_hostile_titles_round_trip_through_create_show_list_export_and_import(gw, project_dir, tmp_path,
                                                                              monkeypatch):
    titles = [*HOSTILE_TITLES, "x" * MEGABYTE]
    ids = {gw("create", "-q", "--", title).stdout.strip(): title for title in titles}
    assert len(ids) == len(titles) and all(re.fullmatch(r"gw-[0-9a-z]{4,8}", task_id) for task_id in ids)
    for task_id, title in ids.items():
        assert gw.json("show", task_id)[0]["title"] == title
    assert {t["id"]: t["title"] for t in gw.json("list")} == ids
    exported = export(gw)
    assert {task_id: r["title"] for task_id, r in records(exported).items()} == ids
    (tmp_path / "tasks.jsonl").write_text(exported, encoding="utf-8", newline="")

    fresh_project(tmp_path, monkeypatch, "elsewhere")
    imported = gw.json("import", str(tmp_path / "tasks.jsonl"))
    assert imported["created"] == len(titles)
    assert export(gw) == exported
    no_pwned(tmp_path)


def test_text_mode_shows_control_characters_escaped_not_raw(gw):
    task_id = gw("create", "-q", "\x1b]0;owned\x07 \x1b[2J title").stdout.strip()
    shown = gw("show", task_id).stdout + gw("list").stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b]0;owned\\x07" in shown


def test_nul_from_a_jsonl_import_is_stored_as_given_and_shown_escaped(gw, project_dir, tmp_path):
    # SQLite keeps NUL inside TEXT when bound as a parameter; JSON carries it as \u0000; git never sees it.
    record = {"id": "gw-nul1", "title": "ti\x00tle", "description": "a\x00b\r\n", "labels": ["l\x00b"],
              "comments": [{"id": 1, "author": "x\x00y", "text": "c\x00d", "created_at": "2026-01-01T00:00:00Z"}],
              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    (tmp_path / "nul.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    gw("import", str(tmp_path / "nul.jsonl"))
    shown = gw.json("show", "gw-nul1")[0]
    assert (shown["title"], shown["description"], shown["labels"]) == ("ti\x00tle", "a\x00b\r\n", ["l\x00b"])
    assert shown["comments"][0]["text"] == "c\x00d"
    assert [t["title"] for t in gw.json("list", "--label", "l\x00b")] == ["ti\x00tle"]
    exported = export(gw)
    assert "\x00" not in exported and records(exported)["gw-nul1"]["comments"][0]["author"] == "x\x00y"
    assert "ti\\x00tle" in gw("show", "gw-nul1").stdout


def _awkward_text(size: int) -> str:
    unit = "crlf\r\nlone cr\rnul\x00byte \U0001f680 \u05e9\u05dc\u05d5\u05dd \u2028 $(touch pwned)\n"
    return (unit * (size // len(unit.encode("utf-8")) + 1))[:size]


def test_a_megabyte_description_file_with_nul_and_crlf_is_kept_byte_for_byte(gw, project_dir, tmp_path):
    text = _awkward_text(MEGABYTE)
    source = tmp_path / "description.txt"
    source.write_bytes(text.encode("utf-8"))
    from_file = gw("create", "-q", "from a file", "--description-file", str(source)).stdout.strip()
    from_stdin = gw("create", "-q", "from stdin", "--description-file", "-", input=text.encode("utf-8")).stdout.strip()
    for task_id in (from_file, from_stdin):
        assert gw.json("show", task_id)[0]["description"] == text
        assert "\\x00" in gw("show", task_id).stdout  # the text view escapes NUL, JSON has \u0000
    target = tmp_path / "out.jsonl"
    gw("export", "-o", str(target))
    on_disk = records(target.read_text(encoding="utf-8"))
    assert on_disk[from_file]["description"].encode("utf-8") == source.read_bytes()
    assert on_disk[from_stdin]["description"] == text
    assert '\\u0000' in target.read_text(encoding="utf-8") and "\x00" not in target.read_text(encoding="utf-8")
    no_pwned(tmp_path)


@pytest.mark.parametrize("via_stdin", [False, True])
def test_a_description_that_is_not_utf8_is_refused_naming_the_line(gw, project_dir, tmp_path, via_stdin):
    data = b"fine\nstill fine\nbad \xff byte\n"
    before = export(gw)
    if via_stdin:
        result = gw("create", "t", "--description-file", "-", input=data, code=1)
        one_error_line(result, r"stdin.*:3: not UTF-8")
    else:
        (tmp_path / "d.txt").write_bytes(data)
        result = gw("create", "t", "--description-file", str(tmp_path / "d.txt"), code=1)
        one_error_line(result, r"d\.txt:3: not UTF-8")
    assert export(gw) == before


@pytest.mark.parametrize("args, where", [
    (["create", "bad \udcff title"], "TITLE"),
    (["create", "t", "-d", "bad \udcff"], "--description"),
    (["create", "t", "-l", "ok,bad\udcff"], "--labels"),
    (["--actor", "bad\udcff", "create", "t"], "--actor"),
    (["show", "gw-\udcff"], "TASK_ID"),
    (["dep", "add", "gw-\udcff", "gw-x"], "TASK_ID"),
])
def test_command_line_text_that_is_not_utf8_is_one_clear_line(gw, args, where):
    before = export(gw)
    result = gw(*args, code=1)  # Linux hands undecodable argv bytes to Python as lone surrogates
    one_error_line(result, re.escape(where), "not UTF-8 text", r"0xff")
    assert export(gw) == before


def test_the_fleet_never_runs_task_text_and_names_branches_and_paths_by_id(gw, project_dir, tmp_path):
    shell = gw("create", "-q", "$(touch pwned) `touch pwned`; touch pwned | touch pwned", "-d",
               "$(touch pwned)\n" + fake_script(suggest=["$(touch pwned) follow-up", "bad\x00idea"])).stdout.strip()
    dashes = gw("create", "-q", "--", "--help").stdout.strip()
    path_like = gw("create", "-q", "../../../../tmp/pwned").stdout.strip()
    (tmp_path / "odd.jsonl").write_text(json.dumps({"id": "gw-odd1", "title": "two\nlines\x00 $(touch pwned)"})
                                        + "\n", encoding="utf-8")
    gw("import", str(tmp_path / "odd.jsonl"))

    result = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "2"], project_dir,
                          env={"GASWORKS_RETRY_BACKOFF": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = {t["id"]: t for t in gw.json("list", "--all")}
    assert {t["status"] for t in tasks.values()} == {"closed"}
    assert {t["title"] for t in tasks.values() if "suggested" in t.get("labels", [])} == {"$(touch pwned) follow-up"}
    no_pwned(tmp_path)
    assert not Path("/tmp/pwned").exists()

    merges = gw.json("merges", "--all")["recent"]
    assert {m["task_id"] for m in merges} == set(tasks) >= {shell, dashes, path_like, "gw-odd1"}
    assert all(m["branch"] == f"gasworks/{m['task_id']}" for m in merges)
    assert git.run(["branch", "--list", "--format=%(refname:short)"], project_dir).stdout.split() == ["main"]
    assert all(re.fullmatch(r"w\d+", p.name) for p in (project_dir / "worktrees").iterdir())
    logs = project_dir / ".gasworks" / "logs"
    assert {path.relative_to(logs).parts[0] for path in logs.rglob("*")} <= set(tasks) | {"merges"}
    messages = git.run(["log", "--format=%B", "main"], project_dir).stdout
    assert "Merge gasworks/gw-odd1: two \u23ce lines\\x00 $(touch pwned)" in messages


# -- malformed files: one line naming file and line, nothing written ---------------------------


@pytest.mark.parametrize("name, content, needles", [
    ("gasworks.toml", b'prefix = "gw"\nnum_workers = \n', [r"gasworks\.toml", "not valid TOML", "line 2"]),
    ("gasworks.toml", b'prefix = "gw"\nnum_workers = "many"\n', [r"gasworks\.toml", "'num_workers'", "'many'"]),
    ("gasworks.toml", b'prefix = "gw"\nmodel = "b\xffd"\n', [r"gasworks\.toml:2: ", "not UTF-8"]),
    ("dispatch_config.json", b'{\n  "num_workers": 3,\n  "model": \n}\n',
     [r"dispatch_config\.json:4: not valid JSON"]),
    ("dispatch_config.json", b'{\n  "num_workers": "many"\n}\n', [r"dispatch_config\.json", "'num_workers'"]),
    ("dispatch_config.json", b'{\n  "model": "b\xffd"\n}\n', [r"dispatch_config\.json:2: ", "not UTF-8"]),
])
def test_a_malformed_config_file_is_one_line_naming_file_and_line_or_key(gw, project_dir, name, content, needles):
    gw("create", "already here")
    before = export(gw)
    config = project_dir / name
    kept = config.read_bytes() if config.exists() else None
    config.write_bytes(content)
    one_error_line(gw("create", "never written", code=1), *needles)
    one_error_line(run_gasworks(["list"], project_dir), *needles)
    config.unlink()
    if kept is not None:
        config.write_bytes(kept)
    assert export(gw) == before


GOOD = '{"id":"gw-good1","title":"fine"}'


@pytest.mark.parametrize("bad_line, needle", [
    (b'{"id": "gw-bad1", "title": }', "not valid JSON"),
    (b'{"id": "gw-bad1"}', "field 'title' is missing"),
    (b'{"id": "gw-bad1", "title": "t", "priority": "high"}', "field 'priority' must be an integer"),
    (b'{"id": "gw-bad1", "title": "t", "priority": NaN}', "NaN"),
    (b'{"id": "gw-bad1", "title": "t", "metadata": {"x": Infinity}}', "Infinity"),
    (b'{"id": "gw-bad1", "title": "t", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
    (b'{"id": "gw-bad1", "title": "t", "x": ' + b"9" * 5000 + b"}", "number too long"),
    (b'{"id": "gw-bad1", "title": "lone \\udcff surrogate"}', "surrogate"),
    (b'{"id": "gw-bad1", "title": "t", "labels": ["ok", "\\ud800"]}', "surrogate"),
    (b'{"id": "gw-bad1", "title": "t", "comments": [{"id": [1], "text": "c"}]}', "comment"),
    (b'{"id": "gw-bad1", "title": "not \xff utf-8"}', "not UTF-8"),
])
def test_a_bad_beads_line_names_file_and_line_and_imports_nothing(gw, project_dir, tmp_path, bad_line, needle):
    gw("create", "already here")
    before = export(gw)
    path = tmp_path / "issues.jsonl"
    path.write_bytes(f"{GOOD}\n\n".encode() + bad_line + b"\n" + b'{"id":"gw-good2","title":"after"}\n')
    one_error_line(gw("import", str(path), code=1), r"issues\.jsonl:3: ", needle)
    assert export(gw) == before


def test_a_beads_record_without_an_id_gets_one_as_bd_import_does(gw, project_dir, tmp_path):
    path = tmp_path / "issues.jsonl"
    path.write_text(f'{GOOD}\n{{"title": "no id yet"}}\n', encoding="utf-8")
    assert gw.json("import", str(path))["created"] == 2
    assert sorted(t["title"] for t in gw.json("list")) == ["fine", "no id yet"]


def test_beads_and_queue_files_with_a_byte_order_mark_are_read(gw, project_dir, tmp_path):
    (tmp_path / "issues.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\r\n")
    (tmp_path / "task_queue.json").write_bytes(b'\xef\xbb\xbf[{"title": "from windows"}]\r\n')
    gw("import", str(tmp_path / "issues.jsonl"))
    gw("import", str(tmp_path / "task_queue.json"))
    assert sorted(t["title"] for t in gw.json("list")) == ["fine", "from windows"]


@pytest.mark.parametrize("content, needles", [
    (b'[\n  {"title": "a"},\n  {"title": "b",}\n]\n', [r"task_queue\.json:3: not valid JSON"]),
    (b'{\n  "tasks": {"title": "a"}\n}\n', [r"task_queue\.json:1: expected a JSON list"]),
    (b'[\n  {"title": "a"},\n  42\n]\n', [r"task_queue\.json:3: task #2: expected an object"]),
    (b'{"tasks": [\n  "a",\n\n  {"title": ["not", "text"]}\n]}\n', [r"task_queue\.json:4: task #2: no 'title'"]),
    (b'[\n  {"title": "a"},\n  {"title": "b", "priority": "high"}\n]\n', [r"task_queue\.json:3: task #2: .*'high'"]),
    (b'[\n  {"title": "a"},\n  {"title": "b\xff"}\n]\n', [r"task_queue\.json:3: not UTF-8"]),
    (b'[\n  {"title": "a"},\n  {"title": "\\udcff"}\n]\n', [r"task_queue\.json:3: task #2: .*surrogate"]),
    (b"[" * 100_000 + b"]" * 100_000, [r"task_queue\.json:1: .*nested"]),
])
def test_a_malformed_task_queue_names_file_and_line_and_imports_nothing(gw, project_dir, tmp_path, content,
                                                                        needles):
    gw("create", "already here")
    before = export(gw)
    (tmp_path / "task_queue.json").write_bytes(content)
    one_error_line(gw("import", str(tmp_path / "task_queue.json"), code=1), *needles)
    assert export(gw) == before


@pytest.mark.parametrize("content, needle", [
    (b"# Tasks\n\n## One\n\nbody\n\n## Tw\xffo\n", r"tasks\.md:7: not UTF-8"),
    (b"# Tasks\n\n## One\n\nbo\x00dy\n", r"tasks\.md:5: .*NUL"),
    (b"\xff\xfe#\x00 \x00T\x00\n\x00", r"tasks\.md:1: not UTF-8"),  # UTF-16, as Windows PowerShell writes it
])
def test_a_markdown_file_that_is_not_utf8_text_names_file_and_line(gw, project_dir, tmp_path, content, needle):
    gw("create", "already here")
    before = export(gw)
    (tmp_path / "tasks.md").write_bytes(content)
    one_error_line(gw("import", str(tmp_path / "tasks.md"), code=1), needle)
    assert export(gw) == before


@pytest.mark.parametrize("content, needle", [
    (b"Add logging\nbad \xff byte\nWrite docs\n", r"ideas\.txt:2: not UTF-8"),
    (b"Add logging\nWrite docs\nbad\x00idea\n", r"ideas\.txt:3: .*NUL"),
])
def test_a_malformed_suggestions_file_is_refused_and_left_as_it_was(gw, project_dir, content, needle):
    before = export(gw)
    ideas = project_dir / "ideas.txt"
    ideas.write_bytes(content)
    one_error_line(gw("ingest", "ideas.txt", code=1), needle)
    assert ideas.read_bytes() == content and export(gw) == before


def test_suggestions_an_agent_wrote_in_bad_bytes_are_dropped_not_garbled(project_dir):
    # What the dispatcher does when an agent exits: take the file back, then parse what it added.
    base = git.rev_parse(project_dir, "HEAD")
    (project_dir / SUGGESTIONS_FILE).write_bytes(b"Good idea\nbad \xff idea\nnul\x00idea\n")
    titles, dropped = parse_suggestions(git.take_file(project_dir, SUGGESTIONS_FILE, base))
    assert titles == ["Good idea"]
    assert dropped["not_utf8"] == 1 and dropped["control_characters"] == 1
    assert not (project_dir / SUGGESTIONS_FILE).exists()


def test_a_committed_suggestions_file_in_bad_bytes_does_not_stop_the_fleet(gw, project_dir):
    (project_dir / SUGGESTIONS_FILE).write_bytes(b"old idea\nbad \xff byte\n")
    git.commit_all(project_dir, "suggestions of old")
    task_id = gw("create", "-q", "work", "-d", fake_script(suggest=["new idea"])).stdout.strip()
    result = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "1"], project_dir)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    tasks = gw.json("list", "--all")
    assert {t["title"]: t["status"] for t in tasks} == {"work": "closed", "new idea": "closed"}
    assert gw.json("show", task_id)[0]["status"] == "closed"
    kept = subprocess.run(["git", "show", f"main:{SUGGESTIONS_FILE}"], cwd=project_dir, capture_output=True,
                          check=True).stdout
    assert kept == b"old idea\nbad \xff byte\n"  # the repository's own file is left alone


def test_errors_reach_a_real_terminal_as_one_line_without_traceback(project_dir, tmp_path):
    (tmp_path / "bad.jsonl").write_bytes(GOOD.encode() + b"\n{broken\n")
    result = run_gasworks(["import", str(tmp_path / "bad.jsonl")], project_dir)
    assert result.returncode == 1
    one_error_line(result, r"bad\.jsonl:2: not valid JSON")
    argv = subprocess.run([sys.executable, "-m", "gasworks", "create", "bad \udcff"], cwd=project_dir,
                          capture_output=True, text=True, timeout=60)
    assert argv.returncode == 1
    one_error_line(argv, "TITLE", "not UTF-8 text")
