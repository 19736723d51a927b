"""The history of task transitions: one bounded ring for all tasks, and a task's story.

The manager core records every state change of every task here (numbers only, see below), so
that ``q.task_story(17)`` can say why task 17 is still waiting. Nothing here does I/O.
"""

from __future__ import annotations

from array import array
from itertools import chain

from . import task_state as ts

#: Transitions a task's story shows at most, and transitions of all tasks remembered (in one
#: ring of two arrays of numbers: a list or deque per task would cost ~100-600 bytes and a
#: GC-tracked object for each of a million queued tasks, and doubled the submit time; a tuple
#: per transition made the garbage collector run a third more often, ~0.6 us a submit).
STORY_LENGTH = 16
HISTORY_LENGTH = 1 << 16
RING_MASK = HISTORY_LENGTH - 1  # the ring's next slot: (i + 1) & RING_MASK

#: Every transition (task_state.TRANSITIONS) as (from, cause, to), by its number in the ring;
#: the ring keeps ``task id << MOVE_BITS | number`` and the time.
MOVES = [(old, cause, new) for (old, cause), new in ts.TRANSITIONS.items()]
MOVE_BITS = 5
assert len(MOVES) <= 1 << MOVE_BITS
#: (from, cause) -> (to, number of the transition).
MOVE_OF: dict[tuple[int, str], tuple[int, int]] = {
    (old, cause): (new, i) for i, (old, cause, new) in enumerate(MOVES)}
#: From -> (to, number) on ``submit``.
SUBMITTED_FROM: dict[int, tuple[int, int]] = {
    old: move for (old, cause), move in MOVE_OF.items() if cause == "submit"}


def old_new_cause(number: int) -> tuple[int, int, str]:
    """(from, to, cause) of transition ``number``."""
    old, cause, new = MOVES[number]
    return old, new, cause


def story_from_ring(moves: array[int], times: array[float], first: int,
                    task_id: int) -> list[tuple[int, int, str, float]]:
    """The last STORY_LENGTH transitions of ``task_id`` in the ring (``first`` is its oldest
    slot), oldest first: ``(from, to, cause, time)``."""
    if task_id <= 0:
        return []
    low, high = task_id << MOVE_BITS, (task_id + 1) << MOVE_BITS
    mask = (1 << MOVE_BITS) - 1
    return [(*old_new_cause(moves[i] & mask), times[i])
            for i in chain(range(first, HISTORY_LENGTH), range(first))
            if low <= moves[i] < high][-STORY_LENGTH:]
