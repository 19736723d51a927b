"""Tools for testing Work Queue code without real time or real peers.

``FakeClock`` stands in for the clock that the pure cores are given; ``FakeWorker`` and
``FakeManager`` (with ``FakePeer``, ``HANDSHAKE`` and ``drive``) speak the wire protocol byte by
byte on loopback sockets.  Nothing here is part of the public Work Queue API; it ships with the
package so that tests of programs built on Work Queue can use it too.
"""

from .clock import FakeClock
from .peers import HANDSHAKE, FakeManager, FakePeer, FakeWorker, drive, worker_handshake

__all__ = ["HANDSHAKE", "FakeClock", "FakeManager", "FakePeer", "FakeWorker", "drive",
           "worker_handshake"]
