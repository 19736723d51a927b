"""The manager's rules that are plain functions of their inputs (CCTools behaviour).

Each is called by :class:`~work_queue.core.manager_state.ManagerState` (or, for a
connection's liveness, by the shell's timer) and tested on its own with numbers, without a
manager.  Times are seconds since the epoch passed in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..constants import (
    WORK_QUEUE_FAILURE_ONLY,
    WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_TIMEOUT,
    WORK_QUEUE_RESULT_UNKNOWN,
    WORK_QUEUE_SUCCESS_ONLY,
)

#: How long fast abort blocks a host whose worker was slow twice in a row (CCTools).
FAST_ABORT_BLOCK_SECONDS = 900


def merge_result(current: int, new: int) -> int:
    """CCTools ``update_task_result``: serious results (>= 8) win over missing files.

    A task whose output is missing (OUTPUT_MISSING = 2) keeps an earlier serious result, and
    a serious result replaces anything."""
    if new >= 8 or not (current >= 8 and current != WORK_QUEUE_RESULT_UNKNOWN):
        return new
    return current


def result_of(status: int, exit_code: int, monitor_codes: tuple[int, int] | None) -> int:
    """The task's result from a worker's ``result`` record.

    CCTools ``get_result``: for a monitored task, the monitor's exit code turns a success
    into RESOURCE_EXHAUSTION or TASK_TIMEOUT before any output is fetched, so the files a
    task killed for its limits never wrote do not turn it into OUTPUT_MISSING."""
    if monitor_codes is not None and status == WORK_QUEUE_RESULT_SUCCESS:
        overflow, time_expired = monitor_codes
        if exit_code == overflow:
            return WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
        if exit_code == time_expired:
            return WORK_QUEUE_RESULT_TASK_TIMEOUT
    return status


def outputs_to_fetch(files: Iterable[Any], monitor_files: Iterable[Any],
                     success: bool) -> list[Any]:
    """The outputs to ask for: SUCCESS_ONLY ones only after a success (result SUCCESS and
    exit code 0), FAILURE_ONLY ones only after anything else; the monitor's always."""
    wanted = []
    for spec in files:
        if spec.is_input:
            continue
        if spec.flags & WORK_QUEUE_FAILURE_ONLY and success:
            continue
        if spec.flags & WORK_QUEUE_SUCCESS_ONLY and not success:
            continue
        wanted.append(spec)
    if monitor_files:
        wanted.extend(spec for spec in monitor_files if not spec.is_input)
    return wanted


def transfer_wait(length: int, rate: float, outlier_factor: float,
                  min_timeout: float) -> float:
    """Seconds a transfer of ``length`` bytes may take (CCTools get_transfer_wait_time): at
    ``rate`` / ``outlier_factor`` bytes a second, and never less than ``min_timeout``."""
    effective = rate / max(1.0, outlier_factor)
    return max(min_timeout, length / max(effective, 1.0))


@dataclass(slots=True)
class Liveness:
    """What the manager's timer knows about one connection (all times in seconds)."""

    connected_at: float
    last_message: float
    last_check: float
    spoke_since_check: bool
    #: The worker completed its handshake and reported its resources.
    ready: bool
    #: Bytes waiting in its outbox since this time (None: nothing waits).
    blocked_since: float | None = None
    blocked_bytes: int = 0
    #: A payload is being read: its length, and the deadline computed when it began.
    in_payload: bool = False
    payload_length: int = 0
    payload_deadline: float = float("inf")
    #: Replies are expected (a ``get``, the results).
    expecting: bool = False


#: Verdicts of :func:`liveness_verdict`.
KEEP, CHECK, DROP_HANDSHAKE, DROP_SLOW_READER, DROP_SLOW_PAYLOAD, DROP_STALLED, DROP_SILENT = (
    "keep", "check", "handshake", "slow-reader", "slow-payload", "stalled", "silent")


def liveness_verdict(c: Liveness, now: float, keepalive_interval: float,
                     keepalive_timeout: float, stall_timeout: float,
                     transfer_wait_of: Any) -> str:
    """Whether a connection stays, gets a keepalive ``check``, or is dropped and why.

    - no handshake (and resources) within ``keepalive_timeout``: dropped;
    - bytes it does not take within the transfer deadline of their size: dropped;
    - a payload arriving past its deadline (a trickle): dropped;
    - half a message, or an answer we wait for, then ``stall_timeout`` of silence: dropped;
    - keepalive: a ``check`` every ``keepalive_interval`` once it spoke since the last one;
      silent for ``keepalive_timeout`` after a check: dropped.
    ``transfer_wait_of(length)`` gives the deadline of a transfer of that many bytes."""
    if not c.ready:
        return DROP_HANDSHAKE if now - c.connected_at > keepalive_timeout else KEEP
    if c.blocked_since is not None and now > c.blocked_since + transfer_wait_of(c.blocked_bytes):
        return DROP_SLOW_READER
    if c.in_payload and now > c.payload_deadline:
        return DROP_SLOW_PAYLOAD
    if (c.in_payload or c.expecting) and now - c.last_message > stall_timeout:
        return DROP_STALLED
    if keepalive_interval <= 0:
        return KEEP
    if c.spoke_since_check:
        return CHECK if now - c.last_check >= keepalive_interval else KEEP
    if now - c.last_check >= keepalive_timeout and now - c.last_message >= keepalive_timeout:
        return DROP_SILENT
    return KEEP


def is_slow(elapsed_usec: float, average_usec: float, multiplier: float,
            earlier_aborts: int) -> bool:
    """Fast abort: a task is slow when it ran ``multiplier`` (plus one per earlier fast abort
    of the same task) times the average time of its category's successful tasks."""
    return elapsed_usec >= average_usec * (multiplier + earlier_aborts)
