"""Small helpers the benchmarks share: progress on stderr, plain tables, percentiles."""

from __future__ import annotations

import math
import sys


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]
