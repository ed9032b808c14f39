"""The dashboard's style sheet and script, served from /static/ (no build step, no CDN).

The script only does two things: it keeps the live parts of the dashboard current from the
server-sent events of /api/live (HTML the server rendered and escaped), and it asks before
cancelling a task.
"""

from __future__ import annotations

STYLE = """
:root { color-scheme: light dark; --fg: #1d2329; --muted: #68727d; --line: #d5dbe1; --card: #f6f8fa;
  --accent: #2f6fb3; --ok: #2e7d32; --bad: #c62828; --warn: #b26a00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e3e7eb; --muted: #9aa4ae; --line: #38414a; --card: #20262c;
  --accent: #6ea8e8; --ok: #66bb6a; --bad: #ef5350; --warn: #ffb74d; } body { background: #15191d; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0; }
header { display: flex; gap: 1.2em; align-items: baseline; padding: .6em 1.2em; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; font-size: 1.1em; }
header .run { margin-left: auto; color: var(--muted); }
header.offline .run::after { content: " (reconnecting)"; color: var(--warn); }
main { padding: .4em 1.2em 2em; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
pre { background: var(--card); border: 1px solid var(--line); padding: .5em; overflow: auto; max-height: 30em;
  white-space: pre-wrap; word-break: break-word; margin: .3em 0; }
pre.tail { max-height: 12em; font-size: 12px; }
table { border-collapse: collapse; } td, th { text-align: left; padding: .15em .6em .15em 0; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.muted, .idle { color: var(--muted); }
.board { display: flex; gap: .8em; align-items: flex-start; overflow-x: auto; }
.column { flex: 1 1 0; min-width: 12em; }
.column h3 { font-size: .95em; margin: .2em 0; color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 4px; padding: .35em .5em;
  margin-bottom: .4em; word-break: break-word; }
.card .meta, .deps { font-size: 12px; color: var(--muted); }
.dep-open, .dep-in_progress, .dep-blocked, .dep-merging { color: var(--warn); }
.dep-closed { text-decoration: line-through; }
.slots { display: grid; grid-template-columns: repeat(auto-fill, minmax(22em, 1fr)); gap: .6em; }
.slot { border: 1px solid var(--line); border-radius: 4px; padding: .4em .6em; }
.quiet { color: var(--warn); }
.status-landed, .outcome-success { color: var(--ok); }
.status-conflict, .status-gate_failed, .status-refused, .outcome-failed, .outcome-timeout, .outcome-stalled,
.outcome-gate_failed, .outcome-refused, .outcome-error { color: var(--bad); }
form.inline { display: inline-flex; gap: .3em; align-items: center; margin-right: .8em; }
form.new { display: flex; flex-wrap: wrap; gap: .4em; align-items: flex-start; }
form.new input[name=title] { min-width: 20em; flex: 1; } form.new textarea { min-width: 20em; flex: 2; height: 2.2em; }
.error { border: 1px solid var(--bad); padding: .6em; }
.card .reason { font-size: 12px; color: var(--bad); }
form.filter { display: flex; flex-wrap: wrap; gap: .4em; align-items: center; margin: .2em 0 .6em; }
form.filter input[type=search] { min-width: 18em; flex: 1; }
.pager { font-size: 12px; color: var(--muted); margin: .2em 0 .4em; }
.charts { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure.chart { margin: 0; } figure.chart figcaption { font-weight: 600; margin-bottom: .2em; }
.chart rect.bar { fill: var(--accent); } .chart .axis { stroke: var(--line); }
.chart text.tick { font-size: 10px; fill: var(--muted); }
dl.numbers { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; }
dl.numbers dt { color: var(--muted); } dl.numbers dd { margin: 0; }
"""

SCRIPT = """
"use strict";
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
  if (!document.body.hasAttribute("data-live")) { return; }
  var header = document.querySelector("header");
  var source = new EventSource("/api/live" + window.location.search);  // the board as searched and paged
  source.addEventListener("fleet", function (event) {
    var data = JSON.parse(event.data);
    Object.keys(data.html).forEach(function (id) {
      var element = document.getElementById(id);
      if (element) { element.innerHTML = data.html[id]; }
    });
    document.body.setAttribute("data-version", String(data.version));
    header.classList.remove("offline");
  });
  source.addEventListener("error", function () { header.classList.add("offline"); });
})();
"""

ASSETS = {"style.css": ("text/css; charset=utf-8", STYLE), "app.js": ("text/javascript; charset=utf-8", SCRIPT)}
