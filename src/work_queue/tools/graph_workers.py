"""``work_queue_graph_workers``: an HTML timeline of the tasks and workers in a transactions log.

CCTools' tool draws the same views with bokeh; this one writes a single self-contained page
(inline SVG and CSS, no scripts or fonts fetched from anywhere) that any browser opens::

    work_queue_graph_workers [-g] [-t] [-w] [-o out.html] my.tr.log

``-g`` the lifetime of every task (waiting, sending, running, retrieving), ``-t`` the tasks of
each worker in its slots, ``-w`` the lifetime of each worker; without any of them, all three.
Hovering over a bar shows its details.  Reads logs written by this package or by CCTools; when
a log holds several manager runs (it is opened in append mode), the last one is shown.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

LINE = re.compile(r"(\d+) (\d+) (.*)")
EVENT_WORDS = ("MANAGER ", "WORKER ", "CATEGORY ", "TASK ", "TRANSFER ")
TASK = re.compile(r"TASK (\d+) (\S+)(?: (.*))?")
WORKER = re.compile(r"WORKER (\S+) (\S+)  (CONNECTION|DISCONNECTION)(?: (\S+))?")
WORKER_RESOURCES = re.compile(r"WORKER (\S+) RESOURCES (\{.*\})")
TRANSFER = re.compile(r"TRANSFER (INPUT|OUTPUT) (\d+) ([01]) (\S+) (\S+) (.*)")
CATEGORY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22", "#7f7f7f", "#393b79")
WAITING_COLOR = "#d9d9d9"
RETURNED_COLOR = "#a0a0a0"
FAILED_COLOR = "#d62728"


class TransactionsError(Exception):
    """The file cannot be read as a transactions log (the message says why)."""


@dataclass
class Attempt:
    """One dispatch of a task to a worker."""

    worker: str
    start: float  # RUNNING (inputs sent)
    input_start: float | None = None  # first TRANSFER INPUT of this attempt
    finished: float | None = None  # WAITING_RETRIEVAL
    retrieved: float | None = None  # RETRIEVED
    label: str = "FIRST_RESOURCES"
    cores: float = 1.0
    #: Taken back before its result came (worker lost, fast abort): requeued.
    lost: bool = False


@dataclass
class TaskInfo:
    task_id: int
    category: str = "default"
    submitted: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    done: float | None = None
    canceled: float | None = None
    result: str = ""
    exit_code: str = ""
    bytes_in: float = 0.0  # MB
    bytes_out: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.result) and (self.result != "SUCCESS" or self.exit_code != "0")

    @property
    def end(self) -> float:
        times = [self.done, self.canceled, self.submitted]
        for a in self.attempts:
            times += [a.start, a.finished, a.retrieved]
        return max(t for t in times if t is not None)


@dataclass
class WorkerInfo:
    address: str
    worker_id: str
    connected: float
    disconnected: float | None = None
    reason: str = ""
    resources: dict[str, float] = field(default_factory=dict)
    first_task: float | None = None
    tasks: int = 0


@dataclass
class Run:
    """What one manager run (MANAGER START to END) did."""

    pid: str
    start: float
    end: float
    tasks: dict[int, TaskInfo]
    workers: list[WorkerInfo]
    runs_in_file: int = 1
    skipped_lines: int = 0


# -- parsing ---------------------------------------------------------------------------------------

def _last_json(text: str) -> dict[str, object]:
    """The last ``{...}`` object of a line (measured resources, a box), or {}."""
    start = text.rfind(" {")
    try:
        data = json.loads(text[start + 1:] if start >= 0 else text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _number(resources: dict[str, object], name: str, default: float) -> float:
    value = resources.get(name)
    if isinstance(value, list) and value and isinstance(value[0], int | float):
        return float(value[0])
    return default


def parse(lines: Iterable[str]) -> Run:
    """Read a transactions log (ours or CCTools'); the last manager run in it."""
    runs: list[list[tuple[float, str, str]]] = []
    current: list[tuple[float, str, str]] | None = None
    skipped = 0
    seen_any = False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        m = LINE.fullmatch(line)
        if not m or not m.group(3).startswith(EVENT_WORDS):
            skipped += 1
            continue
        seen_any = True
        stamp, pid, text = int(m.group(1)) / 1e6, m.group(2), m.group(3)
        if text == "MANAGER START" or current is None:
            current = []
            runs.append(current)
        current.append((stamp, pid, text))
    if not seen_any:
        raise TransactionsError("no transactions in it (lines such as "
                                "'1599244364466426 16444 MANAGER START'): is this a Work Queue "
                                "transactions log?")
    run = _build(runs[-1])
    run.runs_in_file = len(runs)
    run.skipped_lines = skipped
    return run


def _build(events: Sequence[tuple[float, str, str]]) -> Run:
    builder = _RunBuilder()
    for now, _, text in events:
        builder.line(now, text)
    start = events[0][0] if events else 0.0
    end = max([now for now, _, _ in events] or [start])
    return Run(pid=events[0][1] if events else "?", start=start, end=end,
               tasks=builder.tasks, workers=builder.workers)


class _RunBuilder:
    """Replays one manager run's log lines into tasks (with their attempts) and workers.

    One method per kind of line and one per task state, so each rule about what a line
    means is in one place.  An attempt stays open from RUNNING until the task is retrieved,
    sent back to WAITING (the worker was lost) or canceled; input transfers seen before
    RUNNING mark when the attempt really began."""

    def __init__(self) -> None:
        self.tasks: dict[int, TaskInfo] = {}
        self.workers: list[WorkerInfo] = []
        self.by_address: dict[str, WorkerInfo] = {}
        self.by_id: dict[str, WorkerInfo] = {}
        self.open_attempt: dict[int, Attempt] = {}
        self.pending_input: dict[int, float] = {}

    def task_of(self, task_id: int, now: float) -> TaskInfo:
        t = self.tasks.get(task_id)
        if t is None:
            t = self.tasks[task_id] = TaskInfo(task_id, submitted=now)
        return t

    def line(self, now: float, text: str) -> None:
        m = TASK.fullmatch(text)
        if m:
            on_state = self._TASK_STATES.get(m.group(2))
            if on_state is not None:
                on_state(self, int(m.group(1)), now, m.group(3) or "")
            return
        m = TRANSFER.fullmatch(text)
        if m:
            self.transfer(m, now)
            return
        m = WORKER.fullmatch(text)
        if m:
            self.worker(m, now)
            return
        m = WORKER_RESOURCES.fullmatch(text)
        if m and m.group(1) in self.by_id:
            data = _last_json(m.group(2))
            self.by_id[m.group(1)].resources = {k: _number(data, k, 0.0)
                                                for k in ("cores", "memory", "disk")}

    def _close_lost(self, task_id: int, now: float) -> None:
        """End the task's open attempt, if any, as lost (it did not finish by itself)."""
        a = self.open_attempt.pop(task_id, None)
        if a is not None and a.finished is None:
            a.finished = now
            a.lost = True

    def waiting(self, task_id: int, now: float, args: str) -> None:
        fresh = task_id not in self.tasks
        t = self.task_of(task_id, now)
        t.category = args.split(" ", 1)[0] or t.category
        if fresh:
            t.submitted = now
        self._close_lost(task_id, now)
        self.pending_input.pop(task_id, None)

    def running(self, task_id: int, now: float, args: str) -> None:
        t = self.task_of(task_id, now)
        parts = args.split()
        box = _last_json(args)
        a = Attempt(worker=parts[0] if parts else "?", start=now,
                    input_start=self.pending_input.pop(task_id, None),
                    label=parts[1] if len(parts) > 1 else "FIRST_RESOURCES",
                    cores=_number(box, "cores", 1.0))
        t.attempts.append(a)
        self.open_attempt[task_id] = a
        w = self.by_address.get(a.worker)
        if w is not None:
            w.tasks += 1
            if w.first_task is None:
                w.first_task = now

    def waiting_retrieval(self, task_id: int, now: float, args: str) -> None:
        a = self.open_attempt.get(task_id)
        if a is not None:
            a.finished = now

    def retrieved(self, task_id: int, now: float, args: str) -> None:
        t = self.task_of(task_id, now)
        parts = args.split()
        t.result = parts[0] if parts else "UNKNOWN"
        t.exit_code = parts[1] if len(parts) > 1 else ""
        a = self.open_attempt.pop(task_id, None)
        if a is not None:
            a.retrieved = now
            if a.finished is None:
                a.finished = now

    def done(self, task_id: int, now: float, args: str) -> None:
        t = self.task_of(task_id, now)
        t.done = now
        parts = args.split()
        if parts:
            t.result = parts[0]
            t.exit_code = parts[1] if len(parts) > 1 else t.exit_code

    def canceled(self, task_id: int, now: float, args: str) -> None:
        t = self.task_of(task_id, now)
        if t.canceled is None:
            t.canceled = now
        a = self.open_attempt.pop(task_id, None)
        if a is not None and a.finished is None:
            a.finished = now

    _TASK_STATES: dict[str, Callable[[_RunBuilder, int, float, str], None]] = {
        "WAITING": waiting, "RUNNING": running, "WAITING_RETRIEVAL": waiting_retrieval,
        "RETRIEVED": retrieved, "DONE": done, "CANCELED": canceled, "CANCELLED": canceled,
    }

    def transfer(self, m: re.Match[str], now: float) -> None:
        task_id = int(m.group(2))
        t = self.task_of(task_id, now)
        try:
            size = float(m.group(4))
        except ValueError:
            size = 0.0
        if m.group(1) == "INPUT":
            t.bytes_in += size
            self.pending_input.setdefault(task_id, now)
        else:
            t.bytes_out += size

    def worker(self, m: re.Match[str], now: float) -> None:
        worker_id, address, what = m.group(1), m.group(2), m.group(3)
        if what == "CONNECTION":
            w = WorkerInfo(address, worker_id, connected=now)
            self.workers.append(w)
            self.by_address[address] = w
            self.by_id[worker_id] = w
            return
        w = self.by_address.get(address)
        if w is None:  # disconnected before it said who it was
            return
        w.disconnected = now
        w.reason = m.group(4) or "UNKNOWN"


def bind_slots(run: Run) -> dict[str, list[list[tuple[TaskInfo, Attempt]]]]:
    """Per worker, the attempts laid out in slots so that none overlap (first fit)."""
    per_worker: dict[str, list[tuple[TaskInfo, Attempt]]] = {}
    for t in run.tasks.values():
        for a in t.attempts:
            per_worker.setdefault(a.worker, []).append((t, a))
    slots: dict[str, list[list[tuple[TaskInfo, Attempt]]]] = {}
    for worker, items in per_worker.items():
        items.sort(key=lambda ta: _attempt_begin(ta[1]))
        lanes: list[list[tuple[TaskInfo, Attempt]]] = []
        ends: list[float] = []
        for t, a in items:
            begin = _attempt_begin(a)
            for i, lane_end in enumerate(ends):
                if lane_end <= begin:
                    lanes[i].append((t, a))
                    ends[i] = _attempt_end(t, a, run.end)
                    break
            else:
                lanes.append([(t, a)])
                ends.append(_attempt_end(t, a, run.end))
        slots[worker] = lanes
    return slots


def _attempt_begin(a: Attempt) -> float:
    return a.input_start if a.input_start is not None else a.start


def _attempt_end(t: TaskInfo, a: Attempt, fallback: float) -> float:
    for value in (a.retrieved, a.finished):
        if value is not None:
            return value
    return t.canceled if t.canceled is not None else fallback


# -- drawing ---------------------------------------------------------------------------------------

def _nice_step(span: float, target: int = 10) -> float:
    raw = max(span, 1e-9) / target
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _fmt_time(seconds: float) -> str:
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.3f} s" if abs(seconds) < 10 else f"{seconds:.1f} s"


def _tick(seconds: float, step: float) -> str:
    """An axis label: in the unit of the step, with as many decimals as the step needs."""
    unit, size = ("h", 3600.0) if step >= 3600 else ("min", 60.0) if step >= 60 else ("s", 1.0)
    value, stride = seconds / size, step / size
    decimals = max(0, -math.floor(math.log10(stride))) if stride < 1 else 0
    return f"{value:.{decimals}f} {unit}"


class _Canvas:
    """An SVG timeline: time on x, rows on y."""

    LEFT = 150
    RIGHT = 20
    TOP = 34
    WIDTH = 1100

    def __init__(self, t0: float, t1: float, rows: int, title: str, max_height: int = 2400):
        self.t0 = t0
        self.t1 = max(t1, t0 + 1e-6)
        self.row_h = max(1.0, min(16.0, (max_height - self.TOP - 40) / max(rows, 1)))
        self.rows = rows
        self.height = int(self.TOP + rows * self.row_h + 40)
        self.title = title
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return self.LEFT + (t - self.t0) / (self.t1 - self.t0) * (self.WIDTH - self.LEFT
                                                                  - self.RIGHT)

    def y(self, row: float) -> float:
        return self.TOP + row * self.row_h

    def bar(self, row: float, a: float, b: float, color: str, extra: str = "",
            height: float = 0.8) -> str:
        x0, x1 = self.x(a), self.x(max(b, a))
        h = max(self.row_h * height, 0.8)
        y = self.y(row) + (self.row_h - h) / 2
        return (f'<rect x="{x0:.2f}" y="{y:.2f}" width="{max(x1 - x0, 0.6):.2f}" '
                f'height="{h:.2f}" fill="{color}"{extra}/>')

    def label(self, row: float, text: str) -> str:
        if self.row_h < 9:
            return ""
        return (f'<text x="{self.LEFT - 6}" y="{self.y(row) + self.row_h * 0.75:.2f}" '
                f'class="rowlabel">{html.escape(text)}</text>')

    def svg(self, body: Iterable[str]) -> str:
        step = _nice_step(self.t1 - self.t0)
        ticks = []
        bottom = self.y(self.rows)
        k = 0
        while k * step <= self.t1 - self.t0 + 1e-9:
            t = self.t0 + k * step
            x = self.x(t)
            ticks.append(f'<line x1="{x:.2f}" y1="{self.TOP - 4}" x2="{x:.2f}" y2="{bottom:.2f}" '
                         f'class="grid"/><text x="{x:.2f}" y="{bottom + 16:.2f}" '
                         f'class="tick">{html.escape(_tick(k * step, step))}</text>')
            k += 1
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.WIDTH} '
                f'{self.height}" width="{self.WIDTH}" height="{self.height}" role="img">'
                f'<title>{html.escape(self.title)}</title>'
                + "".join(ticks) + "".join(body)
                + f'<text x="{(self.LEFT + self.WIDTH) / 2:.0f}" y="{bottom + 34:.2f}" '
                  f'class="axis">time since the manager started</text></svg>')


def _colors(run: Run) -> dict[str, str]:
    names = sorted({t.category for t in run.tasks.values()})
    return {n: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, n in enumerate(names)}


def _task_tooltip(run: Run, t: TaskInfo) -> str:
    rel = run.start
    lines = [f"task {t.task_id} ({t.category})", f"submitted at {_fmt_time(t.submitted - rel)}"]
    for i, a in enumerate(t.attempts, 1):
        end = _attempt_end(t, a, run.end)
        lost = " (taken back, requeued)" if a.lost else ""
        lines.append(f"attempt {i} on {a.worker} ({a.label}, {a.cores:g} cores): running "
                     f"{_fmt_time(a.start - rel)} to {_fmt_time((a.finished or end) - rel)}"
                     + lost)
    if t.result:
        lines.append(f"result {t.result}, exit code {t.exit_code}")
    if t.canceled is not None:
        lines.append(f"cancelled at {_fmt_time(t.canceled - rel)}")
    if t.done is not None:
        lines.append(f"returned at {_fmt_time(t.done - rel)}")
    lines.append(f"inputs {t.bytes_in:.3f} MB, outputs {t.bytes_out:.3f} MB")
    return "\n".join(lines)


def tasks_view(run: Run) -> str:
    """Every task on its own row, in submission order: waiting, sending, running, fetching."""
    colors = _colors(run)
    tasks = sorted(run.tasks.values(), key=lambda t: (t.submitted, t.task_id))
    c = _Canvas(run.start, run.end, len(tasks), "Tasks lifetime")
    body = []
    for row, t in enumerate(tasks):
        color = colors[t.category]
        parts = [f'<g class="task"><title>{html.escape(_task_tooltip(run, t))}</title>']
        waiting_since = t.submitted
        for a in t.attempts:
            parts.append(c.bar(row, waiting_since, _attempt_begin(a), WAITING_COLOR))
            if a.input_start is not None and a.start > a.input_start:
                parts.append(c.bar(row, a.input_start, a.start, color, ' class="send"'))
            finished = a.finished if a.finished is not None else _attempt_end(t, a, run.end)
            outline = f' style="stroke:{FAILED_COLOR};stroke-width:1"' if t.failed else ""
            parts.append(c.bar(row, a.start, finished, color, outline))
            if a.retrieved is not None and a.retrieved > finished:
                parts.append(c.bar(row, finished, a.retrieved, color, ' class="fetch"'))
            if a.lost:
                x = c.x(finished)
                parts.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{c.y(row):.2f}" '
                             f'y2="{c.y(row) + c.row_h:.2f}" class="lost"/>')
            waiting_since = a.retrieved if a.retrieved is not None else finished
        if not t.attempts:
            end = next((v for v in (t.canceled, t.done) if v is not None), run.end)
            parts.append(c.bar(row, t.submitted, end, WAITING_COLOR))
        last = t.attempts[-1].retrieved if t.attempts else None
        if t.done is not None and last is not None and t.done > last:
            parts.append(c.bar(row, last, t.done, RETURNED_COLOR, "", height=0.3))
        if t.canceled is not None:
            x = c.x(t.canceled)
            y = c.y(row) + c.row_h / 2
            parts.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="{max(c.row_h / 3, 1.5):.2f}" '
                         'class="cancel"/>')
        parts.append(c.label(row, f"task {t.task_id}"))
        parts.append("</g>")
        body.append("".join(parts))
    return c.svg(body)


def slots_view(run: Run) -> str:
    """Each worker's attempts in non-overlapping slots (CCTools' ``-t``)."""
    colors = _colors(run)
    slots = bind_slots(run)
    order = [w.address for w in run.workers if w.address in slots]
    order += sorted(a for a in slots if a not in order)
    rows = sum(len(slots[a]) for a in order) + len(order)
    c = _Canvas(run.start, run.end, rows, "Tasks on each worker")
    body = []
    row = 0
    for address in order:
        body.append(f'<text x="{c.LEFT - 6}" y="{c.y(row) + min(c.row_h, 12) * 0.9:.2f}" '
                    f'class="rowlabel worker">{html.escape(address)}</text>')
        body.append(f'<line x1="{c.LEFT}" x2="{c.WIDTH - c.RIGHT}" y1="{c.y(row):.2f}" '
                    f'y2="{c.y(row):.2f}" class="sep"/>')
        row += 1
        for lane in slots[address]:
            for t, a in lane:
                end = _attempt_end(t, a, run.end)
                color = colors[t.category]
                outline = f' style="stroke:{FAILED_COLOR};stroke-width:1"' if t.failed else ""
                body.append(f'<g class="task"><title>{html.escape(_task_tooltip(run, t))}'
                            f'</title>{c.bar(row, _attempt_begin(a), end, color, outline)}</g>')
            row += 1
    return c.svg(body)


def workers_view(run: Run) -> str:
    """Each worker from connection to disconnection: idle until its first task, then working."""
    workers = sorted(run.workers, key=lambda w: w.connected)
    c = _Canvas(run.start, run.end, len(workers), "Workers lifetime")
    body = []
    for row, w in enumerate(workers):
        leave = w.disconnected if w.disconnected is not None else run.end
        first = w.first_task if w.first_task is not None else leave
        res = ", ".join(f"{k} {v:g}" for k, v in w.resources.items())
        tip = (f"worker {w.address} ({w.worker_id})\n{res}\nconnected at "
               f"{_fmt_time(w.connected - run.start)}\nfirst task at "
               f"{_fmt_time(first - run.start) if w.first_task is not None else '-'}\n"
               f"left at {_fmt_time(leave - run.start)} ({w.reason or 'still connected'})\n"
               f"{w.tasks} task attempt(s)")
        bars = c.bar(row, w.connected, first, "#c6dbef") + c.bar(row, first, leave, "#2171b5")
        if w.reason and w.reason not in ("EXPLICIT",):
            x = c.x(leave)
            bars += (f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{c.y(row):.2f}" '
                     f'y2="{c.y(row) + c.row_h:.2f}" class="lost"/>')
        body.append(f'<g class="worker"><title>{html.escape(tip)}</title>{bars}'
                    f'{c.label(row, w.address)}</g>')
    return c.svg(body)


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 6px}
p.note{color:#555;margin:2px 0 10px;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.legend{font-size:13px;margin:6px 0} .legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
svg{max-width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#444} svg .rowlabel{text-anchor:end;font-size:10px}
svg .worker{font-weight:600} svg .tick{text-anchor:middle} svg .axis{text-anchor:middle}
svg .grid{stroke:#e6e6e6;stroke-width:1} svg .sep{stroke:#bbb;stroke-width:0.5}
svg .send{opacity:0.45} svg .fetch{opacity:0.6}
svg .cancel{fill:#fff;stroke:#000;stroke-width:1}
svg .lost{stroke:#d62728;stroke-width:2}
svg g.task rect{stroke:#fff;stroke-width:0.4}
svg g.task:hover rect,svg g.worker:hover rect{stroke:#000;stroke-width:1}
"""


def _summary(run: Run, source: str) -> str:
    tasks = list(run.tasks.values())
    done = [t for t in tasks if t.done is not None]
    failed = [t for t in done if t.failed]
    canceled = [t for t in tasks if t.canceled is not None]
    rows = [("tasks", len(tasks)), ("returned", len(done)), ("with a failure or non-zero exit",
                                                              len(failed)),
            ("cancelled", len(canceled)),
            ("attempts on workers", sum(len(t.attempts) for t in tasks)),
            ("workers", len(run.workers)),
            ("inputs sent (MB)", f"{sum(t.bytes_in for t in tasks):.3f}"),
            ("outputs received (MB)", f"{sum(t.bytes_out for t in tasks):.3f}"),
            ("duration", _fmt_time(run.end - run.start))]
    cats: dict[str, list[float]] = {}
    for t in tasks:
        for a in t.attempts:
            if a.finished is not None:
                cats.setdefault(t.category, []).append(a.finished - a.start)
    cat_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{sum(1 for t in tasks if t.category == name)}</td>"
        f"<td>{_fmt_time(sum(v) / len(v)) if v else '-'}</td></tr>"
        for name, v in sorted(cats.items()) + [(n, []) for n in sorted(
            {t.category for t in tasks} - set(cats))])
    note = ""
    if run.runs_in_file > 1:
        note = (f"<p class='note'>The log holds {run.runs_in_file} manager runs; this page shows "
                "the last one.</p>")
    if run.skipped_lines:
        note += f"<p class='note'>{run.skipped_lines} line(s) that are not transactions were " \
                "skipped.</p>"
    return (f"<h1>Work Queue transactions: {html.escape(source)}</h1>"
            f"<p class='note'>manager pid {html.escape(run.pid)}</p>{note}"
            "<table>" + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table><table><tr><th>category</th><th>tasks</th><th>mean running time</th></tr>"
            + cat_rows + "</table>")


def _legend(run: Run) -> str:
    items = [f'<span><i style="background:{color}"></i>{html.escape(name)}</span>'
             for name, color in _colors(run).items()]
    items += [f'<span><i style="background:{WAITING_COLOR}"></i>waiting</span>',
              f'<span><i style="background:{RETURNED_COLOR};height:4px"></i>'
              "retrieved, not yet returned</span>",
              f'<span><i style="border:1px solid {FAILED_COLOR};background:none"></i>'
              "failed or non-zero exit</span>",
              '<span><i style="border:1px solid #000;border-radius:6px;background:#fff"></i>'
              "cancelled</span>",
              '<span><i style="background:#d62728;width:3px"></i>taken back from its worker'
              "</span>"]
    return "<div class='legend'>" + "".join(items) + "</div>"


def render(run: Run, source: str, views: Sequence[str] = ("g", "t", "w")) -> str:
    """The whole page."""
    sections = [_summary(run, source)]
    if "g" in views:
        sections.append("<h2>Tasks lifetime</h2><p class='note'>One row per task, in submission "
                        "order: grey while waiting, pale while its inputs are sent, coloured by "
                        "category while it runs, lighter while its outputs are fetched.</p>"
                        + _legend(run) + tasks_view(run))
    if "t" in views:
        sections.append("<h2>Tasks on each worker</h2><p class='note'>The attempts each worker "
                        "ran, laid out in slots so that none overlap.</p>" + slots_view(run))
    if "w" in views:
        sections.append("<h2>Workers lifetime</h2><p class='note'>Light from connection to its "
                        "first task, dark while it had work to do; a red mark when it left for "
                        "another reason than being released.</p>" + workers_view(run))
    title = html.escape(f"Work Queue transactions: {source}")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{STYLE}</style></head><body>"
            + "".join(sections)
            + "<p class='note'>Written by work_queue_graph_workers.</p></body></html>\n")


# -- command line ----------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="work_queue_graph_workers",
        description="Draw the tasks and workers of a Work Queue transactions log as a "
                    "self-contained HTML page.")
    p.add_argument("log", help="transactions log (WorkQueue(transactions_log=...))")
    p.add_argument("-g", action="store_true", help="lifetime of every task")
    p.add_argument("-t", action="store_true", help="tasks of each worker, in slots")
    p.add_argument("-w", action="store_true", help="lifetime of each worker")
    p.add_argument("-o", dest="output", help="output file (default: <log>.html)")
    args = p.parse_args(argv)
    views = [v for v in "gtw" if getattr(args, v)] or ["g", "t", "w"]
    output = args.output or args.log + ".html"
    try:
        with open(args.log) as f:
            run = _parse_file(f)
        page = render(run, args.log, views)
        with open(output, "w") as out:
            out.write(page)
    except TransactionsError as e:
        sys.stderr.write(f"work_queue_graph_workers: {args.log}: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"work_queue_graph_workers: {e.filename or args.log}: "
                         f"{e.strerror or e}\n")
        return 1
    print(f"Generating '{output}'.")
    return 0


def _parse_file(f: TextIO) -> Run:
    try:
        return parse(f)
    except UnicodeDecodeError:
        raise TransactionsError("not a text file") from None


if __name__ == "__main__":
    sys.exit(main())
