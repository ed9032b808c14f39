"""Small bar charts as inline SVG: no script, no library, every label escaped."""

from __future__ import annotations

import time
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 360, 140, 36, 18, 8


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}".rstrip("0")


def bar_chart(title: str, points: list[tuple[str, float]], *, unit: str = "", top: float | None = None) -> str:
    """A figure with one bar per (label, value); `top` fixes the scale (e.g. 1.0 for rates)."""
    biggest = top if top is not None else max([v for _, v in points] + [0.0])
    scale = biggest or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - 4, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_h * max(0.0, value) / scale
        x = PAD_LEFT + index * step + step * 0.1
        bars.append(f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - height:.1f}" width="{step * 0.8:.1f}" '
                    f'height="{height:.1f}"><title>{escape(label)}: {escape(_number(value))}{escape(unit)}</title>'
                    "</rect>")
    first = escape(points[0][0]) if points else ""
    last = escape(points[-1][0]) if points else ""
    axis_y = PAD_TOP + plot_h
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<line class="axis" x1="{PAD_LEFT}" y1="{axis_y}" x2="{WIDTH - 4}" y2="{axis_y}"/>'
        + (f'<text class="tick" x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">'
           f"{escape(_number(biggest))}{escape(unit)}</text>" if biggest else "")
        + f'<text class="tick" x="{PAD_LEFT - 4}" y="{axis_y}" text-anchor="end">0</text>'
        + "".join(bars)
        + f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 4}">{first}</text>'
        f'<text class="tick" x="{WIDTH - 4}" y="{HEIGHT - 4}" text-anchor="end">{last}</text>'
        "</svg></figure>"
    )


def fleet_charts(series: dict[str, Any]) -> str:
    """The four charts of the stats page, from stats.series()."""
    rows = series["buckets"]

    def label(row: dict[str, Any]) -> str:
        return time.strftime("%H:%M", time.localtime(row["start"]))

    return "".join([
        bar_chart("Tasks merged", [(label(r), r["merged"]) for r in rows]),
        bar_chart("Attempt success rate", [(label(r), (r["success_rate"] or 0) * 100) for r in rows], unit="%",
                  top=100),
        bar_chart("Merge conflicts", [(label(r), r["conflicts"]) for r in rows]),
        bar_chart("Output tokens per agent-second", [(label(r), r["tokens_per_second"]) for r in rows]),
    ])


def eval_charts(evals: list[dict[str, Any]]) -> str:
    """The newest `gasworks eval` (from its results file): tasks correct and merged per hour, one
    bar per configuration (hover a bar for its name)."""
    if not evals:
        return ""
    rows = evals[-1]["configurations"]
    return "".join([
        bar_chart("Tasks correct (hidden tests)", [(r["configuration"], (r["correct_rate"] or 0) * 100) for r in rows],
                  unit="%", top=100),
        bar_chart("Merged tasks per hour", [(r["configuration"], r["merged_per_hour"] or 0) for r in rows]),
    ])
