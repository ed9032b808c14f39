"""What an eval found: per configuration figures from its runs, the comparison table, and the results
file (.gasworks/eval/results.jsonl of the project `gasworks eval` ran in) the dashboard charts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gasworks.models import Status

RESULTS_FILE = Path("eval") / "results.jsonl"  # under the state folder
COLUMNS = (("configuration", "configuration"), ("correct", "correct (95% CI)"), ("merged", "merged"),
           ("attempts", "attempts"), ("gate_failures", "gate fails"), ("conflicts", "conflicts"),
           ("tokens_per_merged", "tokens/merged"), ("agent_seconds_per_merged", "agent-s/merged"),
           ("blocked", "blocked"), ("wall_seconds", "wall s"), ("merged_per_hour", "merged/h"),
           ("stopped", "stopped"))


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% by default); (0, 1) for no trials."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    center = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    low, high = max(0.0, center - half), min(1.0, center + half)
    return (0.0 if successes == 0 else low), (1.0 if successes == trials else high)  # exact at the ends


def _per(total: float, count: int) -> float | None:
    return round(total / count, 3) if count else None


def stopped_why(runs: list[dict[str, Any]], stopped: str = "") -> str | None:
    """Why a configuration's figures are partial: `stopped` (Ctrl+C), or why its first stopped run
    was (its timeout, an unexpected exit); None when every run ended by itself."""
    reasons = [run["stopped"] for run in runs if run.get("stopped")]
    return stopped or (reasons[0] if reasons else None)


def summarize(label: str, runs: list[dict[str, Any]], stopped: str = "") -> dict[str, Any]:
    """One configuration's figures, summed over its runs (every project, every repeat); `stopped`
    says why the configuration did not run to its end (Ctrl+C)."""
    tasks = [task for run in runs for task in run["tasks"].values()]
    merged = sum(1 for t in tasks if t["merged"])
    correct = sum(1 for t in tasks if t["correct"])
    low, high = wilson(correct, len(tasks))
    wall = sum(run["wall_seconds"] for run in runs)
    tokens = sum(run["tokens"] for run in runs)
    agent_seconds = sum(run["agent_seconds"] for run in runs)
    return {
        "configuration": label, "runs": len(runs), "tasks": len(tasks), "merged": merged, "correct": correct,
        "merged_and_correct": sum(1 for t in tasks if t["merged"] and t["correct"]),
        "correct_rate": round(correct / len(tasks), 4) if tasks else None,
        "correct_ci": [round(low, 4), round(high, 4)],
        "attempts": sum(run["attempts"] for run in runs),
        "gate_failures": sum(run["gate_failures"] for run in runs),
        "conflicts": sum(run["conflicts"] for run in runs),
        "tokens": tokens, "agent_seconds": round(agent_seconds, 3),
        "tokens_per_merged": round(tokens / merged) if merged else None,
        "agent_seconds_per_merged": _per(agent_seconds, merged),
        "wall_seconds": round(wall, 3), "merged_per_hour": round(merged / wall * 3600, 2) if wall > 0 else None,
        "blocked": sum(1 for t in tasks if t["status"] == Status.BLOCKED),
        "unfinished_runs": sum(1 for run in runs if run["exit_code"] is None),
        "stopped": stopped_why(runs, stopped),
        "stopped_runs": sum(1 for run in runs if run.get("stopped")),
    }


def _cell(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if key == "correct":
        low, high = row["correct_ci"]
        return f"{value}/{row['tasks']} {row['correct_rate'] * 100:.0f}% [{low * 100:.0f}-{high * 100:.0f}]" \
            if row["tasks"] else "-"
    if key == "merged":
        return f"{value}/{row['tasks']}"
    if key == "stopped" and value:
        return f"{value} ({row['stopped_runs']}/{row['runs']} runs)" if row["stopped_runs"] and row["runs"] > 1 \
            else value
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison as an aligned text table, one line per configuration."""
    cells = [[title for _, title in COLUMNS]] + [[_cell(row, key) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
            for line in cells]


def stopped_lines(report: dict[str, Any]) -> list[str]:
    """Under the table: what a stopped row means, and the configurations Ctrl+C left unrun."""
    lines = []
    if any(row["stopped"] for row in report["configurations"]):
        lines.append("stopped: that row's figures count only what was done before its run was stopped (timeout: "
                     "give a longer --timeout; each run's output is <project>.run.log, kept with --keep)")
    if report["not_run"]:
        lines.append(f"not run (Ctrl+C): {', '.join(report['not_run'])}")
    return lines


def save(state_dir: Path, report: dict[str, Any]) -> Path:
    """Append one eval's report (without the per-task detail) to the results file."""
    path = state_dir / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {key: value for key, value in report.items() if key != "runs"}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(kept, ensure_ascii=False) + "\n")
    return path


def load(state_dir: Path, last: int = 20) -> list[dict[str, Any]]:
    """The newest `last` eval reports of this project, oldest first; lines that do not parse are skipped."""
    path = state_dir / RESULTS_FILE
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[-last:]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("configurations"), list):
            found.append(record)
    return found
