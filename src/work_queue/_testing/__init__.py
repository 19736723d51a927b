"""Tools for testing Work Queue code without real time or real peers.

``FakeClock`` stands in for the clock that the pure cores are given; the fake worker and fake
manager (speaking the wire protocol byte by byte) live beside it. Nothing here is part of the
public Work Queue API; it ships with the package so that tests of programs built on Work Queue
can use it too.
"""

from .clock import FakeClock

__all__ = ["FakeClock"]
