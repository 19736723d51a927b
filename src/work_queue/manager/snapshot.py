"""What the status answers and the catalog record say about a manager, read in one place.

These functions are the only code outside the manager's loop that reads the queue's internal
state (its core, workers, categories). They build plain records (dicts, lists, numbers, strings)
and keep no reference to live objects, so what they return is a snapshot: the status thread
formats and sends it without racing the manager, and the catalog advertiser sends it from
another thread. Callers in another thread than the manager's must hold the manager's state
lock while they call :func:`take` (see ``status.StatusResponder``).
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from ..constants import TASK_STATE_STRINGS, WORK_QUEUE_PROTOCOL_VERSION
from ..core import task_state as ts
from ..core.categories import ALLOCATION_FIRST, ALLOCATION_MAX
from ..core.resources import WorkerResources, allocation_box
from ..core.rmsummary import format_value
from ..core.stats import category_snapshot
from ..version import __version__
from .interfaces import cached_interfaces

HTTP_ALIASES = {"queue": "queue_status", "tasks": "task_status", "workers": "worker_status",
                "categories": "wable_status", "resources": "resources_status"}


def _priority_text(p: float) -> str:
    return "%d" % p if round(p, 2) == int(p) else "%.2g" % p


def _worker_resources(workers: list[Any], prefix_inuse: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("workers", "cores", "memory", "disk", "gpus"):
        totals = [getattr(w.resources, name) if name != "workers" else 1 for w in workers]
        out[f"{name}_inuse"] = (0 if name == "workers" else
                                int(sum(getattr(w, "inuse_" + name) for w in workers)))
        out[f"{name}_total"] = int(sum(totals))
        out[f"{name}_smallest"] = int(min(totals, default=0))
        out[f"{name}_largest"] = int(max(totals, default=0))
    return out


def queue_record(q: Any, now: float) -> dict[str, Any]:
    st = q._state
    stats = q.stats.as_dict()
    rec: dict[str, Any] = {
        "type": "wq_master",
        "project": q.name or "",
        "starttime": int(st.counters.time_when_started),
        "working_dir": os.getcwd(),
        "owner": getpass.getuser(),
        "version": __version__,
        "port": q.port,
        "priority": q._priority,
        "manager_preferred_connection": q._preferred_connection,
        "protocol": WORK_QUEUE_PROTOCOL_VERSION,
        "ssl": q.using_ssl,
        "network_interfaces": cached_interfaces(),
        "workers": len(st.workers),
    }
    for key in ("workers_connected", "workers_init", "workers_idle", "workers_busy",
                "workers_able", "workers_joined", "workers_removed", "workers_released",
                "workers_idled_out", "workers_fast_aborted", "workers_lost",
                "workers_resumed", "tasks_recovered", "tasks_waiting",
                "tasks_on_workers", "tasks_running", "tasks_with_results", "tasks_left",
                "tasks_submitted", "tasks_dispatched", "tasks_done", "tasks_failed",
                "tasks_cancelled", "tasks_exhausted_attempts", "time_when_started", "time_send",
                "time_receive", "time_send_good", "time_receive_good", "time_status_msgs",
                "time_internal", "time_polling", "time_application", "time_workers_execute",
                "time_workers_execute_good", "time_workers_execute_exhaustion", "bytes_sent",
                "bytes_received", "capacity_tasks", "capacity_cores", "capacity_memory",
                "capacity_disk", "capacity_gpus", "capacity_instantaneous",
                "capacity_weighted", "manager_load"):
        rec[key] = stats[key]
    rec["tasks_complete"] = stats["tasks_done"]
    rec["tasks_left"] = q._tasks_left
    if st.blocked:
        rec["workers_blocked"] = sorted(st.blocked)
    rec.update(_worker_resources(list(st.workers.values())))
    rec["categories"] = category_records(q)
    for name in ("cores", "memory", "disk", "gpus"):
        rec[f"tasks_total_{name}"] = int(sum(max(getattr(t.resources_requested, name), 0)
                                             for t in st.tasks.values()))
    return rec


def category_records(q: Any) -> list[dict[str, Any]]:
    """``wable_status``: per category, its tasks, the workers able to run them and the
    sizes it learned (``work_queue_status -A``; CCTools ``category_to_jx``)."""
    st = q._state
    unfit = st.unfit_tasks()
    out = []
    for name, c in st.categories.items():
        s = category_snapshot(st, c)
        if s.tasks_waiting + s.tasks_on_workers + s.tasks_done < 1:
            continue
        rec: dict[str, Any] = {"category": name}
        for key in ("tasks_waiting", "tasks_running", "tasks_on_workers", "tasks_dispatched",
                    "tasks_done", "tasks_failed", "tasks_cancelled"):
            rec[key] = getattr(s, key)
        rec["workers_able"] = _workers_able(st, c)
        for field in ("cores", "memory", "disk", "gpus"):
            rec["max_" + field] = _max_text(c, field)
        largest = st.largest_worker()
        for label, request in (("first_allocation", ALLOCATION_FIRST),
                               ("max_allocation", ALLOCATION_MAX)):
            limits = c.task_max(None, request)
            box = allocation_box(limits, c.task_min(None, request, largest),
                                 _as_worker(largest), st.policy)
            rec[label] = {"cores": float(box.cores), "memory": int(box.memory),
                          "disk": int(box.disk), "gpus": int(box.gpus)}
        if q._monitor is not None:
            rec["max_seen"] = {"cores": float(max(c.max_seen.cores, -1)),
                               "memory": int(c.max_seen.memory), "disk": int(c.max_seen.disk),
                               "gpus": int(c.max_seen.gpus)}
        counts = [0, 0]
        for t in st.tasks.values():
            if t.category == name and t.resource_request in (0, 1):
                counts[t.resource_request] += 1
        rec["first_allocation_count"], rec["max_allocation_count"] = counts
        rec["tasks_unfit"] = unfit.get(name, 0)
        out.append(rec)
    return out


def _as_worker(r: Any) -> WorkerResources:
    values = {k: int(max(getattr(r, k), 0)) for k in ("cores", "memory", "disk", "gpus")}
    return WorkerResources(workers=1, largest=dict(values), **values)


def _workers_able(st: Any, c: Any) -> int:
    """Workers large enough for the category's declared maximum (``check_worker_fit``)."""
    need = c.max_allocation
    n = 0
    for w in st.workers.values():
        if w.ready and all(getattr(need, k) <= have for k, have in
                           zip(("cores", "memory", "disk", "gpus"), w.shape, strict=True)):
            n += 1
    return n


def _max_text(c: Any, field: str) -> str:
    """``"<n>"`` explicit maximum, ``">n"`` exhausted and still exploring, ``"~n"`` largest
    seen, ``"na"`` nothing known (``category_jx_insert_max``)."""
    explicit = getattr(c.max_allocation, field)
    seen = getattr(c.max_seen, field)
    exhausted = getattr(c.exhausted_seen, field)
    if explicit > -1:
        return format_value(field, explicit)
    if not c.steady_state and exhausted > -1:
        return ">" + format_value(field, seen - 1)
    if seen > -1:
        return "~" + format_value(field, seen)
    return "na"


def task_records(q: Any, now: float) -> list[dict[str, Any]]:
    out = []
    for t in q._state.tasks.values():
        rec: dict[str, Any] = {"taskid": t.id, "state": TASK_STATE_STRINGS[t.state]}
        if t.tag is not None:
            rec["tag"] = t.tag
        rec["category"] = t.category
        rec["command"] = t.command
        if t.state in (ts.RUNNING, ts.WAITING_RETRIEVAL):
            rec["host"] = t.hostname
            box = t.resources_allocated
        else:
            box = t.resources_requested
        for name in ("cores", "gpus", "memory", "disk"):
            rec[name] = int(getattr(box, name)) if getattr(box, name) >= 0 else -1
        rec["priority"] = _priority_text(t.priority)
        if t.state in (ts.RUNNING, ts.WAITING_RETRIEVAL):
            rec["address_port"] = t.host
            rec["time_when_submitted"] = int(t.time_when_submitted * 1e6)
            rec["time_when_commit_start"] = t.time_when_commit_start
            rec["time_when_commit_end"] = t.time_when_commit_end
            rec["current_time"] = int(now * 1e6)
        out.append(rec)
    return out


def worker_records(q: Any, now: float) -> list[dict[str, Any]]:
    """``worker_status``: the connected workers, then those away (their connection dropped
    and the manager keeps their tasks for them to come back, ``wq-py-resume``), each with its
    ``state``."""
    st = q._state
    out = [_worker_record(w, now, "connected") for w in st.workers.values() if w.ready]
    for w in st.away.values():
        rec = _worker_record(w, now, "away")
        rec["away_since"] = int(w.away_since * 1e6)
        out.append(rec)
    return out


def _worker_record(w: Any, now: float, state: str) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "hostname": w.hostname, "os": w.os, "arch": w.arch, "address_port": w.address,
        "ncpus": w.resources.cores, "total_tasks_complete": w.tasks_complete,
        "total_tasks_running": len(w.tasks),
        "total_bytes_transferred": w.total_bytes_transferred,
        "total_transfer_time": int(w.total_transfer_time * 1e6),
        "start_time": int(w.start_time * 1e6), "current_time": int(now * 1e6),
        "state": state,
    }
    rec.update(_worker_resources([w]))
    for i, t in enumerate(w.tasks.values()):
        rec[f"current_task_{i:03d}_id"] = t.id
        rec[f"current_task_{i:03d}_command"] = t.command
    return rec


def take(q: Any, request: str, now: float) -> list[dict[str, Any]]:
    """Records for a status ``request`` (protocol names or the HTTP aliases); [] if unknown.

    The records are plain dicts and lists made anew: a frozen copy that the caller can format
    and send after the manager's state has moved on. Called in the manager's thread, or in
    the status thread while it holds the lock the manager's loop holds (never otherwise)."""
    request = HTTP_ALIASES.get(request, request)
    if request in ("queue_status", "resources_status"):
        return [queue_record(q, now)]
    if request == "task_status":
        return task_records(q, now)
    if request == "worker_status":
        return worker_records(q, now)
    if request == "wable_status":
        return category_records(q)
    return []
