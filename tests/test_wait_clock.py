"""wait()'s timeouts, on a fake clock: the deadline rule without real seconds (issue 16).

The manager's loop reads time only through ``q._now`` and blocks only in ``q._watcher.wait``.
Here the clock is a FakeClock and the watcher's wait, instead of blocking, records how long it
was asked to block and moves the clock by that much: each test checks the rule (when wait()
gives up, how long each poll may block) in milliseconds of real time, whatever the machine's
load. These replace the timed assertions ``0.08 <= elapsed < 0.5`` and ``elapsed < 2``.
"""

from __future__ import annotations

from typing import Any

import pytest

import work_queue as wq
from work_queue._testing import FakeClock


class _Polls:
    """The watcher's wait, replaced: no connection is ever ready; time passes as asked."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.asked: list[float] = []

    def __call__(self, timeout: float) -> list[Any]:
        self.asked.append(timeout)
        self.clock.advance(timeout)
        return []


@pytest.fixture
def timed_queue(in_tmp: Any) -> Any:
    q = wq.WorkQueue(port=0)
    clock = FakeClock(start=q._now())
    q._now = clock
    polls = _Polls(clock)
    q._watcher.wait = polls
    try:
        yield q, clock, polls
    finally:
        q.close()


def test_a_fractional_timeout_is_honoured(timed_queue: Any) -> None:
    q, clock, polls = timed_queue
    q.submit(wq.Task("true"))  # no worker: it cannot finish
    start = clock.now
    assert q.wait(0.1) is None
    assert clock.now - start == pytest.approx(0.1)  # not a second, not zero
    assert all(0 <= t <= 0.1 + 1e-9 for t in polls.asked), polls.asked


def test_a_long_wait_polls_in_steps_of_at_most_a_second(timed_queue: Any) -> None:
    q, clock, polls = timed_queue
    q.submit(wq.Task("true"))
    start = clock.now
    assert q.wait(2.5) is None
    assert clock.now - start == pytest.approx(2.5)
    assert max(polls.asked) <= 1.0  # the loop's timers run at least once a second


def test_wait_zero_does_not_block(timed_queue: Any) -> None:
    q, clock, polls = timed_queue
    q.submit(wq.Task("true"))
    start = clock.now
    assert q.wait(0) is None
    assert clock.now == start and all(t == 0 for t in polls.asked)


def test_waiting_forever_on_an_empty_queue_returns_at_once(timed_queue: Any) -> None:
    q, clock, polls = timed_queue
    start = clock.now
    assert q.wait() is None  # nothing could ever come back: it must not hang
    assert q.wait(-1) is None
    assert clock.now == start, polls.asked  # no blocking poll at all
