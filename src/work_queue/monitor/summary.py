"""CCTools resource summaries: the JSON ``resource_monitor`` writes, byte for byte.

A summary is handled here as a plain dict in CCTools' units (seconds, MB, cores):

* resources by name (:data:`RESOURCE_NAMES`) with plain numbers, e.g. ``{"memory": 73}``;
* ``command``, ``exit_type`` (``normal`` | ``signal`` | ``limits``), ``exit_status``,
  ``signal``, ``last_error``, ``taskid``, ``category``, ``snapshot_name``;
* ``limits_exceeded``: ``{resource: limit}`` or None; ``peak_times``: ``{resource: seconds}``;
* any other key is a verbatim field (``-V 'key: value'``, ``host``, ``monitor_version``, ...)
  and is printed first, in dict order, as CCTools prints them.

:func:`dumps` prints such a dict as CCTools 7.17.1 does (``rmsummary_print``: each resource as
``[value, "unit"]``, integers truncated, decimals rounded; compact with ``--no-pprint``, else
its peculiar pretty-printer, no final newline).  :func:`loads`, :func:`read_summary` and
:func:`read_summaries` read one summary or an appended ``.summaries`` file back to such dicts,
converting any units (older releases wrote ``start``/``end`` in ``us``).

Standard library only: the monitor is shipped alone to remote workers (see ``standalone``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

TYPE_CHECKING = False  # typing costs milliseconds at each start of the command
if TYPE_CHECKING:
    from typing import Any

#: (name, unit, decimals) in CCTools' order (``dttools/src/rmsummary.c`` ``resources_info``).
#: A copy of ``core/resource_fields.py``'s: the monitor ships to CCTools workers as a package of
#: its own (``cctools-monitor``), so it imports nothing from ``work_queue``; a test keeps the two
#: tables equal.
RESOURCE_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("start", "s", 6), ("end", "s", 6), ("wall_time", "s", 6), ("cpu_time", "s", 6),
    ("memory", "MB", 0), ("virtual_memory", "MB", 0), ("swap_memory", "MB", 0),
    ("disk", "MB", 0), ("bytes_read", "MB", 0), ("bytes_written", "MB", 0),
    ("bytes_received", "MB", 0), ("bytes_sent", "MB", 0), ("bandwidth", "Mbps", 3),
    ("gpus", "gpus", 0), ("cores", "cores", 3), ("cores_avg", "cores", 3),
    ("machine_cpus", "cores", 3), ("machine_load", "procs", 0),
    ("context_switches", "switches", 0), ("max_concurrent_processes", "procs", 0),
    ("total_processes", "procs", 0), ("total_files", "files", 0), ("fs_nodes", "nodes", 0),
    ("workers", "workers", 0),
)

RESOURCE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in RESOURCE_FIELDS)
UNITS: dict[str, str] = {name: unit for name, unit, _ in RESOURCE_FIELDS}
DECIMALS: dict[str, int] = {name: d for name, _, d in RESOURCE_FIELDS}

#: Fields of the summary that are neither resources nor verbatim.
STRING_FIELDS = ("category", "command", "exit_type", "taskid", "snapshot_name")
INT_FIELDS = ("signal", "exit_status", "last_error", "snapshots_count")

#: Unit conversions to the units above, for reading.
_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
          "B": 1.0 / (1 << 20), "kB": 1.0 / 1024, "KB": 1.0 / 1024, "KiB": 1.0 / 1024,
          "MB": 1.0, "MiB": 1.0, "GB": 1024.0, "GiB": 1024.0, "TB": 1024.0 * 1024}
_TIME_UNITS = ("us", "ms", "s", "m", "h")
_SIZE_UNITS = ("B", "kB", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB")


# ----------------------------------------------------------------------------------------------
# Writing


def format_number(name: str, value: float) -> str:
    """A resource value as CCTools prints it: integers truncated (``(jx_int_t) value``), others
    rounded half up to their decimals and printed with ``%.16g``."""
    decimals = DECIMALS.get(name, 0)
    if decimals == 0:
        return str(int(value))
    factor = 10.0**decimals
    return _g16(int(value * factor + 0.5) / factor)


def format_value(name: str, value: float) -> str:
    """A value as ``rmsummary_resource_to_str`` prints it (``-L 'memory: 100'`` and series
    columns): ``%.*f`` with the resource's decimals."""
    return "%.*f" % (DECIMALS.get(name, 0), value)


def _g16(x: float) -> str:
    text = "%.16g" % x
    return "-0" if text == "-0" else text


@functools.lru_cache(maxsize=512)
def _escape(text: str) -> str:
    """``jx_escape_string``: \\" \\\\ \\b \\f \\n \\r \\t, other control characters as \\u00XX."""
    if _PLAIN(text):
        return '"' + text + '"'
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_CONTROL = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN = re.compile(r'[^\x00-\x1f"\\\x7f]*').fullmatch


class _Raw:
    """A number already formatted."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Res:
    """``[value, "unit"]`` with the value already formatted."""

    __slots__ = ("number", "unit")

    def __init__(self, number: str, unit: str) -> None:
        self.number, self.unit = number, unit


_FORMATS = tuple((name, unit, decimals, 10.0**decimals) for name, unit, decimals in RESOURCE_FIELDS)


def _resources_tree(values: dict[str, Any], fields: tuple = _FORMATS,
                    unit: str | None = None) -> list[tuple[str, Any]]:
    """``rmsummary_to_json(s, only_resources=1)``: defined (>= 0) resources in order
    (``fields`` and ``unit`` given: peak times, 3 decimals, in seconds)."""
    out: list[tuple[str, Any]] = []
    get = values.get
    for name, field_unit, decimals, factor in fields:
        value = get(name)
        if value is None:
            continue
        cls = value.__class__
        if cls is not float and cls is not int:
            if cls is bool or not isinstance(value, int | float):
                continue
            value = float(value)
        if value >= 0:  # NaN is not
            text = str(int(value)) if decimals == 0 else "%.16g" % (
                int(value * factor + 0.5) / factor)
            out.append((name, _Res(text, unit or field_unit)))
    return out


_PEAK_FORMATS = tuple((name, "s", 3, 1000.0) for name, _, _ in reversed(RESOURCE_FIELDS))


_KNOWN = frozenset(RESOURCE_NAMES) | frozenset(STRING_FIELDS) | frozenset(INT_FIELDS) | {
    "limits_exceeded", "peak_times", "snapshots", "task_id"}


def _leading_pairs(summary: dict[str, Any],
                   verbatim: list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """The pairs before the exit fields, in CCTools' order: verbatim and unknown fields, the
    category and task id, the command, the snapshot name or exit status, the last error."""
    known = _KNOWN
    pairs: list[tuple[str, Any]] = list(verbatim or [])
    # verbatim fields first, in the order given (``rmsummary_print`` prepends them); a
    # ``category``/``taskid`` read back from among them (``-V 'category: x'``) stays there
    leading = True
    placed = set()
    for key, value in summary.items():
        if key not in known or key == "task_id":
            pairs.append((key, value))
        elif leading and key in ("category", "taskid") and isinstance(value, str):
            pairs.append((key, value))
            placed.add(key)
        else:
            leading = False
    # then, because jx_insert prepends, the meta fields in the reverse of their insertion
    for key in ("category", "taskid"):
        if key not in placed and isinstance(summary.get(key), str) and summary[key]:
            pairs.append((key, summary[key]))
    if summary.get("command") is not None:
        pairs.append(("command", str(summary["command"])))
    if summary.get("snapshot_name"):
        pairs.append(("snapshot_name", str(summary["snapshot_name"])))
    else:
        pairs.append(("exit_status", _Raw(str(int(summary.get("exit_status") or 0)))))
    if summary.get("last_error"):
        pairs.append(("last_error", _Raw(str(int(summary["last_error"])))))
    return pairs


def _exit_pairs(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """How the command ended: ``exit_type``, then the signal or the limits it broke."""
    pairs: list[tuple[str, Any]] = []
    exit_type = summary.get("exit_type")
    if exit_type:
        pairs.append(("exit_type", str(exit_type)))
        if exit_type == "signal":
            pairs.append(("signal", _Raw(str(int(summary.get("signal") or 0)))))
        elif exit_type == "limits" and summary.get("limits_exceeded"):
            pairs.append(("limits_exceeded", _resources_tree(summary["limits_exceeded"])))
    return pairs


def _summary_tree(summary: dict[str, Any],
                  verbatim: list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """The ordered pairs CCTools prints for a summary dict (see the module docstring)."""
    pairs = _leading_pairs(summary, verbatim)
    pairs.extend(_exit_pairs(summary))
    pairs.extend(_resources_tree(summary))
    peaks = summary.get("peak_times")
    if peaks:
        pairs.append(("peak_times", _resources_tree(peaks, _PEAK_FORMATS, "s")))
    snapshots = summary.get("snapshots")
    if snapshots:
        items = []
        for snap in snapshots:  # in the order taken (jx_array_insert prepends, from the last)
            tree = _resources_tree(snap)
            tree.insert(0, ("snapshot_name", str(snap.get("snapshot_name", ""))))
            items.append(tree)
        pairs.append(("snapshots", items))
    return pairs


def _compact(node: Any) -> str:
    if isinstance(node, _Res):
        return "[" + node.number + ',"' + node.unit + '"]'
    if isinstance(node, _Raw):
        return node.text
    if isinstance(node, str):
        return _escape(node)
    if isinstance(node, list) and node and isinstance(node[0], tuple):
        return "{" + ",".join(_escape(k) + ":" + _compact(v) for k, v in node) + "}"
    if isinstance(node, list | tuple):
        if not node:
            return "[]"
        return "[" + ",".join(_compact(v) for v in node) + "]"
    if isinstance(node, dict):
        if not node:
            return "{}"
        return "{" + ",".join(_escape(str(k)) + ":" + _compact(v) for k, v in node.items()) + "}"
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int):
        return str(node)
    if isinstance(node, float):
        return _g16(node)
    return _escape(str(node))


def _is_object(node: Any) -> bool:
    return isinstance(node, dict) or (isinstance(node, list) and bool(node)
                                      and isinstance(node[0], tuple))


def _pretty(node: Any, level: int, out: list[str]) -> None:
    """``jx_pretty_print_buffer``: objects and arrays open on a new line, two spaces a level."""
    pad = "  " * level
    if isinstance(node, _Res):
        node = [_Raw(node.number), node.unit]
    if _is_object(node):
        pairs = list(node.items()) if isinstance(node, dict) else node
        out.append("\n" + pad + "{\n")
        inner = "  " * (level + 1)
        for i, (key, value) in enumerate(pairs):
            out.append(inner + _escape(str(key)) + ":")
            _pretty(value, level + 2, out)
            out.append(",\n" if i + 1 < len(pairs) else "\n")
        out.append(pad + "}")
    elif isinstance(node, list | tuple):
        out.append("\n" + pad + "[\n")
        inner = "  " * (level + 1)
        for i, value in enumerate(node):
            out.append(inner)
            _pretty(value, level + 1, out)
            out.append(",\n" if i + 1 < len(node) else "\n")
        out.append(pad + "]")
    else:
        out.append(_compact(node))


def dumps(summary: dict[str, Any], pprint: bool = False,
          verbatim: list[tuple[str, Any]] | dict[str, Any] | None = None) -> str:
    """The summary as CCTools' ``rmsummary_print`` writes it (no trailing newline);
    ``verbatim`` fields (``-V``) come first, in order."""
    if not isinstance(summary, dict):
        raise TypeError(f"a summary is a dict, not {type(summary).__name__}")
    if isinstance(verbatim, dict):
        verbatim = list(verbatim.items())
    tree = _summary_tree(summary, verbatim)
    if not pprint:
        return _compact(tree) if tree else "{}"
    out: list[str] = []
    _pretty(tree, 0, out)
    return "".join(out)


def write_summary(path: str, summary: dict[str, Any], pprint: bool = False,
                  verbatim: list[tuple[str, Any]] | dict[str, Any] | None = None) -> None:
    """Write ``summary`` to ``path`` (replacing it), as ``resource_monitor`` does."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(summary, pprint=pprint, verbatim=verbatim))


def append_summary(path: str, text_or_summary: str | dict[str, Any] | None,
                   missing_task: int | None = None) -> None:
    """Append one summary to a ``wq-<pid>.summaries`` file as the manager does
    (``resource_monitor_append_report``): the summary file's text then a newline, or
    ``# Summary for task N was not available.`` when there is none."""
    with open(path, "a", encoding="utf-8") as f:
        if text_or_summary is None or text_or_summary == "":
            f.write(f"# Summary for task {missing_task} was not available.\n")
        elif isinstance(text_or_summary, dict):
            f.write(dumps(text_or_summary))
        else:
            f.write(text_or_summary)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Reading


def _number(name: str, value: Any) -> float:
    """A resource value: ``[number, "unit"]`` (converted to our units) or a bare number."""
    if isinstance(value, list | tuple):
        if not value:
            return -1.0
        number, unit = value[0], (value[1] if len(value) > 1 else None)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"resource {name!r}: {number!r} is not a number")
        ours = UNITS.get(name)
        if isinstance(unit, str) and unit != ours and (
                (ours == "s" and unit in _TIME_UNITS) or (ours == "MB" and unit in _SIZE_UNITS)):
            return float(number) * _SCALE[unit]
        return float(number)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"resource {name!r}: {value!r} is not a number")
    return float(value)


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """A summary dict from parsed CCTools JSON (``json_to_rmsummary``, keeping verbatim
    fields): resources as numbers in our units; ``cores_avg`` recomputed as CCTools does."""
    if not isinstance(data, dict):
        raise ValueError(f"a resource summary is a JSON object, not {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in UNITS:
            out[key] = _number(key, value)
        elif key in ("limits_exceeded", "peak_times"):
            if value is None:
                out[key] = None
            elif isinstance(value, dict):
                out[key] = {k: _number(k, v) for k, v in value.items() if k in UNITS}
            else:
                raise ValueError(f"{key!r} should be an object, not {value!r}")
        elif key == "snapshots" and isinstance(value, list):
            out[key] = [from_json(v) for v in value]
        elif key in INT_FIELDS and isinstance(value, int | float) and not isinstance(value,
                                                                                     bool):
            out[key] = int(value)
        else:
            out[key] = value
    wall, cpu = out.get("wall_time", -1), out.get("cpu_time", -1)
    if wall > 0 and cpu >= 0:
        out["cores_avg"] = cpu / wall
    return out


def _json() -> Any:
    import json  # only for reading: the command starts faster without it

    return json


def loads(text: str) -> dict[str, Any]:
    """One summary from its text (``ValueError`` naming the problem if it is not one)."""
    try:
        data = _json().loads(text)
    except ValueError as e:
        raise ValueError(f"not a resource summary: {e}") from None
    return from_json(data)


def read_summary(path: str) -> dict[str, Any]:
    """One summary file (``<prefix>.summary``)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return loads(f.read())


def iter_summaries(text: str) -> Iterator[dict[str, Any]]:
    """Each summary of an appended ``.summaries`` text, in order, skipping ``#`` lines."""
    decoder = _json().JSONDecoder()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        else:
            try:
                data, i = decoder.raw_decode(text, i)
            except ValueError as e:
                raise ValueError(f"bad summary at character {i}: {getattr(e, 'msg', e)}") from None
            yield from_json(data)


def read_summaries(path: str) -> list[dict[str, Any]]:
    """All the summaries of a ``wq-<pid>.summaries`` file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return list(iter_summaries(f.read()))
