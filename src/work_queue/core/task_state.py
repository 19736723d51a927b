"""The task lifecycle as one transition table (states mirror ``WORK_QUEUE_TASK_*``).

::

    READY --dispatch--> RUNNING --result--> WAITING_RETRIEVAL --retrieved--> RETRIEVED
      ^                   |                       |                             |
      +---- requeue ------+-----------------------+                          return
    READY/RUNNING/WAITING_RETRIEVAL --fail--> RETRIEVED (input missing, max retries, ...)
    RETRIEVED --retry--> READY (exhausted its first allocation: retried at the maximum)
    any live state --cancel--> CANCELED            RETRIEVED --return--> DONE

Every state change of a task goes through :func:`transition`, so nothing else can move a task
in a way this table does not allow.
"""

from __future__ import annotations

from ..constants import (
    TASK_STATE_STRINGS,
    WORK_QUEUE_TASK_CANCELED,
    WORK_QUEUE_TASK_DONE,
    WORK_QUEUE_TASK_READY,
    WORK_QUEUE_TASK_RETRIEVED,
    WORK_QUEUE_TASK_RUNNING,
    WORK_QUEUE_TASK_UNKNOWN,
    WORK_QUEUE_TASK_WAITING_RETRIEVAL,
)
from ..errors import InvalidTransition

UNKNOWN = WORK_QUEUE_TASK_UNKNOWN
READY = WORK_QUEUE_TASK_READY
RUNNING = WORK_QUEUE_TASK_RUNNING
WAITING_RETRIEVAL = WORK_QUEUE_TASK_WAITING_RETRIEVAL
RETRIEVED = WORK_QUEUE_TASK_RETRIEVED
DONE = WORK_QUEUE_TASK_DONE
CANCELED = WORK_QUEUE_TASK_CANCELED

#: (state, event) -> new state.  Anything else is a bug and raises InvalidTransition.
TRANSITIONS: dict[tuple[int, str], int] = {
    (UNKNOWN, "submit"): READY,
    (DONE, "submit"): READY,
    (CANCELED, "submit"): READY,
    (READY, "dispatch"): RUNNING,
    (RUNNING, "result"): WAITING_RETRIEVAL,
    (WAITING_RETRIEVAL, "retrieved"): RETRIEVED,
    (RUNNING, "requeue"): READY,
    (RUNNING, "reclaim"): READY,
    (WAITING_RETRIEVAL, "requeue"): READY,
    (READY, "fail"): RETRIEVED,
    (RUNNING, "fail"): RETRIEVED,
    (WAITING_RETRIEVAL, "fail"): RETRIEVED,
    (RETRIEVED, "return"): DONE,
    (RETRIEVED, "retry"): READY,
    (READY, "cancel"): CANCELED,
    (RUNNING, "cancel"): CANCELED,
    (WAITING_RETRIEVAL, "cancel"): CANCELED,
    (RETRIEVED, "cancel"): CANCELED,
}

#: States in which a task still counts for ``empty()``.
LIVE_STATES = frozenset({READY, RUNNING, WAITING_RETRIEVAL, RETRIEVED})


def transition(task_id: int, state: int, event: str) -> int:
    """Return the state reached from ``state`` on ``event``, or raise InvalidTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(task_id, TASK_STATE_STRINGS.get(state, str(state)),
                                event) from None
