"""How many workers the managers need (CCTools ``work_queue_factory.c``), without I/O.

Per manager record (its ``queue_status``/catalog record) speaking protocol 11::

    need = tasks_waiting + tasks_left + tasks_on_workers      (on_workers left out with foremen)
    need = ceil(need / tasks_per_worker)                       if tasks_per_worker > 0
    need = max(need, ceil(tasks_total_R / worker_R))           for each worker resource R given
    need = min(need, capacity)                                 with --capacity

The sum is clamped to ``[min_workers, max_workers]``; see :func:`plan` for how many to submit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from ..constants import WORK_QUEUE_PROTOCOL_VERSION

logger = logging.getLogger("work_queue.factory")

RESOURCES = ("cores", "memory", "disk", "gpus")


def _int(record: dict[str, Any], key: str) -> int:
    try:
        return int(record.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class WorkerSize:
    """The size asked for each worker; ``-1`` = not specified."""

    cores: int = -1
    memory: int = -1
    disk: int = -1
    gpus: int = -1


def workers_needed_by_resource(record: dict[str, Any], size: WorkerSize) -> int:
    """Workers of ``size`` that hold the resources all the manager's tasks declared."""
    needed = 0
    for res in RESOURCES:
        have, want = getattr(size, res), _int(record, f"tasks_total_{res}")
        if have > 0 and want > 0:
            needed = max(needed, _ceil_div(want, have))
    return needed


def manager_capacity(record: dict[str, Any], size: WorkerSize, tasks_per_worker: int,
                     use_weighted: bool) -> int:
    """Workers the manager can keep busy according to its capacity figures."""
    capacity = _int(record, "capacity_weighted" if use_weighted else "capacity_tasks")
    if tasks_per_worker > 0:
        capacity = _ceil_div(capacity, tasks_per_worker)
    for res in RESOURCES:
        have, cap = getattr(size, res), _int(record, f"capacity_{res}")
        if have > 0 and cap > 0:
            capacity = min(capacity, _ceil_div(cap, have))
    return capacity


def manager_need(record: dict[str, Any], size: WorkerSize, tasks_per_worker: int = -1,
                 consider_capacity: bool = False, only_not_running: bool = False) -> int:
    """Workers one manager needs, ignoring how many are connected."""
    need = _int(record, "tasks_waiting") + _int(record, "tasks_left")
    if not only_not_running:
        need += _int(record, "tasks_on_workers")
    capacity = manager_capacity(record, size, tasks_per_worker, consider_capacity)
    if tasks_per_worker > 0:
        need = _ceil_div(need, tasks_per_worker)
        capacity = _ceil_div(capacity, tasks_per_worker)
    need = max(need, workers_needed_by_resource(record, size))
    if consider_capacity and capacity > 0:
        need = min(need, capacity)
    return need


def compatible(record: dict[str, Any]) -> bool:
    """Whether the factory serves this manager (same protocol version)."""
    protocol = _int(record, "protocol")
    if protocol != WORK_QUEUE_PROTOCOL_VERSION:
        logger.warning("skipping manager %s (%s:%s) with protocol version %d, not %d",
                       record.get("project"), record.get("name"), record.get("port"), protocol,
                       WORK_QUEUE_PROTOCOL_VERSION)
        return False
    return True


def workers_needed(records: list[dict[str, Any]], size: WorkerSize, tasks_per_worker: int = -1,
                   consider_capacity: bool = False, only_not_running: bool = False) -> int:
    """Sum of :func:`manager_need` over the compatible managers."""
    return sum(manager_need(r, size, tasks_per_worker, consider_capacity, only_not_running)
               for r in records if compatible(r))


def workers_connected(records: list[dict[str, Any]]) -> int:
    return sum(_int(r, "workers") for r in records)


@dataclass
class Plan:
    """One cycle's decision (the numbers the factory prints and reports)."""

    needed: int        # target number of workers, within [min, max]
    submitted: int     # jobs of this factory not yet seen to end
    connected: int     # workers the managers report
    to_connect: int    # submitted but not connected yet
    new: int           # > 0: submit this many now; < 0: this many more than needed


def plan(raw_needed: int, submitted: int, connected: int, min_workers: int, max_workers: int,
         workers_per_cycle: int) -> Plan:
    """Clamp the need to ``[min, max]`` and decide how many to submit this cycle.

    Workers that connected from elsewhere count against the need; never more than
    ``workers_per_cycle`` may be waiting to connect at once.
    """
    needed = max(min(raw_needed, max_workers), min_workers)
    new = needed - submitted
    to_connect = submitted - connected
    if to_connect < 0:
        new -= -to_connect
        to_connect = 0
    if workers_per_cycle > 0 and new + to_connect > workers_per_cycle:
        new = max(0, workers_per_cycle - to_connect)
    return Plan(needed=max(needed, 0), submitted=submitted, connected=connected,
                to_connect=to_connect, new=new)


def ceil_config_value(value: float) -> int:
    """Config numbers given as doubles are rounded up, as CCTools does."""
    return int(math.ceil(value))
