"""The catalog's status web pages: every manager at ``/``, one manager at ``/manager/<key>``.

Both pages are complete when they arrive (the server fills in the tables, so they read fine
without JavaScript) and then refresh themselves: the overview from ``/api/managers.json``
(numbers and recent history of each manager, drawn as a small chart), the manager page from
``/api/manager/<key>/<queue|worker|wable|task>`` (the catalog asks the manager itself).
``?refresh=<seconds>`` changes the refresh period (default 5 s).
"""

from __future__ import annotations

import html
import json
import urllib.parse
from typing import Any

from .records import record_key  # the key the server files managers under

OVERVIEW_FIELDS = ("project", "name", "port", "owner", "version", "tasks_waiting",
                   "tasks_running", "tasks_complete", "workers", "lastheardfrom", "starttime",
                   "ssl", "type")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em 2em;
 color:#1d2330;background:#f6f7f9}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.sub{color:#667;font-size:.9em;margin-bottom:1em}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002;min-width:40em}
th,td{padding:.35em .8em;text-align:right;border-bottom:1px solid #e4e6ea;white-space:nowrap}
th{background:#2b3a55;color:#fff;font-weight:600;font-size:.85em;letter-spacing:.03em}
td.l,th.l{text-align:left}tr:hover td{background:#f0f4ff}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
.chart{display:block}.legend span{display:inline-block;margin-right:1em;font-size:.8em}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px}
.empty{color:#889;padding:1em}.err{color:#b00020}
.num{font-variant-numeric:tabular-nums}
"""

_COLORS = {"tasks_waiting": "#e09b1a", "tasks_running": "#2f7de1",
           "tasks_complete": "#2a9d55", "workers": "#8e44ad"}

_CHART_JS = """
function chart(series, w, h) {
  // series: [[t, waiting, running, complete, workers], ...]
  const colors = %COLORS%;
  const names = ["tasks_waiting", "tasks_running", "tasks_complete", "workers"];
  let svg = '<svg class="chart" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w +
            ' ' + h + '"><rect width="' + w + '" height="' + h + '" fill="#fafbfc" ' +
            'stroke="#dde"/>';
  if (series.length > 0) {
    const t0 = series[0][0], t1 = Math.max(series[series.length - 1][0], t0 + 1);
    for (let k = 1; k <= 4; k++) {
      let top = 1;
      for (const p of series) top = Math.max(top, p[k]);
      const pts = series.map(p => ((p[0] - t0) / (t1 - t0) * (w - 4) + 2).toFixed(1) + ',' +
                                  (h - 2 - p[k] / top * (h - 4)).toFixed(1));
      if (pts.length === 1) pts.push((w - 2) + ',' + pts[0].split(',')[1]);
      svg += '<polyline fill="none" stroke-width="1.6" stroke="' + colors[names[k - 1]] +
             '" points="' + pts.join(' ') + '"><title>' + names[k - 1] + ' (max ' + top +
             ')</title></polyline>';
    }
  }
  return svg + '</svg>';
}
function esc(s) {
  return String(s === undefined || s === null ? '' : s).replace(/[&<>"']/g,
    c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
}
function refreshPeriod() {
  const m = /[?&]refresh=([0-9.]+)/.exec(location.search);
  return m ? Math.max(0.2, parseFloat(m[1])) * 1000 : 5000;
}
function stamp(ok, text) {
  document.body.dataset.refreshes = String(parseInt(document.body.dataset.refreshes || '0') +
                                           (ok ? 1 : 0));
  document.getElementById('updated').textContent = text;
}
""".replace("%COLORS%", json.dumps(_COLORS))

_LEGEND = "".join(f'<span><i style="background:{c}"></i>{n.replace("tasks_", "")}</span>'
                  for n, c in _COLORS.items())


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def manager_link(key: str) -> str:
    return "/manager/" + urllib.parse.quote(key, safe="")


def overview_html(server: str, records: list[dict], snapshot_time: int = 0) -> str:
    """The page at ``/``: one row per manager, refreshed every few seconds."""
    rows = []
    for r in records:
        if r.get("type") not in ("wq_master", "wq_manager"):
            continue
        key = record_key(r)
        rows.append(
            f'<tr data-key="{_e(key)}"><td class="l"><a href="{_e(manager_link(key))}">'
            f'{_e(r.get("project"))}</a></td><td class="l">{_e(r.get("name"))}</td>'
            f'<td class="num">{_e(r.get("port"))}</td>'
            f'<td class="num waiting">{_e(r.get("tasks_waiting"))}</td>'
            f'<td class="num running">{_e(r.get("tasks_running"))}</td>'
            f'<td class="num complete">{_e(r.get("tasks_complete"))}</td>'
            f'<td class="num workers">{_e(r.get("workers"))}</td><td class="l"></td></tr>')
    others = sum(1 for r in records if r.get("type") not in ("wq_master", "wq_manager"))
    body_rows = "".join(rows) or '<tr><td class="empty l" colspan="8">No managers are ' \
                                 'advertising to this catalog.</td></tr>'
    live = "false" if snapshot_time else "true"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{_e(server)} catalog server</title>
<style>{_STYLE}</style></head>
<body data-refreshes="0">
<h1>Work Queue managers</h1>
<div class="sub">catalog server {_e(server)} &middot; <span id="count">{len(rows)}</span>
manager(s), {others} other record(s) &middot; <span id="updated">as served</span> &middot;
<a href="/query.json">json</a> &middot; <a href="/query.text">text</a></div>
<table id="managers"><thead><tr><th class="l">PROJECT</th><th class="l">HOST</th><th>PORT</th>
<th>WAITING</th><th>RUNNING</th><th>COMPLETE</th><th>WORKERS</th>
<th class="l">HISTORY</th></tr></thead><tbody>{body_rows}</tbody></table>
<div class="legend" style="margin-top:.6em">{_LEGEND}</div>
<script>
{_CHART_JS}
const LIVE = {live};
async function refresh() {{
  try {{
    const r = await fetch('/api/managers.json', {{cache: 'no-store'}});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const data = await r.json();
    const rows = data.managers.map(m =>
      '<tr data-key="' + esc(m.key) + '"><td class="l"><a href="/manager/' +
      encodeURIComponent(m.key) + '">' + esc(m.project) + '</a></td><td class="l">' +
      esc(m.name) + '</td><td class="num">' + esc(m.port) + '</td>' +
      '<td class="num waiting">' + esc(m.tasks_waiting) + '</td>' +
      '<td class="num running">' + esc(m.tasks_running) + '</td>' +
      '<td class="num complete">' + esc(m.tasks_complete) + '</td>' +
      '<td class="num workers">' + esc(m.workers) + '</td><td class="l">' +
      chart(m.series, 180, 34) + '</td></tr>');
    document.querySelector('#managers tbody').innerHTML = rows.join('') ||
      '<tr><td class="empty l" colspan="8">No managers are advertising to this ' +
      'catalog.</td></tr>';
    document.getElementById('count').textContent = data.managers.length;
    stamp(true, 'updated ' + new Date(data.now * 1000).toLocaleTimeString());
  }} catch (e) {{
    stamp(false, 'update failed: ' + e.message);
  }}
}}
if (LIVE) {{ refresh(); setInterval(refresh, refreshPeriod()); }}
</script>
</body></html>
"""


def manager_html(server: str, key: str, record: dict) -> str:
    """The page of one manager: its numbers, history, workers, categories and tasks."""
    api = "/api/manager/" + urllib.parse.quote(key, safe="")
    summary = [("project", "Project"), ("name", "Host"), ("port", "Port"), ("owner", "Owner"),
               ("version", "Version"), ("tasks_waiting", "Waiting"),
               ("tasks_running", "Running"), ("tasks_complete", "Complete"),
               ("workers", "Workers"), ("working_dir", "Working directory")]
    cells = "".join(f'<tr><th class="l">{label}</th><td class="l" id="f-{field}">'
                    f'{_e(record.get(field))}</td></tr>' for field, label in summary)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{_e(record.get("project"))} - Work Queue</title>
<style>{_STYLE} table.kv{{min-width:0}} table.kv th{{text-align:left}}</style></head>
<body data-refreshes="0">
<h1>Manager {_e(record.get("project"))}</h1>
<div class="sub"><a href="/">&larr; all managers</a> &middot; catalog server {_e(server)}
&middot; <span id="updated">as served</span></div>
<table class="kv">{cells}</table>
<h2>History</h2><div id="history"></div><div class="legend">{_LEGEND}</div>
<h2>Workers</h2><div id="workers" class="empty">loading&hellip;</div>
<h2>Categories</h2><div id="categories" class="empty">loading&hellip;</div>
<h2>Tasks</h2><div id="tasks" class="empty">loading&hellip;</div>
<script>
{_CHART_JS}
const KEY = {json.dumps(key)}, API = {json.dumps(api)};
const TABLES = {{
  workers: ['worker', [['hostname', 'HOST', 1], ['address_port', 'ADDRESS', 1],
            ['total_tasks_complete', 'COMPLETED'], ['total_tasks_running', 'RUNNING'],
            ['cores_inuse', 'CORES USED'], ['cores_total', 'CORES'],
            ['memory_inuse', 'MEMORY USED'], ['memory_total', 'MEMORY'],
            ['disk_inuse', 'DISK USED'], ['disk_total', 'DISK']]],
  categories: ['wable', [['category', 'CATEGORY', 1], ['tasks_waiting', 'WAITING'],
               ['tasks_running', 'RUNNING'], ['tasks_done', 'DONE'],
               ['workers_able', 'FIT-WORKERS'], ['max_cores', 'MAX-CORES'],
               ['max_memory', 'MAX-MEMORY'], ['max_disk', 'MAX-DISK']]],
  tasks: ['task', [['taskid', 'ID'], ['state', 'STATE', 1], ['category', 'CATEGORY', 1],
          ['host', 'HOST', 1], ['command', 'COMMAND', 1], ['cores', 'CORES'],
          ['memory', 'MEMORY'], ['disk', 'DISK']]],
}};
function table(rows, cols) {{
  if (!rows.length) return '<div class="empty">none</div>';
  return '<table><thead><tr>' + cols.map(c => '<th' + (c[2] ? ' class="l"' : '') + '>' +
    c[1] + '</th>').join('') + '</tr></thead><tbody>' + rows.slice(0, 500).map(r => '<tr>' +
    cols.map(c => '<td' + (c[2] ? ' class="l"' : ' class="num"') + '>' + esc(r[c[0]]) +
    '</td>').join('') + '</tr>').join('') + '</tbody></table>' +
    (rows.length > 500 ? '<div class="sub">and ' + (rows.length - 500) + ' more</div>' : '');
}}
async function refresh() {{
  let ok = true;
  try {{
    const r = await fetch('/api/managers.json', {{cache: 'no-store'}});
    const data = await r.json();
    const m = data.managers.find(x => x.key === KEY);
    if (m) {{
      for (const f of ['tasks_waiting', 'tasks_running', 'tasks_complete', 'workers']) {{
        const el = document.getElementById('f-' + f);
        if (el) el.textContent = m[f];
      }}
      document.getElementById('history').innerHTML = chart(m.series, 640, 120);
    }}
  }} catch (e) {{ ok = false; }}
  for (const [id, [request, cols]] of Object.entries(TABLES)) {{
    const el = document.getElementById(id);
    try {{
      const r = await fetch(API + '/' + request, {{cache: 'no-store'}});
      const rows = await r.json();
      if (!r.ok) throw new Error(rows.error || ('HTTP ' + r.status));
      el.className = '';
      el.innerHTML = table(rows, cols);
    }} catch (e) {{
      ok = false;
      el.className = 'err';
      el.textContent = 'could not ask the manager: ' + e.message;
    }}
  }}
  stamp(ok, (ok ? 'updated ' : 'partly updated ') + new Date().toLocaleTimeString());
}}
refresh(); setInterval(refresh, refreshPeriod());
</script>
</body></html>
"""
