"""Resource summaries: what a task used, as CCTools' ``rmsummary`` records it.

``t.resources_measured`` and ``t.limits_exceeded`` are :class:`ResourceSummary` objects whose
fields read as attributes (``t.resources_measured.memory``), in the units of CCTools' summary
files: seconds for times, MB for memory, disk and bytes, cores and gpus as counts.  An unset
field is -1.
"""

from __future__ import annotations

import json
from typing import Any

from .resource_fields import DECIMALS, RESOURCE_NAMES, UNITS, format_value

_DECIMALS = DECIMALS
_UNITS = UNITS
#: Summary files give start/end in microseconds; the summary object keeps seconds.
_US_TO_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "B": 1.0 / (1 << 20), "kB": 1.0 / 1024,
            "KB": 1.0 / 1024, "MB": 1.0, "GB": 1024.0}


def _number(value: Any, name: str) -> float:
    """A summary value: a number, or ``[number, "unit"]`` converted to our units."""
    if isinstance(value, list | tuple) and value:
        number, unit = float(value[0]), str(value[1]) if len(value) > 1 else ""
        if name in ("start", "end", "wall_time", "cpu_time") and unit in _US_TO_S:
            return number * _US_TO_S[unit]
        if _UNITS.get(name) == "MB" and unit in _US_TO_S:
            return number * _US_TO_S[unit]
        return number
    return float(value)


class ResourceSummary:
    """One task's measured (or limit) resources, fields as attributes; -1 when unset."""

    __slots__ = (*RESOURCE_NAMES, "category", "command", "taskid", "exit_type",
                 "exit_status", "signal", "limits_exceeded", "peak_times", "snapshots",
                 "snapshot_name")

    def __init__(self, **values: Any) -> None:
        for name in RESOURCE_NAMES:
            setattr(self, name, -1)
        self.category = ""
        self.command = ""
        self.taskid = -1
        self.exit_type = ""
        self.exit_status = -1
        self.signal = 0
        self.limits_exceeded: ResourceSummary | None = None
        self.peak_times: dict[str, float] = {}
        #: the snapshots the monitor took (each with its ``snapshot_name``), in order
        self.snapshots: list[ResourceSummary] = []
        self.snapshot_name = ""
        for name, value in values.items():
            setattr(self, name, value)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceSummary:
        """From a CCTools summary (``{"memory": [12, "MB"], "exit_status": 0, ...}``)."""
        s = cls()
        for key, value in data.items():
            if key in _DECIMALS:
                try:
                    setattr(s, key, _number(value, key))
                except (TypeError, ValueError):
                    continue
            elif key in ("category", "command", "exit_type", "snapshot_name"):
                setattr(s, key, str(value))
            elif key in ("exit_status", "signal", "taskid", "task_id"):
                try:
                    setattr(s, "taskid" if key == "task_id" else key, int(_number(value, key)))
                except (TypeError, ValueError):
                    continue
            elif key == "limits_exceeded" and isinstance(value, dict):
                s.limits_exceeded = cls.from_json(value)
            elif key == "snapshots" and isinstance(value, list):
                s.snapshots = [cls.from_json(v) for v in value if isinstance(v, dict)]
            elif key == "peak_times" and isinstance(value, dict):
                s.peak_times = {k: _number(v, "wall_time") for k, v in value.items()}
        return s

    @classmethod
    def many_from_text(cls, text: str) -> list[ResourceSummary]:
        """Summaries written one after another (``rmsummary_parse_file_multiple``); raises
        ValueError naming the place of the first one that is not a JSON object."""
        import json

        decoder = json.JSONDecoder()
        out: list[ResourceSummary] = []
        i = 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i == len(text):
                return out
            try:
                data, i = decoder.raw_decode(text, i)
            except ValueError as e:
                raise ValueError(f"summary {len(out) + 1} is not JSON: {e}") from None
            if not isinstance(data, dict):
                raise ValueError(f"summary {len(out) + 1} is not a JSON object")
            out.append(cls.from_json(data))

    @classmethod
    def from_text(cls, text: str) -> ResourceSummary:
        """Parse a summary file's text; raises ValueError if it is not a JSON object."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a resource summary must be a JSON object")
        return cls.from_json(data)

    def as_dict(self) -> dict[str, float]:
        """The set (>= 0) resource values, by name, in CCTools' order."""
        return {name: getattr(self, name) for name in RESOURCE_NAMES if getattr(self, name) >= 0}

    def broken(self) -> list[str]:
        """Names of the limits this summary says were exceeded."""
        return list(self.limits_exceeded.as_dict()) if self.limits_exceeded else []

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __repr__(self) -> str:
        return f"ResourceSummary({self.as_dict()})"


__all__ = ["RESOURCE_NAMES", "ResourceSummary", "format_value"]
