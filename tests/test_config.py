"""gasworks.config: layers, the classic dispatch_config.json, and errors that say where and what."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from gasworks import git
from gasworks.config import Config, load_config
from gasworks.errors import ConfigError
from gasworks.project import find_project, init_project
from gasworks.worktrees import target_branch


def write_json(root: Path, data) -> Path:
    path = root / "dispatch_config.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def write_toml(root: Path, text: str) -> Path:
    path = root / "gasworks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(root: Path, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(root, **{"env": {}, **kwargs})
    return str(info.value)


# -- precedence


def test_defaults_without_any_file(tmp_path):
    config = load_config(tmp_path, env={})
    assert config == Config()
    assert config.num_workers == 14
    assert config.worktree_placement == "inside"
    assert config.agent == "builtin" and config.endpoints == [] and config.embedded_model == "smollm2"


def test_each_layer_beats_the_ones_below(tmp_path):
    write_json(tmp_path, {"num_workers": 2, "model": "json-model", "branch": "json-branch", "prefix": "js"})
    write_toml(tmp_path, 'num_workers = 3\nmodel = "toml-model"\nbranch = "toml-branch"\n')
    env = {"GASWORKS_NUM_WORKERS": "4", "GASWORKS_MODEL": "env-model"}
    config = load_config(tmp_path, env=env, overrides={"num_workers": 5})
    assert config.num_workers == 5          # command line
    assert config.model == "env-model"      # environment
    assert config.branch == "toml-branch"   # gasworks.toml
    assert config.prefix == "js"            # dispatch_config.json
    assert config.max_attempts == 3         # default


def test_environment_beats_toml_and_toml_beats_json(tmp_path):
    write_json(tmp_path, {"num_workers": 2})
    write_toml(tmp_path, "num_workers = 3\n")
    assert load_config(tmp_path, env={}).num_workers == 3
    assert load_config(tmp_path, env={"GASWORKS_NUM_WORKERS": "4"}).num_workers == 4


def test_json_alone_beats_defaults(tmp_path):
    write_json(tmp_path, {"num_workers": 2})
    assert load_config(tmp_path, env={}).num_workers == 2


def test_override_of_none_keeps_the_lower_layer(tmp_path):
    write_toml(tmp_path, "num_workers = 3\n")
    assert load_config(tmp_path, env={}, overrides={"num_workers": None}).num_workers == 3


def test_env_list_value_is_parsed_as_json(tmp_path):
    config = load_config(tmp_path, env={"GASWORKS_AIDER_CMD": '["python", "-m", "aider"]'})
    assert config.aider_cmd == ["python", "-m", "aider"]


def test_gasworks_actor_in_env_is_ignored(tmp_path):
    config = load_config(tmp_path, env={"GASWORKS_ACTOR": "bob", "NUM_WORKERS": "7"})
    assert config == Config()
    assert "actor" not in Config.keys()


# -- the classic dispatch_config.json


def test_classic_dispatch_config_keys_are_honoured(tmp_path):
    write_json(tmp_path, {
        "num_workers": 6,
        "worktree_placement": "sibling",
        "worktree_prefix": "agent-",
        "branch": "develop",
        "auto_merge_worktrees": False,
        "create_bead_on_merge_conflict": False,
        "merge_slot": ".locks/merge",
        "auto_retry_merge_on_conflict_close": False,
        "model": "ollama_chat/llama3:8b",
        "aider_cmd": "aider --no-auto-commits --map-tokens '1024 x'",
        "repo_root": str(tmp_path),
    })
    config = load_config(tmp_path, env={})
    assert config.num_workers == 6
    assert config.worktree_placement == "sibling"
    assert config.worktree_prefix == "agent-"
    assert config.branch == "develop"
    assert config.auto_merge_worktrees is False
    assert config.create_bead_on_merge_conflict is False
    assert config.merge_slot == ".locks/merge"
    assert config.auto_retry_merge_on_conflict_close is False
    assert config.model == "ollama_chat/llama3:8b"
    assert config.aider_cmd == ["aider", "--no-auto-commits", "--map-tokens", "1024 x"]
    assert config.repo_root == str(tmp_path)


def test_aider_cmd_list_is_kept_as_is(tmp_path):
    write_json(tmp_path, {"aider_cmd": ["/opt/aider bin/aider", "--flag"]})
    assert load_config(tmp_path, env={}).aider_cmd == ["/opt/aider bin/aider", "--flag"]


def test_inside_placement_is_accepted(tmp_path):
    write_json(tmp_path, {"worktree_placement": "inside"})
    assert load_config(tmp_path, env={}).worktree_placement == "inside"


def test_worktree_stem_defaults_to_repo_name(tmp_path):
    assert Config().worktree_stem(tmp_path / "myrepo") == "myrepo-w"
    assert Config(worktree_prefix="agent-").worktree_stem(tmp_path / "myrepo") == "agent-"


# -- model and command


def test_ollama_model_becomes_ollama_chat(tmp_path):
    write_toml(tmp_path, 'model = "ollama/qwen2.5-coder:7b"\n')
    assert load_config(tmp_path, env={}).model == "ollama_chat/qwen2.5-coder:7b"


def test_other_model_names_are_kept(tmp_path):
    write_toml(tmp_path, 'model = "openai/gpt-4o"\n')
    assert load_config(tmp_path, env={}).model == "openai/gpt-4o"


def test_command_with_unknown_placeholder_is_refused(tmp_path):
    path = write_toml(tmp_path, 'agent = "command"\ncommand = ["my-agent", "--title", "{title}"]\n')
    message = error_of(tmp_path)
    assert str(path) in message
    assert "'command'" in message
    assert "{title}" in message
    for name in ("task_file", "worktree", "task_id", "slot", "attempt", "repo_root"):
        assert "{%s}" % name in message


def test_command_with_known_placeholders_is_accepted(tmp_path):
    argv = ["my-agent", "--task-file", "{task_file}", "--workdir={worktree}", "{task_id}", "{slot}",
            "{attempt}", "{repo_root}"]
    write_toml(tmp_path, f'agent = "command"\ncommand = {json.dumps(argv)}\n')
    config = load_config(tmp_path, env={})
    assert config.agent == "command"
    assert config.command == argv


# -- errors name the layer, the key and what is accepted


def test_unknown_key_in_dispatch_config_json(tmp_path):
    path = write_json(tmp_path, {"num_workers": 2, "num_wrokers": 3})
    message = error_of(tmp_path)
    assert str(path) in message
    assert "unknown key 'num_wrokers'" in message
    assert "num_workers" in message.split("accepted keys:")[1]


def test_unknown_key_in_toml(tmp_path):
    path = write_toml(tmp_path, 'agnet = "fake"\n')
    message = error_of(tmp_path)
    assert str(path) in message
    assert "unknown key 'agnet'" in message
    assert "agent" in message.split("accepted keys:")[1]


def test_bad_placement_lists_inside_and_sibling(tmp_path):
    path = write_json(tmp_path, {"worktree_placement": "elsewhere"})
    message = error_of(tmp_path)
    assert str(path) in message
    assert "'worktree_placement'" in message
    assert "'inside'" in message and "'sibling'" in message
    assert "'elsewhere'" in message


def test_zero_workers_is_refused(tmp_path):
    path = write_toml(tmp_path, "num_workers = 0\n")
    message = error_of(tmp_path)
    assert str(path) in message
    assert "'num_workers'" in message
    assert "greater than or equal to 1" in message


def test_non_numeric_workers_is_refused(tmp_path):
    path = write_json(tmp_path, {"num_workers": "many"})
    message = error_of(tmp_path)
    assert str(path) in message
    assert "'num_workers'" in message
    assert "integer" in message
    assert "'many'" in message


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "dispatch_config.json"
    path.write_text('{\n  "num_workers": 2,\n  "branch": main\n}\n', encoding="utf-8")
    message = error_of(tmp_path)
    assert f"{path}:3:" in message
    assert "not valid JSON" in message


def test_json_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "dispatch_config.json"
    path.write_text("[1, 2]\n", encoding="utf-8")
    message = error_of(tmp_path)
    assert str(path) in message
    assert "JSON object" in message


def test_invalid_toml_names_file_and_line(tmp_path):
    path = write_toml(tmp_path, 'prefix = "gw"\nnum_workers = = 3\n')
    message = error_of(tmp_path)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 2" in message


def test_bad_env_value_names_environment(tmp_path):
    message = error_of(tmp_path, env={"GASWORKS_NUM_WORKERS": "abc"})
    assert "environment" in message
    assert "'num_workers'" in message
    assert "'abc'" in message


def test_bad_env_json_list_is_a_error_of(tmp_path):
    message = error_of(tmp_path, env={"GASWORKS_AIDER_CMD": '["aider", '})
    assert "environment" in message
    assert "GASWORKS_AIDER_CMD" in message or "aider_cmd" in message


def test_bad_override_names_command_line(tmp_path):
    write_toml(tmp_path, "num_workers = 3\n")
    message = error_of(tmp_path, overrides={"num_workers": 0})
    assert message.startswith("command line:")
    assert "'num_workers'" in message


def test_empty_aider_cmd_is_refused(tmp_path):
    path = write_json(tmp_path, {"aider_cmd": ""})
    message = error_of(tmp_path)
    assert str(path) in message
    assert "'aider_cmd'" in message
    assert "must name a program" in message


# -- the target branch


def test_missing_configured_branch_lists_existing_branches(repo):
    git.run(["branch", "feature"], repo)
    with pytest.raises(ConfigError) as info:
        target_branch(repo, Config(branch="develop"))
    message = str(info.value)
    assert "'develop'" in message
    assert "feature" in message and "main" in message


def test_existing_configured_branch_is_used(repo):
    git.run(["branch", "feature"], repo)
    assert target_branch(repo, Config(branch="feature")) == "feature"


def test_no_branch_configured_uses_the_checked_out_one(repo):
    git.run(["checkout", "-q", "-b", "trunk"], repo)
    assert target_branch(repo, Config()) == "trunk"


# -- repo_root must be this repository


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("GASWORKS_"):
            monkeypatch.delenv(name)


def test_repo_root_elsewhere_is_a_config_error(repo, tmp_path, clean_env):
    init_project(repo)
    other = tmp_path / "other"
    other.mkdir()
    write_json(repo, {"repo_root": str(other)})
    with pytest.raises(ConfigError) as info:
        find_project(repo)
    message = str(info.value)
    assert str(other) in message
    assert str(repo) in message


def test_repo_root_naming_this_repository_is_accepted(repo, clean_env):
    init_project(repo)
    write_json(repo, {"repo_root": str(repo)})
    assert find_project(repo).root.resolve() == repo.resolve()
    write_json(repo, {"repo_root": "."})
    assert find_project(repo).config.repo_root == "."


def test_endpoints_are_validated_with_the_key_named(tmp_path):
    write_toml(tmp_path, 'endpoints = [{url = "http://127.0.0.1:11434", kind = "ollama", model = "q"}]\n')
    config = load_config(tmp_path, env={})
    assert (config.endpoints[0].kind, config.endpoints[0].max_concurrency) == ("ollama", 4)
    write_toml(tmp_path, 'endpoints = [{url = "127.0.0.1:11434", model = "q"}]\n')
    assert "key 'endpoints'" in error_of(tmp_path) and "http://" in error_of(tmp_path)
    write_toml(tmp_path, 'endpoints = [{url = "http://h", model = "q", kind = "grpc"}]\n')
    assert "'openai' or 'ollama'" in error_of(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment", "# a\n\n  \t# b\t\n", "  \n#\n", "# bad \x01 char\n",
                                  "#\x7f\n", "\ufeff# bom\n", "# a\nx = 1\n", "x = 1 # c\n", "[t]\n# c\n"])
def test_a_file_of_comments_reads_as_the_toml_parser_reads_it(tmp_path, text):
    tomllib = pytest.importorskip("tomllib")
    path = tmp_path / "gasworks.toml"
    path.write_bytes(text.encode("utf-8"))
    try:
        expected = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(tmp_path, env={})
        return
    try:
        config = load_config(tmp_path, env={})
    except ConfigError as exc:  # a setting the parser read, refused by the config: the parser ran
        assert expected, exc
    else:
        assert expected == {} and config == Config()


def test_the_template_sets_nothing(tmp_path):
    from gasworks.config import _NOTHING_SET, template

    assert _NOTHING_SET.fullmatch(template())
    write_toml(tmp_path, template())
    assert load_config(tmp_path, env={}) == Config()


def shown_in_template(prefix: str = "") -> dict[str, Any]:
    """The settings the template shows on lines `# {prefix}key = value`, each read as TOML."""
    import re

    from gasworks.config import template

    lines = re.findall(rf"^# {re.escape(prefix)}(\w+ = .*)$", template(), re.M)
    toml = __import__("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return {key: value for line in lines for key, value in toml.loads(line).items()}


def test_the_template_init_writes_shows_every_key_with_its_default():
    """The template is generated from Config's fields (it was typed by hand, and four keys had drifted
    out of it); each key's line, uncommented, sets the key's default, and its description is above it."""
    from gasworks.config import template

    shown = shown_in_template()
    assert list(shown) == list(Config.keys())
    for key, value in shown.items():
        assert Config.validate({key: value}) == Config(), key
    text = template()
    for key in ("store_keepalive", "agent", "gate"):
        first_words = " ".join(Config.__specs__[Config.keys().index(key)].field.description.split()[:4])
        assert text.index(first_words) < text.index(f"# {key} = ")


def test_the_examples_in_the_template_are_valid_settings():
    examples = shown_in_template("e.g. ")
    assert {"endpoints", "gate", "command", "store", "remote"} <= set(examples)
    for key, value in examples.items():
        assert getattr(Config.validate({key: value}), key) != getattr(Config(), key), key


def test_the_template_opens_with_what_users_change_first_model_workers_gate():
    keys = list(shown_in_template())
    assert keys.index("endpoints") < keys.index("num_workers") < keys.index("gate") < keys.index("store")
    assert keys[0] == "agent"


def test_the_readme_lists_the_keys_as_config_declares_them():
    """README.md's table of keys is generated (`python -m gasworks.config`), so it cannot drift either."""
    from gasworks.config import keys_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = keys_table()
    assert table.count("\n") == len(Config.keys()) + 2
    assert table in readme, "README.md's table of keys is out of date: replace it with `python -m gasworks.config`"
