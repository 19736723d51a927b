"""``work_queue_graph_log``: plots of a manager's statistics log, as PNG and SVG (matplotlib).

The same nine plots as CCTools' ``work_queue_graph_log`` (which drives gnuplot), from a log
written by this package or by CCTools::

    work_queue_graph_log -o myplots my.stats.log
    # myplots.workers.png myplots.workers.svg myplots.tasks.png ... myplots.times-stacked.svg

Options as CCTools': ``-o prefix`` (default: the log's name), ``-r min:max`` (time range, in
the ``-u`` unit), ``-s seconds`` (one sample per that many seconds), ``-u s|m|h|d``,
``-T png|svg|png,svg|text`` (default both images; ``text`` writes the plotted columns),
``-g width,height`` in pixels, ``-c gnuplot`` (accepted and ignored).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
BYTE_UNITS = (("B", 1), ("kB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40))
#: CCTools' colour cycle for the plots.
COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
MARKERS = ("s", "^", "o", "D", "v", "x", "+")
HEADER_PATIENCE = 10


class LogError(Exception):
    """The statistics log cannot be plotted (the message says why)."""


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    fields: tuple[str, ...]
    labels: tuple[str, ...]
    #: "count", "time" (a cumulative time in µs), "bytes", or "percent" (stacked).
    kind: str = "count"


PLOTS = (
    Plot("workers", "workers instantaneous counts",
         ("workers_connected", "workers_idle", "workers_busy"), ("connected", "idle", "busy")),
    Plot("workers-accum", "workers cumulative counts",
         ("workers_joined", "workers_removed", "workers_released", "workers_fast_aborted",
          "workers_idled_out", "workers_lost"),
         ("joined", "removed", "released", "fast aborted", "idled out", "lost")),
    Plot("tasks", "tasks instantaneous counts",
         ("tasks_waiting", "tasks_on_workers", "tasks_running", "tasks_with_results"),
         ("waiting", "on workers", "running", "with results")),
    Plot("tasks-capacities", "tasks instantaneous capacities",
         ("tasks_running", "capacity_instantaneous", "capacity_weighted"),
         ("tasks running", "tasks capacity raw", "tasks capacity weighted")),
    Plot("tasks-accum", "tasks cumulative counts",
         ("tasks_submitted", "tasks_dispatched", "tasks_done", "tasks_failed",
          "tasks_cancelled", "tasks_exhausted_attempts"),
         ("submitted", "dispatched", "done", "failed", "cancelled", "exhausted attempts")),
    Plot("time-manager", "cumulative times at the manager",
         ("time_send", "time_receive", "time_polling", "time_status_msgs", "time_internal",
          "time_application"),
         ("send", "receive", "manager polling", "manager status msgs", "manager internal",
          "manager application"), "time"),
    Plot("time-workers", "cumulative times at workers",
         ("time_execute", "time_execute_good", "time_execute_exhaustion"),
         ("execute", "execute good", "execute exhaustion"), "time"),
    Plot("transfer", "manager data transfer", ("bytes_sent", "bytes_received"),
         ("sent", "received"), "bytes"),
    Plot("times-stacked", "manager time proportions",
         ("time_status_msgs", "time_internal", "time_polling", "time_send", "time_receive",
          "time_application"),
         ("status msgs", "internal", "polling", "send", "receive", "application"), "percent"),
)
#: Columns every plot needs; a log without them is not a statistics log.
REQUIRED = ("timestamp", "workers_connected", "tasks_waiting")


# -- reading ---------------------------------------------------------------------------------------

def read_log(f: TextIO, warn: TextIO | None = None) -> tuple[list[str], list[dict[str, float]]]:
    """The columns and rows of a statistics log (ours or CCTools'), in file order.

    The header is the first ``#`` line within the first lines; a log reopened by a manager
    repeats it (and may change it).  Lines that are not numbers, or have too few fields (a
    line cut short by a crash), are skipped with a warning on ``warn``.
    """
    fields: list[str] | None = None
    rows: list[dict[str, float]] = []
    data_lines = 0
    for number, line in enumerate(f, 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            names = text.strip("# \t").split()
            if names and names[0] == "timestamp":
                fields = names
            continue
        if fields is None:
            data_lines += 1
            if data_lines >= HEADER_PATIENCE:
                break
            continue
        parts = text.split()
        if len(parts) < len(fields):
            _warn(warn, f"line {number} has {len(parts)} fields, not {len(fields)}: ignored")
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            _warn(warn, f"line {number} has a value that is not a number: ignored")
            continue
        if any(math.isnan(v) or math.isinf(v) for v in values):
            _warn(warn, f"line {number} has a value that is not a finite number: ignored")
            continue
        rows.append(dict(zip(fields, values, strict=False)))
    if fields is None:
        raise LogError("no header line (# timestamp workers_connected ...) at the start of "
                       "the file: is this a Work Queue statistics log?")
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        raise LogError(f"the header has no column {missing[0]!r}: is this a Work Queue "
                       "statistics log?")
    if not rows:
        raise LogError("the log has a header but no statistics lines")
    return fields, rows


def _warn(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        stream.write(f"work_queue_graph_log: warning: {message}\n")


def sample(rows: Sequence[dict[str, float]], resolution: float) -> list[dict[str, float]]:
    """CCTools' sampling: the first line of each ``resolution``-second step, in time order,
    and the last line, so the final counts always show."""
    ordered = sorted(rows, key=lambda r: r["timestamp"])
    if resolution <= 0:
        return ordered
    step_us = resolution * 1e6
    out: list[dict[str, float]] = []
    last_step = None
    for row in ordered:
        step = math.floor(row["timestamp"] / step_us)
        if step != last_step:
            out.append(row)
            last_step = step
    if out[-1] is not ordered[-1]:
        out.append(ordered[-1])
    return out


def auto_resolution(rows: Sequence[dict[str, float]]) -> float:
    """CCTools samples every 30 s; a shorter log is sampled finer (about 200 points)."""
    span = (max(r["timestamp"] for r in rows) - min(r["timestamp"] for r in rows)) / 1e6
    return min(30.0, span / 200)


def auto_unit(seconds: float) -> str:
    """The time unit that keeps the numbers readable for a span of ``seconds``."""
    if seconds < 600:
        return "s"
    if seconds < 36000:
        return "m"
    if seconds < 4 * 86400:
        return "h"
    return "d"


def _byte_unit(largest: float) -> tuple[str, int]:
    chosen = BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if largest >= unit[1]:
            chosen = unit
    return chosen


def stacked_percentages(rows: Sequence[dict[str, float]],
                        fields: Sequence[str]) -> list[list[float]]:
    """Per sample, each time's share (%) of the time spent since the previous sample,
    accumulated in ``fields`` order (the top of each band), as CCTools' times-stacked."""
    out: list[list[float]] = []
    prev = rows[0]
    for row in rows:
        deltas = [row.get(f, 0.0) - prev.get(f, 0.0) for f in fields]
        total = sum(deltas)
        tops: list[float] = []
        acc = 0.0
        for d in deltas:
            acc += 100.0 * d / total if total > 0 else 0.0
            tops.append(acc)
        out.append(tops)
        prev = row
    return out


# -- drawing ---------------------------------------------------------------------------------------

def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise LogError("matplotlib is not installed; install it with "
                       "pip install 'work-queue-py[plots]' (or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "work_queue_graph_log"  # reproducible SVG ids
    import matplotlib.pyplot as plt

    return plt


def series(plot: Plot, rows: Sequence[dict[str, float]], x_unit: str
           ) -> tuple[list[float], list[list[float]], str]:
    """x values, one y list per field, and the y-axis label of ``plot``."""
    start = rows[0]["timestamp"]
    xs = [(r["timestamp"] - start) / 1e6 / UNIT_SECONDS[x_unit] for r in rows]
    if plot.kind == "percent":
        tops = stacked_percentages(rows, plot.fields)
        return xs, [[t[i] for t in tops] for i in range(len(plot.fields))], \
            "share of each sample's time (%)"
    raw = [[r.get(f, 0.0) for r in rows] for f in plot.fields]
    largest = max((max(v) for v in raw), default=0.0)
    if plot.kind == "time":
        unit = auto_unit(largest / 1e6)
        scale = 1e6 * UNIT_SECONDS[unit]
        return xs, [[v / scale for v in vals] for vals in raw], UNIT_NAMES[unit]
    if plot.kind == "bytes":
        name, size = _byte_unit(largest)
        return xs, [[v / size for v in vals] for vals in raw], name
    return xs, raw, plot.name.split("-")[0]


def draw(plot: Plot, rows: Sequence[dict[str, float]], outputs: Iterable[str], x_unit: str,
         x_range: tuple[float | None, float | None], size: tuple[int, int]) -> None:
    """Draw ``plot`` into each of ``outputs`` (format from the extension)."""
    plt = _pyplot()
    xs, ys, ylabel = series(plot, rows, x_unit)
    fig, ax = plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    try:
        if plot.kind == "percent":
            lower = [0.0] * len(xs)
            for i, (label, top) in enumerate(zip(plot.labels, ys, strict=True)):
                ax.fill_between(xs, lower, top, step="pre", color=COLORS[i % len(COLORS)],
                                label=label, linewidth=0)
                lower = top
            ax.set_ylim(0, 100)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8,
                      frameon=False)
        else:
            every = max(1, len(xs) // 12)
            for i, (label, values) in enumerate(zip(plot.labels, ys, strict=True)):
                ax.plot(xs, values, label=label, color=COLORS[i % len(COLORS)],
                        marker=MARKERS[i % len(MARKERS)], markevery=(i % every, every),
                        markersize=5, linewidth=2)
            ax.set_ylim(bottom=0)
            if plot.kind == "count":
                from matplotlib.ticker import MaxNLocator

                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.set_title(plot.title)
        ax.set_xlabel(f"manager lifetime in {UNIT_NAMES[x_unit]}")
        ax.set_ylabel(ylabel)
        lo, hi = x_range
        if lo is not None or hi is not None:
            ax.set_xlim(left=lo, right=hi)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.grid(True, linestyle=":", linewidth=0.5, alpha=0.6)
        fig.tight_layout()
        for path in outputs:
            kwargs: dict[str, Any] = {"metadata": {"Date": None}} if path.endswith(".svg") \
                else {}
            fig.savefig(path, **kwargs)
    finally:
        plt.close(fig)


def write_text(plot: Plot, rows: Sequence[dict[str, float]], path: str, x_unit: str) -> None:
    """``-T text``: the plotted columns, one sample a line."""
    xs, ys, ylabel = series(plot, rows, x_unit)
    with open(path, "w") as f:
        f.write(f"# {plot.title}: time ({UNIT_NAMES[x_unit]}) and "
                + ", ".join(f"{label} ({ylabel})" for label in plot.labels) + "\n")
        for i, x in enumerate(xs):
            f.write(" ".join(f"{v:.6f}" for v in [x, *(col[i] for col in ys)]) + "\n")


# -- command line ----------------------------------------------------------------------------------

def _parse_range(text: str) -> tuple[float | None, float | None]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"bad range {text!r} (use min:max, min: or :max)")
    try:
        return (float(lo) if lo.strip() else None, float(hi) if hi.strip() else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad range {text!r} (use min:max, min: or :max)"
                                         ) from None


def _parse_geometry(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use width,height)") from None
    if w < 100 or h < 100:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least 100,100)")
    return w, h


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number of seconds {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the sampling interval cannot be negative")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="work_queue_graph_log",
        description="Plot a Work Queue statistics log (ours or CCTools') as PNG and SVG.")
    p.add_argument("log", help="statistics log (WorkQueue(stats_log=...) or specify_log)")
    p.add_argument("-o", dest="prefix", help="output prefix (default: the log's name)")
    p.add_argument("-r", dest="range", type=_parse_range, default=(None, None),
                   help="time range to plot, in -u units: min:max, min: or :max")
    p.add_argument("-s", dest="resolution", type=_parse_seconds,
                   help="one sample per this many seconds (default 30, finer for short logs)")
    p.add_argument("-u", dest="unit", choices=sorted(UNIT_SECONDS),
                   help="time unit of the x axis (default: from the log's length)")
    p.add_argument("-T", dest="format", default="png,svg",
                   help="png, svg, png,svg (default) or text")
    p.add_argument("-g", dest="geometry", type=_parse_geometry, default=(600, 480),
                   help="width,height of each plot in pixels (default 600,480)")
    p.add_argument("-c", dest="gnuplot", help="accepted for compatibility; not used")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf", "text")]
    if bad or not formats:
        sys.stderr.write(f"work_queue_graph_log: unknown output format {args.format!r} "
                         "(use png, svg, png,svg or text)\n")
        return 1
    try:
        with open(args.log) as f:
            _, rows = read_log(f, sys.stderr)
        resolution = args.resolution if args.resolution is not None else auto_resolution(rows)
        rows = sample(rows, resolution)
        span = (rows[-1]["timestamp"] - rows[0]["timestamp"]) / 1e6
        unit = args.unit or auto_unit(span)
        prefix = args.prefix or args.log
        for plot in PLOTS:
            base = f"{prefix}.{plot.name}"
            if "text" in formats:
                write_text(plot, rows, base + ".txt", unit)
                print(f"Generating '{base}.txt'.")
            images = [f"{base}.{fmt}" for fmt in formats if fmt != "text"]
            if images:
                draw(plot, rows, images, unit, args.range, args.geometry)
                for path in images:
                    print(f"Generating '{path}'.")
    except LogError as e:
        sys.stderr.write(f"work_queue_graph_log: {args.log}: {e}\n")
        return 1
    except OSError as e:
        name = e.filename or args.log
        sys.stderr.write(f"work_queue_graph_log: {name}: {e.strerror or e}\n")
        return 1
    except UnicodeDecodeError:
        sys.stderr.write(f"work_queue_graph_log: {args.log}: not a text file\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PLOTS", "LogError", "main", "read_log", "sample", "stacked_percentages"]
