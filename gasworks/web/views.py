"""The dashboard's HTML, rendered from the page dicts of pages.py.

Every value that comes from the store, a log or git goes through `e()` (html.escape) on its
way into the page, attributes included; nothing is marked safe. Task ids in URLs are also
percent-encoded.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from gasworks.config import AGENTS
from gasworks.models import ISSUE_TYPES, PRIORITY_MAX, PRIORITY_MIN
from gasworks.stats import seconds_text
from gasworks.status import QUIET_WARN_SECONDS
from gasworks.web.charts import eval_charts, fleet_charts
from gasworks.web.pages import COLUMNS


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def task_url(task_id: str, suffix: str = "") -> str:
    return f"/tasks/{quote(task_id, safe='')}{suffix}"


def task_link(task_id: str, css: str = "") -> str:
    cls = f' class="{e(css)}"' if css else ""
    return f'<a href="{e(task_url(task_id))}"{cls}>{e(task_id)}</a>'


def lines(text_lines: list[str]) -> str:
    return e("\n".join(text_lines))


def when(timestamp: str) -> str:
    """An RFC 3339 time, shortened to the second, with the full value on hover."""
    if not timestamp:
        return ""
    return f'<time datetime="{e(timestamp)}" title="{e(timestamp)}">{e(timestamp[:19].replace("T", " "))}</time>'


def page(title: str, body: str, *, api: str, live: bool = False, run: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} - gasworks</title>"
        '<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script></head>'
        f'<body{" data-live" if live else ""}><header><a class="brand" href="/">gasworks</a>'
        '<nav><a href="/">Board</a> &middot; <a href="/merges">Merges</a> &middot; <a href="/stats">Stats</a></nav>'
        f'<span class="run" id="run">{run}</span><a href="{e(api)}">JSON</a></header>'
        f"<main>{body}</main></body></html>"
    )


def error_page(status: int, message: str) -> str:
    body = f'<h1>Error {status}</h1><p class="error">{e(message)}</p><p><a href="/">Back to the board</a></p>'
    return page(f"Error {status}", body, api="/api/")


# -- the dashboard (its live parts are re-rendered for each server-sent event) ---------------

def run_html(live: dict[str, Any]) -> str:
    pid = live["run_pid"]
    return f"gasworks run: active (pid {e(pid)})" if pid else "gasworks run: not running"


def slots_html(live: dict[str, Any]) -> str:
    cards = []
    for slot in live["slots"]:
        quiet = slot["quiet"]
        quiet_css = ' class="quiet"' if quiet is not None and quiet >= QUIET_WARN_SECONDS else ""
        cards.append(
            f'<div class="slot" id="slot-{e(slot["slot"])}"><div><b>{e(slot["slot"])}</b> {task_link(slot["task"])} '
            f'{e(slot["title"])}</div><div class="meta">attempt {e(slot["attempt"])} &middot; '
            f'{e(seconds_text(slot["elapsed"]))} &middot; <span{quiet_css}>quiet {e(seconds_text(quiet))}</span>'
            f' &middot; tokens {e(slot["tokens_in"])}/{e(slot["tokens_out"])}</div>'
            f'<pre class="tail">{lines(slot["tail"])}</pre></div>')
    cards += [f'<div class="slot idle"><b>{e(name)}</b> idle</div>' for name in live["idle_slots"]]
    return "".join(cards) or '<p class="muted">No agent is running.</p>'


def queue_html(live: dict[str, Any]) -> str:
    rows = [f"<tr><td>{task_link(m['task'])}</td><td>{e(m['status'])}</td><td>queued {when(m['queued_at'])}</td>"
            f"<td>{e(m['note'])}</td></tr>" for m in live["merge_queue"]]
    rows += [f"<tr><td>{task_link(m['task'])}</td><td class=\"status-{e(m['status'])}\">{e(m['status'])}</td>"
             f"<td>{when(m['ended_at'])}</td><td>gate runs {e(m['gate_runs'])}"
             + (f" &middot; conflict task {task_link(m['conflict_task'])}" if m["conflict_task"] else "")
             + (f" &middot; {e(m['note'])}" if m["note"] else "") + "</td></tr>" for m in live["recent_merges"]]
    if not rows:
        return '<p class="muted">Nothing waiting to merge.</p>'
    return f"<table>{''.join(rows)}</table>"


def counts_html(live: dict[str, Any]) -> str:
    counts = ", ".join(f"{e(n)} {e(s)}" for s, n in live["counts"].items())
    through = live["throughput"]
    human = f' &middot; <span class="quiet">{e(live["needs_human"])} need a human</span>' if live["needs_human"] else ""
    return (f'<span class="muted">{counts}{human} &middot; {e(through["closed_last_10_min"])} closed in the last '
            f'10 min, {e(through["closed_last_hour"])} in the last hour</span>')


def _card(card: dict[str, Any]) -> str:
    labels = f'<div class="meta">{e(", ".join(card["labels"]))}</div>' if card["labels"] else ""
    deps = ", ".join(f'{task_link(d["id"], "dep-" + d["status"])}' + (f" ({e(d['type'])})" if d["type"] != "blocks"
                                                                      else "") for d in card["depends_on"])
    return (f'<div class="card" id="card-{e(card["id"])}">{task_link(card["id"])} '
            f'<span class="meta">P{e(card["priority"])} {e(card["issue_type"])}'
            + (f" &middot; {e(card['assignee'])}" if card["assignee"] else "") + "</span>"
            f'<div class="title">{e(card["title"])}</div>{labels}'
            + (f'<div class="deps">after {deps}</div>' if deps else "")
            + (f'<div class="reason">{e(card["reason"])}</div>' if card.get("reason") else "") + "</div>")


def board_url(board: dict[str, Any], **changes: Any) -> str:
    """The board's URL with its search, filters and pages, some of them changed (None or "": gone)."""
    params = {key: value for key, value in board.get("filter", {}).items() if value != ""}
    params.update({f"page_{name}": page for name, page in board.get("pages", {}).items()})
    for key, value in changes.items():
        if value in (None, "", 1) and key.startswith("page_") or value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    return "/?" + urlencode(params) if params else "/"


def _pager(board: dict[str, Any], column: dict[str, Any]) -> str:
    if column["pages"] <= 1:
        return ""
    key, page = f"page_{column['name']}", column["page"]
    back = f'<a class="prev" href="{e(board_url(board, **{key: page - 1}))}">&lsaquo; prev</a>' if page > 1 else ""
    more = (f'<a class="next" href="{e(board_url(board, **{key: page + 1}))}">next &rsaquo;</a>'
            if page < column["pages"] else "")
    return f'<nav class="pager">{back} page {e(page)} of {e(column["pages"])} {more}</nav>'


def board_html(board: dict[str, Any]) -> str:
    columns = []
    for column in board["columns"]:
        columns.append(f'<div class="column" id="column-{e(column["name"])}"><h3>{e(column["title"])} '
                       f'({e(column["total"])})</h3>' + _pager(board, column)
                       + "".join(_card(c) for c in column["tasks"]) + _pager(board, column) + "</div>")
    return "".join(columns)


def filter_html(board: dict[str, Any]) -> str:
    """The board's search and filters: a GET form, so every view of the board has its own URL."""
    shown = board.get("filter", {})
    columns = [("", "any status")] + [(name, title) for name, title in COLUMNS]
    priorities = [("", "any priority")] + [(str(p), f"P{p}") for p in range(PRIORITY_MIN, PRIORITY_MAX + 1)]

    def select(name: str, choices: list[tuple[str, str]]) -> str:
        chosen = str(shown.get(name, ""))
        return (f'<select name="{name}" aria-label="{name}">' + "".join(
            f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>' for v, t in choices)
            + "</select>")
    return (
        '<form class="filter" id="filter" method="get" action="/">'
        f'<input type="search" name="q" value="{e(shown.get("q", ""))}" placeholder="Search id, title, description" '
        'aria-label="search">' + select("status", columns)
        + f'<input name="label" value="{e(shown.get("label", ""))}" placeholder="label" aria-label="label">'
        f'<input name="assignee" value="{e(shown.get("assignee", ""))}" placeholder="assignee" aria-label="assignee">'
        + select("priority", priorities) + '<button type="submit">Filter</button> <a href="/">clear</a>'
        f' <span class="muted" id="matched">{e(board.get("matched", 0))} task(s)</span></form>'
    )


def _options(values: list[Any], selected: Any, label: str = "{}") -> str:
    return "".join(f'<option value="{e(v)}"{" selected" if v == selected else ""}>{e(label.format(v))}</option>'
                   for v in values)


def live_fragments(live: dict[str, Any], board: dict[str, Any] | None) -> dict[str, str]:
    """The dashboard's live parts by element id, as the server-sent events carry them."""
    parts = {"run": run_html(live), "slots": slots_html(live), "queue": queue_html(live), "counts": counts_html(live)}
    if board is not None:
        parts["board"] = board_html(board)
    return parts


def dashboard_html(data: dict[str, Any]) -> str:
    priorities = list(range(PRIORITY_MIN, PRIORITY_MAX + 1))
    fragments = live_fragments(data["live"], data["board"])
    form = (
        '<form class="new" id="new-task" method="post" action="/tasks">'
        '<input name="title" placeholder="New task: title" required maxlength="500" aria-label="title">'
        '<textarea name="description" placeholder="Description (optional)" aria-label="description"></textarea>'
        f'<select name="priority" aria-label="priority">{_options(priorities, 2, "P{}")}</select>'
        f'<select name="type" aria-label="type">{_options(list(ISSUE_TYPES), "task")}</select>'
        '<input name="deps" placeholder="waits on: ids, comma-separated" aria-label="waits on">'
        '<button type="submit">Create task</button></form>'
    )
    body = (form + f'<h2>Slots</h2><div class="slots" id="slots">{fragments["slots"]}</div>'
            f'<h2>Merge queue</h2><div id="queue">{fragments["queue"]}</div>'
            f'<h2>Tasks <span id="counts">{fragments["counts"]}</span></h2>' + filter_html(data["board"])
            + f'<div class="board" id="board">{fragments["board"]}</div>')
    return page("Board", body, api="/api/", live=True, run=fragments["run"])


# -- one task ---------------------------------------------------------------------------------

def _actions(task: dict[str, Any]) -> str:
    url = task_url(task["id"])
    priorities = list(range(PRIORITY_MIN, PRIORITY_MAX + 1))
    return (
        f'<form class="inline" method="post" action="{e(url)}/priority">'
        f'<select name="priority" aria-label="priority">{_options(priorities, task["priority"], "P{}")}</select>'
        '<button type="submit">Set priority</button></form>'
        f'<form class="inline" method="post" action="{e(url)}/retry"><button type="submit">Retry</button></form>'
        f'<form class="inline" method="post" action="{e(url)}/cancel" data-confirm="Cancel {e(task["id"])}?">'
        '<button type="submit">Cancel</button></form>'
    )


def _review(task: dict[str, Any]) -> str:
    """Approve or reject the task's finished branch, which waits for review before the merge queue."""
    url = task_url(task["id"])
    return (
        '<div id="review"><p>Its finished branch waits for review before it enters the merge queue.</p>'
        f'<form class="inline" method="post" action="{e(url)}/approve"><button type="submit">Approve</button></form>'
        f'<form class="inline" method="post" action="{e(url)}/reject">'
        '<input name="note" required maxlength="5000" placeholder="What to change (the agent reads this)" '
        'aria-label="review note"><button type="submit">Reject</button></form></div>'
    )


def _runs_with(task: dict[str, Any], runs: dict[str, Any]) -> str:
    """Which agent and model the task runs with, and a form to change them (its agent: and model: labels)."""
    agents = ["", *AGENTS]
    label = "the run's own ({})".format
    return (
        f'<form class="inline" id="runs-with" method="post" action="{e(task_url(task["id"]))}/agent">'
        f'agent <select name="agent" aria-label="agent">'
        + "".join(f'<option value="{e(v)}"{" selected" if v == runs["agent"] else ""}>'
                  f'{e(v or label(runs["default_agent"]))}</option>' for v in agents)
        + f'</select> model <input name="model" value="{e(runs["model"])}" maxlength="200" aria-label="model" '
        f'placeholder="{e(label(runs["default_model"]))}"><button type="submit">Set agent</button></form>'
        + (f'<p class="error">{e(runs["error"])}</p>' if runs["error"] else "")
    )


def _attempt_html(task_id: str, attempt: dict[str, Any], last: bool) -> str:
    log_url = task_url(task_id, f"/attempts/{attempt['id']}/log")
    shown = len(attempt["log_tail"])
    commits = ", ".join(c[:12] for c in attempt["commits"])
    return (
        f'<details{" open" if last else ""}><summary>attempt {e(attempt["number"])} in {e(attempt["slot"])}: '
        f'<span class="outcome-{e(attempt["outcome"])}">{e(attempt["outcome"])}</span> &middot; '
        f'{e(seconds_text(attempt["seconds"]))} &middot; tokens {e(attempt["tokens_in"])}/{e(attempt["tokens_out"])}'
        f'</summary><p>started {when(attempt["started_at"])}'
        + (f', ended {when(attempt["ended_at"])} (exit {e(attempt["exit_code"])})' if attempt["ended_at"] else "")
        + (f' &middot; {e(attempt["note"])}' if attempt["note"] else "")
        + f'<br>branch {e(attempt["branch"])}' + (f" &middot; commits {e(commits)}" if commits else "") + "</p>"
        f'<h3>Log <span class="muted">(last {e(shown)} lines; <a href="{e(log_url)}">whole log</a>)</span></h3>'
        f'<pre>{lines(attempt["log_tail"])}</pre>'
        + (f'<h3>Diff</h3><pre class="diff">{e(attempt["diff"])}</pre>' if attempt["diff"] else "")
        + "</details>"
    )


def _merges_table(merges: list[dict[str, Any]]) -> str:
    if not merges:
        return '<p class="muted">None.</p>'
    rows = "".join(
        f"<tr><td>#{e(m['id'])}</td><td>{task_link(m['task_id'])}</td><td class=\"status-{e(m['status'])}\">"
        f"{e(m['status'])}</td><td>{e(m['trial'] or '-')}</td><td>{e(m['gate_runs'])} ({e(m['gate_seconds'])} s)</td>"
        f"<td>{when(m['queued_at'])}</td><td>{e(m['landed_commit'][:12])}"
        + (task_link(m["conflict_task"]) if m["conflict_task"] else "") + f"</td><td>{e(m['note'])}</td></tr>"
        for m in merges)
    return ("<table><tr><th>merge</th><th>task</th><th>status</th><th>trial</th><th>gate runs</th><th>queued</th>"
            f"<th>result</th><th>note</th></tr>{rows}</table>")


def task_html(data: dict[str, Any]) -> str:
    task = data["task"]
    head = (f'<h1>{e(task["id"])}: {e(task["title"])}</h1><p>{e(task["status"])} &middot; P{e(task["priority"])} '
            f'&middot; {e(task["issue_type"])}' + (f' &middot; assignee {e(task["assignee"])}' if task.get("assignee")
                                                   else "")
            + f' &middot; created {when(task["created_at"])} &middot; updated {when(task["updated_at"])}'
            + (f' &middot; closed {when(task["closed_at"])} ({e(task.get("close_reason", ""))})'
               if task.get("closed_at") else "") + "</p>"
            + (f'<p class="error" id="reason">{e(data["reason"])}</p>' if data.get("reason") else "")
            + _actions(task) + (_review(task) if data.get("waits_for_review") else "")
            + _runs_with(task, data["runs_with"]))
    links = []
    if task.get("labels"):
        links.append(f'<p>labels: {e(", ".join(task["labels"]))}</p>')
    if data["depends_on"]:
        links.append("<p>depends on: " + ", ".join(
            f'{task_link(d["id"], "dep-" + d["status"])} ({e(d["type"])}, {e(d["status"] or "unknown")})'
            for d in data["depends_on"]) + "</p>")
    if data["blocked_by"]:
        links.append("<p>blocked by: " + ", ".join(task_link(i) for i in data["blocked_by"]) + "</p>")
    if data["dependents"]:
        links.append("<p>needed by: " + ", ".join(f'{task_link(d["id"])} ({e(d["type"])})'
                                                   for d in data["dependents"]) + "</p>")
    texts = "".join(f"<h2>{heading}</h2><pre class=\"text\">{e(task[name])}</pre>"
                    for name, heading in (("description", "Description"), ("design", "Design"),
                                          ("acceptance_criteria", "Acceptance criteria"), ("notes", "Notes"))
                    if task.get(name))
    attempts = data["attempts"]
    attempts_html = "".join(_attempt_html(task["id"], a, i == len(attempts) - 1) for i, a in enumerate(attempts))
    events = "".join(f"<tr><td>{when(ev['at'])}</td><td>{e(ev['kind'])}</td><td>{e(ev['old'])}"
                     f"{' &rarr; ' if ev['old'] or ev['new'] else ''}{e(ev['new'])}</td><td>{e(ev['actor'])}</td></tr>"
                     for ev in reversed(data["events"]))
    body = (head + "".join(links) + texts
            + f"<h2>Attempts ({len(attempts)})</h2>" + (attempts_html or '<p class="muted">None yet.</p>')
            + "<h2>Merges</h2>" + _merges_table(data["merges"])
            + f"<h2>Events</h2><table>{events}</table>")
    return page(f"{task['id']}: {task['title']}", body, api=f"/api{task_url(task['id'])}")


# -- the merge queue and the stats --------------------------------------------------------------

def _numbers(pairs: list[tuple[str, Any]]) -> str:
    return '<dl class="numbers">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs) + "</dl>"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def merges_html(data: dict[str, Any]) -> str:
    stats = data["stats"]
    body = ("<h1>Merge queue</h1>" + _merges_table(data["queue"]) + "<h2>Results</h2>" + _merges_table(data["recent"])
            + "<h2>Rates</h2>" + _numbers([
                ("landed", stats["landed"]), ("conflict rate", _rate(stats["conflict_rate"])),
                ("gate failure rate", _rate(stats["gate_failure_rate"])), ("gate runs", stats["gate_runs"]),
                ("gate runs per landed change", stats["gate_runs_per_landed"] or "-")]))
    return page("Merges", body, api="/api/merges")


def stats_html(data: dict[str, Any]) -> str:
    s = data["stats"]
    through, times, att, tokens = s["throughput"], s["time_per_task"], s["attempts"], s["tokens"]
    numbers = _numbers([
        ("throughput", f"{through['tasks_done']} tasks in {seconds_text(through['span_seconds'])}"
         + (f" ({through['per_hour']:.1f} per hour)" if through["per_hour"] is not None else "")),
        ("time per task", f"mean {seconds_text(times['mean_seconds'])}, p90 {seconds_text(times['p90_seconds'])}"),
        ("attempt success rate", f"{_rate(att['success_rate'])} of {att['counted']}"),
        *[(f"success on try {t['try']}", f"{_rate(t['success_rate'])} of {t['attempts']}") for t in att["by_try"]],
        ("conflict rate", _rate(s["merges"]["conflict_rate"])),
        ("gate failure rate", _rate(s["merges"]["gate_failure_rate"])),
        ("tokens in / out", f"{tokens['in']:,} / {tokens['out']:,}"),
        ("agent time", f"{seconds_text(s['agent_seconds'])} ({s['agent_seconds']:.0f} agent-seconds)"),
    ])
    per = seconds_text(data["series"]["bucket_seconds"])
    body = (f"<h1>Stats</h1>{numbers}<h2>Over time <span class=\"muted\">(bars of {e(per)})</span></h2>"
            f'<div class="charts">{fleet_charts(data["series"])}</div>' + _evals_html(data.get("evals", [])))
    return page("Stats", body, api="/api/stats")


def _evals_html(evals: list[dict[str, Any]]) -> str:
    """The newest `gasworks eval`: its charts and one line per configuration."""
    if not evals:
        return ""
    newest = evals[-1]
    rows = "".join(
        f"<tr><td>{e(r['configuration'])}"
        + (f" <span class=\"muted\">(stopped: {e(r['stopped'])}; partial)</span>" if r.get("stopped") else "")
        + f"</td><td>{e(r['correct'])}/{e(r['tasks'])}</td>"
        f"<td>{e(r['merged'])}</td><td>{e(r['attempts'])}</td><td>{e(r['conflicts'])}</td>"
        f"<td>{e(r['merged_per_hour'] if r['merged_per_hour'] is not None else '-')}</td></tr>"
        for r in newest["configurations"])
    return (f"<h2>Eval <span class=\"muted\">(suite {e(newest['suite'])}, {e(newest['started_at'])})</span></h2>"
            f'<div class="charts">{eval_charts(evals)}</div>'
            "<table><tr><th>configuration</th><th>correct</th><th>merged</th><th>attempts</th><th>conflicts</th>"
            f"<th>merged/h</th></tr>{rows}</table>")
