"""How often `gasworks plan` succeeds on the embedded model: N small repositories of different kinds,
one goal each, each planned by a real `gasworks plan --json` (the repository view in the prompt is
what differs). Prints one row per run and the count that created tasks.

    python bench/plan.py [--runs 10] [--max-tasks 6] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_rows, progress  # noqa: E402

# (files, goal): small projects of different kinds, as a user would point gasworks at them.
REPOS = [
    ({"calc.py": "def add(a, b):\n    return a + b\n", "test_calc.py": "from calc import add\n"},
     "Add subtract, multiply and divide to the calculator, with tests"),
    ({"todo/app.py": "TODOS = []\n", "README.md": "# todo\n"}, "Add a command-line todo list that saves to JSON"),
    ({"index.html": "<h1>hi</h1>\n", "style.css": "h1 { color: red }\n"}, "Turn the page into a blog with three posts"),
    ({"main.go": "package main\nfunc main() {}\n", "go.mod": "module x\n"}, "Add an HTTP health endpoint and a test"),
    ({"src/lib.rs": "pub fn parse() {}\n", "Cargo.toml": "[package]\nname = \"p\"\n"},
     "Parse key=value config files with errors for bad lines"),
    ({"scraper.py": "import urllib.request\n", "requirements.txt": "\n"}, "Add retries and logging to the scraper"),
    ({"server.js": "const http = require('http')\n", "package.json": "{}\n"}, "Add a /users REST API with tests"),
    ({"etl/load.py": "def load():\n    pass\n", "etl/__init__.py": ""},
     "Load CSV files into SQLite and report row counts"),
    ({"game.py": "board = [[0] * 3] * 3\n"}, "Make a playable tic-tac-toe game in the terminal"),
    ({"docs/guide.md": "# Guide\n", "mkdocs.yml": "site_name: x\n"}, "Write install, usage and FAQ pages"),
    ({"stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n"}, "Add median, mode and standard deviation"),
    ({"bot.py": "def reply(text):\n    return text\n"}, "Add commands /help and /time to the chat bot"),
]


def make_repo(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "start"]):
        subprocess.run(argv, cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "gasworks", "init"], cwd=root, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--max-tasks", type=int, default=6)
    parser.add_argument("--keep", type=Path, default=None, help="Make the repositories here (default: a temp dir).")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gasworks-plan-bench-"))
    rows, ok = [], 0
    for n in range(args.runs):
        files, goal = REPOS[n % len(REPOS)]
        root = base / f"repo{n}"
        make_repo(root, files)
        progress(f"run {n + 1}/{args.runs}: {goal}")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "gasworks", "plan", goal, "--max-tasks", str(args.max_tasks),
                               "--json"], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        report = json.loads(done.stdout) if done.returncode == 0 else {}
        created = len(report.get("created", []))
        ok += created > 0
        why = f"{len(report['fixes'])} fix(es)" if report else done.stderr.strip().splitlines()[-1][:70]
        rows.append((str(n + 1), goal[:40], str(done.returncode), str(max(0, created - 1)), f"{seconds:.0f}", why))
    print_rows(("run", "goal", "exit", "tasks", "seconds", "fixes / error"), rows)
    print(f"\n{ok} of {args.runs} runs created tasks")


if __name__ == "__main__":
    main()
