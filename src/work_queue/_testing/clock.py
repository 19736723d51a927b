"""A clock that moves only when a test moves it."""

from __future__ import annotations


class FakeClock:
    """Time for the pure cores, moved by hand: ``clock.now`` is the time a test passes as
    ``now``; ``advance(seconds)`` moves it forward and returns the new time.

    Starts at 1000.0 rather than 0 so that "never" (0) and "now" are never confused."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The clock as a ``time.time``-like callable, for code that takes one."""
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        self.now += seconds
        return self.now
