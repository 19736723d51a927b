"""The live status display of a queue in a Jupyter notebook (``status_display_interval``).

``WorkQueue(..., status_display_interval=N)`` shows, under the cell that made the queue, the
tables of CCTools 7.17.1's ``ndcctools.work_queue_display``: application info, queue stats,
the workers' resources and each category's allocations.  ``wait()`` redraws them at most
every ``N`` seconds (and at once when the last task comes back, and at ``close()``).

The names, arguments and tables are CCTools'.  Two things differ, both for the better:

* CCTools draws into ``ipywidgets.HTML`` boxes, so without ipywidgets (not a dependency of
  Jupyter) nothing shows, and a saved notebook or ``nbconvert`` keeps no figures.  Here the
  tables are one ``text/html`` output (with a ``text/plain`` copy for consoles) updated in
  place through an IPython display handle: any kernel frontend shows it, and the last
  figures stay in the notebook file.
* CCTools' wait blocks in C, so its tables change only between ``wait()`` calls; here the
  manager's loop redraws them during a long ``wait()`` too.

The tables are made from ``queue.status("queue")``, the snapshot ``work_queue_status`` gets
(:mod:`.snapshot`), never from the live state.  Outside a Jupyter kernel (a plain ``python``,
a terminal IPython) the display is not active and ``WorkQueue`` keeps none: nothing is
printed, and IPython is never imported by this module.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from string import Template
from typing import Any

#: A table for the renderers: rows of cells (a pair table's rows have two cells).
Rows = list[Sequence[Any]]


class StatusDisplay:
    """The figures of a queue as tables; a subclass draws them (CCTools' base class).

    ``update`` redraws at most every ``interval`` seconds unless ``force`` is given."""

    resources = ["cores", "gpus", "memory", "disk"]

    def __init__(self, interval: float = 10) -> None:
        self.interval = interval
        self._last_update_report = 0.0

    def active(self) -> bool:
        raise NotImplementedError

    def update(self, queue: Any = None, force: bool = False) -> None:
        now = time.time()
        if not force and self._last_update_report + self.interval > now:
            return
        self._last_update_report = now
        (q_info, rw_info, rc_info, app_info) = self.generate_table_data(queue)
        self.update_display(q_info, rw_info, rc_info, app_info)

    def refresh(self, queue: Any, force: bool = False) -> None:
        """``update`` as the queue calls it (CCTools' ``WorkQueue._update_status_display``):
        a broken display is reported on stderr and never stops the program's ``wait()``."""
        if not force and self._last_update_report + self.interval > time.time():
            return  # the common case, without the cost of a try block
        try:
            self.update(queue, force)
        except Exception as e:
            print(f"status display error {e}", file=sys.stderr)

    def update_display(self, queue_info: Any, resources_worker_info: Any,
                       resources_category_info: Any, app_info: Any) -> None:
        raise NotImplementedError

    def generate_table_data(self, queue: Any = None) -> tuple[Any, Any, Any, Any]:
        queue_s = None
        app_s = None
        if queue:
            try:
                queue_s = queue.status("queue")[0]
            except Exception as e:
                print(f"Error reading work queue status: {e}", file=sys.stderr)
            try:
                app_s = queue.application_info()
            except Exception as e:
                print(f"Error reading application information status: {e}", file=sys.stderr)
        rc_info = self.generate_resource_category_tables(queue_s)
        rw_info = self.generate_resource_worker_tables(queue_s)
        q_info = self.generate_queue_table(queue_s)
        app_info = self.generate_app_table(app_s)
        return (q_info, rw_info, rc_info, app_info)

    def generate_resource_worker_tables(self, queue_s: dict[str, Any] | None) -> list[Rows] | None:
        """One table: a header row, then the largest worker, what is allocated, the total."""
        if not queue_s:
            return None
        rs: Rows = [["application resources"] + StatusDisplay.resources]
        for suffix, label in (("largest", "largest worker"), ("inuse", "allocated"),
                              ("total", "total")):
            rs.append(self.resources_to_row(self._dict_from_q(queue_s, suffix), label, "na"))
        return [rs]

    def generate_resource_category_tables(self, queue_s: dict[str, Any] | None,
                                          ) -> list[Rows] | None:
        """A table per category (by name): its header, a warning row when its maximum
        allocation is larger than the largest worker, then its largest seen, current and
        maximum allocations."""
        if not queue_s:
            return None
        largest_worker = None
        if queue_s["workers_connected"] > 0:
            largest_worker = self._dict_from_q(queue_s, "largest")
        cs = []
        for c in sorted(queue_s["categories"], key=lambda c: c["category"]):
            ct: Rows = [[c["category"]] + StatusDisplay.resources]
            larger_worker = self.resources_check_limits(c["max_allocation"], largest_worker)
            if larger_worker:
                ct.append(["current workers are too small!"] + larger_worker)
            for key, label, na in (("max_seen", "largest seen", "na"),
                                   ("first_allocation", "current allocation", "whole worker"),
                                   ("max_allocation", "maximum allocation", "whole worker")):
                if key in c:
                    ct.append(self.resources_to_row(c[key], label, na))
            cs.append(ct)
        return cs

    def generate_queue_table(self, queue_s: dict[str, Any] | None) -> list[tuple[str, str]] | None:
        if not queue_s:
            return None
        stats = ["port", "tasks_done", "tasks_waiting", "tasks_running",
                 "tasks_exhausted_attempts", "workers_connected", "workers_busy"]
        pairs = [(key.replace("_", " "), str(queue_s[key])) for key in stats]
        pairs.append(("sent", self.with_units("disk", queue_s["bytes_sent"] / 1e6, "na")))
        pairs.append(("received", self.with_units("disk", queue_s["bytes_received"] / 1e6, "na")))

        def usecs(value: float) -> str:
            return str(timedelta(seconds=math.ceil(value / 1e6)))

        # CCTools shows time_send as the receive time too (a slip); this is time_receive.
        pairs.append(("total send time", usecs(queue_s["time_send"])))
        pairs.append(("total receive time", usecs(queue_s["time_receive"])))
        pairs.append(("total good task time", usecs(queue_s["time_workers_execute_good"])))
        pairs.append(("total task time", usecs(queue_s["time_workers_execute"])))
        pairs.append(("runtime", usecs(time.time() * 1e6 - queue_s["time_when_started"])))
        return pairs

    def generate_app_table(self, app_s: dict[str, Any] | None) -> list[tuple[str, str]] | None:
        """``{"application_info": {"values": {...}, "units": {...}}}`` as pairs; values in
        ``MB`` get the units of a disk size."""
        if not app_s:
            return None
        try:
            app_info = app_s["application_info"]
            values = app_info["values"]
            units = app_info.get("units", {})
        except (KeyError, TypeError, AttributeError):
            return None
        pairs = []
        try:
            for key in values:
                unit = units.get(key, None)
                value = values[key]
                if unit == "MB":
                    value = self.with_units("disk", value, "na")
                elif unit:
                    value = f"{value} {unit}"
                else:
                    value = str(value)
                pairs.append((key.replace("_", " "), value))
        except Exception as e:
            pairs = [("internal error reading status", str(e))]
        return pairs

    def resources_to_row(self, values: dict[str, Any], alloc: str, na: str = "na") -> list[str]:
        rs = [alloc]
        for r in StatusDisplay.resources:
            rs.append(self.with_units(r, values[r], na) if r in values else na)
        return rs

    def resources_check_limits(self, values: dict[str, Any], limit: dict[str, Any] | None,
                               ) -> list[str] | None:
        """Per resource "ok" or "<largest> is too small", or None when every value fits."""
        if not limit:
            return None
        limits_broken = False
        rs = []
        for r in StatusDisplay.resources:
            check = "ok"
            largest, value = limit.get(r), values.get(r)
            if isinstance(value, numbers.Number) and isinstance(largest, numbers.Number) \
                    and value > largest:  # type: ignore[operator]
                limits_broken = True
                check = f"{self.with_units(r, largest, '')} is too small"
            rs.append(check)
        return rs if limits_broken else None

    def with_units(self, resource: str, value: Any, na: str) -> str:
        """Cores and gpus with one decimal, memory and disk (in MB) as MB, GB or TB;
        ``na`` for a missing or negative value."""
        if value is None:
            return na
        if not isinstance(value, numbers.Number):
            return str(value)
        if value < 0:  # type: ignore[operator]
            return na
        if resource not in ["memory", "disk"]:
            return f"{value:.1f}"
        size = float(value)  # type: ignore[arg-type]
        units = ["MB", "GB", "TB"]
        while size >= 1000 and len(units) > 1:
            size /= 1000.0
            units.pop(0)
        return f"{size:.2f} {units[0]}"

    def _dict_from_q(self, queue_s: dict[str, Any], suffix: str) -> dict[str, Any]:
        return {r: queue_s[f"{r}_{suffix}"] for r in StatusDisplay.resources}


def _kernel_shell() -> Any:
    """The IPython shell of the Jupyter kernel this process is, or None.  IPython is not
    imported here: a kernel has imported it already, so if it is not loaded this is no
    kernel (a plain ``python``); a terminal IPython is no kernel either."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:
        return None
    if shell is None or "IPKernelApp" not in shell.config:
        return None
    return shell


class JupyterDisplay(StatusDisplay):
    """The tables as HTML under the cell that made the queue, redrawn in place."""

    style = """
        <style>
          table {
            border: 1px solid white;
            border-collapse: collapse;
            width: 100%;
          }
          th {
            background-color: #96D4D4;
            text-align: right;
          }
          td {
            background-color: #f6f8ff;
            padding-right: 15px;
            text-align: right;
          }
          td.over {
            text-align: right;
            background-color: #ffcccc;
          }
        </style>
    """

    tbl_fmt = Template(
        f"""
        <head>
        {style}
        </head>
        <body>
        <table>
        $header
        $rows
        </table>
        </body>
    """
    )

    hdr_fmt = Template('<th colspan="$span"> $value </th>')
    cell_fmt = Template("<td> $value </td>")
    cell_over_fmt = Template('<td class="over"> $value </td>')
    row_fmt = Template("<tr> $cells </tr>")

    #: The two columns of CCTools' grid (3 and 5 of 8): application info and queue stats on
    #: the left, worker resources and categories on the right.
    grid_fmt = Template('<div class="work-queue-status" style="display: grid; '
                        'grid-template-columns: 3fr 5fr; gap: 20px;">\n'
                        "<div>$app\n$queue</div>\n<div>$worker\n$category</div>\n</div>")

    def __init__(self, interval: float = 10) -> None:
        super().__init__(interval)
        #: The display handle of the output (None outside a kernel: not active).
        self._output: Any = None
        self._html = {"app": "", "queue": "", "worker": "", "category": ""}
        self._text = dict.fromkeys(self._html, "")
        self._shown: tuple[str, str] | None = None
        if _kernel_shell() is not None:
            from IPython.display import display

            bundle = self._bundle()
            self._output = display(bundle, raw=True, display_id=True)
            self._shown = (bundle["text/html"], bundle["text/plain"])

    def active(self) -> bool:
        return bool(self._output)

    def update_display(self, queue_info: Any, resources_worker_info: Any,
                       resources_category_info: Any, app_info: Any) -> None:
        """Redraw the tables given (a missing one keeps what it showed), if anything
        changed; the output keeps its place in the notebook."""
        if app_info:
            self._set("app", self.table_of_pairs(app_info, "application info"),
                      _text_table([["application info"], *app_info]))
        if queue_info:
            self._set("queue", self.table_of_pairs(queue_info, "queue stats"),
                      _text_table([["queue stats"], *queue_info]))
        if resources_worker_info:
            self._set("worker", self.table_of_resources(resources_worker_info),
                      "\n\n".join(_text_table(t) for t in resources_worker_info))
        if resources_category_info:
            self._set("category", self.table_of_resources(resources_category_info),
                      "\n\n".join(_text_table(t) for t in resources_category_info))
        bundle = self._bundle()
        shown = (bundle["text/html"], bundle["text/plain"])
        if self._output is not None and shown != self._shown:
            self._output.update(bundle, raw=True)
            self._shown = shown

    def _set(self, part: str, html: str, text: str) -> None:
        self._html[part] = html
        self._text[part] = text

    def _bundle(self) -> dict[str, str]:
        text = "\n\n".join(t for t in (self._text[k] for k in self._text) if t)
        return {"text/html": JupyterDisplay.grid_fmt.substitute(self._html),
                "text/plain": text or "work queue status"}

    def table_of_pairs(self, pairs: Sequence[Sequence[Any]], label: str) -> str:
        header = JupyterDisplay.row_fmt.substitute(
            cells=JupyterDisplay.hdr_fmt.substitute(value=label, span=2))
        rows = [self.make_row(pair) for pair in pairs or []]
        return self.make_table(header, rows)

    def table_of_resources(self, groups: list[Rows]) -> str:
        rows = []
        for rs in groups:
            rows.append(self.make_row(
                rs[0], fmt=lambda v: JupyterDisplay.hdr_fmt.substitute(value=v, span=0)))
            rows.extend(self.make_row(r) for r in rs[1:])
        return self.make_table("", rows)

    def make_table(self, header: str, rows: list[str]) -> str:
        return JupyterDisplay.tbl_fmt.substitute(header=header, rows="\n".join(rows))

    def make_row(self, cells_info: Sequence[Any], fmt: Callable[[Any], str] | None = None,
                 ) -> str:
        """A row of cells; the cells of a row whose first cell ends with "!" (a category
        larger than every worker) are marked ``class="over"``."""
        if not fmt:
            over = bool(cells_info) and str(cells_info[0]).endswith("!")
            cell = JupyterDisplay.cell_over_fmt if over else JupyterDisplay.cell_fmt

            def fmt(v: Any) -> str:
                return cell.substitute(value=v)

        return JupyterDisplay.row_fmt.substitute(cells=" ".join(fmt(v) for v in cells_info))


def _text_table(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as right-aligned columns (the ``text/plain`` copy, for consoles)."""
    width = max(len(r) for r in rows)
    cells = [[str(v) for v in r] + [""] * (width - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(width)]
    lines = ("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(line.rstrip() for line in lines)


def start_display(queue: Any, interval: float) -> JupyterDisplay | None:
    """The display of ``WorkQueue(status_display_interval=interval)``, showing its first
    figures, or None when there is nothing to show: an interval under 1 s (CCTools'
    "None, or less than 1 disables it"), or no Jupyter kernel."""
    if isinstance(interval, bool) or not isinstance(interval, numbers.Real):
        raise TypeError(f"status_display_interval must be a number of seconds or None, "
                        f"not {interval!r}")
    if interval < 1:
        return None
    shown = JupyterDisplay(interval=float(interval))
    if not shown.active():
        return None
    shown.refresh(queue)
    return shown
