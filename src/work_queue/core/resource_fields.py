"""The resources of a CCTools resource summary: names, units and decimals.

Pure data shared by the manager core (``core/rmsummary.py``) and the resource monitor
(``monitor/summary.py``), kept here so that the core needs nothing from the monitor's shell.
"""

from __future__ import annotations

#: (name, unit, decimals) in CCTools' order (``dttools/src/rmsummary.c`` ``resources_info``).
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


def format_value(name: str, value: float) -> str:
    """A value as ``rmsummary_resource_to_str`` prints it (``-L 'memory: 100'`` and series
    columns): ``%.*f`` with the resource's decimals."""
    return "%.*f" % (DECIMALS.get(name, 0), value)
