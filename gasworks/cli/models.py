"""`gasworks models [list|pull|use]`: the models at hand, pulling a GGUF from Hugging Face, the default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from gasworks.cli.base import cli, json_option, open_project

# Which Qwen2.5-Coder fits which machine: Q4_K_M files (bartowski's single-file GGUFs on Hugging Face;
# Ollama's qwen2.5-coder:SIZE tags are the same quantization), the file's size, and the RAM of a
# machine that runs it with a few parallel slots and room for everything else.
QWEN_CODER_SIZES = (("0.5B", "0.5 GB", "2 GB"), ("1.5B", "1.0 GB", "4 GB"), ("3B", "1.9 GB", "6 GB"),
                    ("7B", "4.7 GB", "8 GB"), ("14B", "9.0 GB", "16 GB"), ("32B", "20 GB", "32 GB"))


def qwen_coder(size: str) -> str:
    return f"bartowski/Qwen2.5-Coder-{size}-Instruct-GGUF/Qwen2.5-Coder-{size}-Instruct-Q4_K_M.gguf"


HELP = """Models for the built-in agent: list what is at hand, pull a GGUF file, choose the default.

Without a subcommand: `gasworks models list`. The embedded model files are kept in
$GASWORKS_MODELS_DIR, else $XDG_CACHE_HOME/gasworks/models, else ~/.cache/gasworks/models.

\b
Which Qwen2.5-Coder fits your machine (Q4_K_M: file size, RAM of the machine):
""" + "\n".join(f"  {size:>4}  {file:>6} file  {ram:>5} RAM   ollama pull qwen2.5-coder:{size.lower()}"
                for size, file, ram in QWEN_CODER_SIZES) + """

Models below 7B often fail changes that take several steps; 7B and up do real work.
On a GPU, count its memory instead of RAM. For the embedded engine, e.g.:

\b
  gasworks models pull """ + qwen_coder("1.5B") + """
  gasworks models use Qwen2.5-Coder-1.5B-Instruct-Q4_K_M
"""


@cli.group(name="models", invoke_without_command=True, help=HELP)
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models, as_json=as_json)


def _config() -> Any:
    """The project's config when run inside one, else None (the defaults)."""
    from gasworks.errors import GasworksError

    try:
        return open_project().config
    except GasworksError:
        return None


@models.command(name="list")
@json_option
def list_models(as_json: bool) -> None:
    """The embedded model files, the configured endpoints and what local model servers offer."""
    from gasworks.llm import modelfiles, probe

    config = _config()
    default = config.embedded_model if config is not None else modelfiles.DEFAULT_MODEL
    folder = modelfiles.models_dir()
    files = modelfiles.local_files(folder)
    installed = modelfiles.installed_copy(modelfiles.SMOLLM2)
    embedded = [{"name": modelfiles.name_of(path, folder), "path": str(path), "size": path.stat().st_size}
                for path in ([installed] if installed else []) + files]
    if not any(row["name"] == modelfiles.DEFAULT_MODEL for row in embedded):
        embedded.insert(0, {"name": modelfiles.DEFAULT_MODEL, "path": None, "size": modelfiles.SMOLLM2.size})
    for row in embedded:
        row["default"] = row["name"] == default or row["path"] == default
    specs = [e.as_dict() for e in config.endpoints] if config is not None else []
    endpoints = [{"endpoint": p.endpoint, "ok": p.ok, "cause": p.cause, "models": p.models}
                 for p in (probe.probe_all(specs) if specs else [])]
    servers = [vars(server) for server in probe.scan()]
    report = {"models_dir": str(folder), "default": default, "embedded": embedded, "endpoints": endpoints,
              "local_servers": servers}
    if as_json:
        from gasworks import output

        output.emit_json(report)
        return
    _print_listing(report, in_use="endpoints" if specs else "embedded")


def _print_listing(report: dict[str, Any], in_use: str) -> None:
    unused = "" if in_use == "embedded" else ", not used while endpoints are set"
    click.echo(f"embedded models (in {report['models_dir']}){unused}:")
    for row in report["embedded"]:
        mark = "*" if row["default"] else " "
        where = row["path"] or "not fetched yet: fetched on first use"
        click.echo(f"  {mark} {row['name']}  {row['size'] / 1e9:.2f} GB  {where}")
    if report["endpoints"]:
        click.echo("endpoints (gasworks.toml):")
        for row in report["endpoints"]:
            state = "answers" if row["ok"] else row["cause"]
            offered = f"; offers {', '.join(row['models'])}" if row["models"] else ""
            click.echo(f"  {row['endpoint']}: {state}{offered}")
    if report["local_servers"]:
        click.echo("model servers on this machine:")
        for row in report["local_servers"]:
            click.echo(f"  {row['label']} at {row['url']} ({row['kind']}): {', '.join(row['models']) or 'no models'}")
    else:
        click.echo("no model server answers on 127.0.0.1 (Ollama 11434, llama.cpp 8080, LM Studio 1234, vLLM 8000)")


@models.command()
@click.argument("spec", metavar="OWNER/REPO/FILE.gguf")
@click.option("--revision", default=None, help="A branch, tag or commit of the repository (default: main).")
@json_option
def pull(spec: str, revision: str | None, as_json: bool) -> None:
    """Download a GGUF file from Hugging Face into the models folder, checked by its sha256.

    Uses huggingface_hub (pip install 'gasworks[hf]'): its progress bar and retries, and
    HF_ENDPOINT (a mirror), HF_HOME, HF_TOKEN and HF_HUB_OFFLINE=1 as it reads them. A file
    already pulled is not fetched again. Then make it the default with `gasworks models use`.
    """
    from gasworks.llm import modelfiles

    path = modelfiles.pull(spec, revision=revision, say=lambda line: click.echo(line, err=True))
    name = modelfiles.name_of(path)
    if as_json:
        from gasworks import output

        output.emit_json({"name": name, "path": str(path), "size": path.stat().st_size})
        return
    click.echo(f"pulled {name}: {path} ({path.stat().st_size / 1e9:.2f} GB); "
               f"make it the default with `gasworks models use {path.stem}`")


@models.command()
@click.argument("name")
@json_option
def use(name: str, as_json: bool) -> None:
    """Make NAME the embedded model of this repository (embedded_model in gasworks.toml).

    NAME is smollm2, a pulled model (OWNER/REPO/FILE.gguf or its file name, with or
    without .gguf) or a path to a .gguf file. The file must be at hand: pull it first.
    """
    from gasworks.config import set_value
    from gasworks.errors import ConfigError
    from gasworks.llm import modelfiles

    project = open_project()
    if name == modelfiles.DEFAULT_MODEL:
        value, path = name, None
    else:
        path = modelfiles.find_local(name)
        if path is None:
            raise ConfigError(f"no model {name!r} in {modelfiles.models_dir()} and no such .gguf file: pull it first "
                              "(`gasworks models pull OWNER/REPO/FILE.gguf`); `gasworks models` lists what is here")
        if not modelfiles.is_gguf(path):
            raise ConfigError(f"{path} is not a GGUF model file (it does not start with GGUF)")
        inside = path.resolve().is_relative_to(modelfiles.models_dir().resolve())
        value = modelfiles.name_of(path) if inside else str(Path(name).expanduser().resolve())
    written = set_value(project.root, "embedded_model", value)
    notes = []
    if project.config.endpoints:
        notes.append("endpoints are set in gasworks.toml: the embedded model is used only without them")
    if os.environ.get("GASWORKS_EMBEDDED_MODEL"):
        notes.append("GASWORKS_EMBEDDED_MODEL is set in the environment and overrides the file")
    if as_json:
        from gasworks import output

        output.emit_json({"embedded_model": value, "path": str(path) if path else None, "config": str(written),
                          "notes": notes})
        return
    click.echo(f"embedded_model = {value!r} in {written}" + (f" ({path})" if path else ""))
    for note in notes:
        click.echo(f"note: {note}", err=True)
