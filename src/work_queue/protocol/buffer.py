"""Receive buffer with the two primitives the protocol needs: "next line" and "n bytes".

Every read is O(n) in the bytes consumed: we keep a start offset instead of deleting from the
front of the bytearray on each read, and compact only when the dead prefix is large.  A line
search resumes where the previous unsuccessful search stopped.
"""

from __future__ import annotations

import sys

from ..errors import RemoteProtocolError


def line_at(data: bytes | bytearray, pos: int, max_line: int,
            search_from: int = 0) -> tuple[bytes, int] | None:
    """The line that begins at ``data[pos]`` (without its ``\\n`` and any ``\\r``) and the
    offset just past it, or None while it is not all here.  ``search_from``: where to resume
    looking for its end.  A line longer than ``max_line`` raises RemoteProtocolError.
    """
    nl = data.find(b"\n", max(pos, search_from))
    if nl < 0:
        if len(data) - pos > max_line:
            raise RemoteProtocolError("line longer than %d bytes" % max_line)
        return None
    line = bytes(data[pos:nl])
    if b"\r" in line:
        # link_readline in CCTools silently drops every carriage return.
        line = line.replace(b"\r", b"")
    if len(line) > max_line:
        raise RemoteProtocolError("line longer than %d bytes" % max_line)
    return line, nl + 1


class ReceiveBuffer:
    """Bytes received but not yet consumed."""

    __slots__ = ("_data", "_start", "_scan")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0
        self._scan = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        return len(self._data) > self._start

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._start and self._start > 65536 and self._start * 2 > len(self._data):
            del self._data[: self._start]
            self._scan -= self._start
            self._start = 0
        self._data += data

    def maybe_next_line(self) -> bytes | None:
        """Return the next line without its ``\\n`` (and without any ``\\r``), or None."""
        got = line_at(self._data, self._start, sys.maxsize, self._scan)
        if got is None:
            self._scan = len(self._data)
            return None
        line, self._start = got
        self._scan = self._start
        return line

    def pending_line_length(self) -> int:
        """Length of the unterminated line currently buffered (to enforce a maximum)."""
        return len(self._data) - self._start

    def maybe_exactly(self, n: int) -> bytes | None:
        """Return exactly ``n`` bytes if that many are buffered, else None."""
        if len(self._data) - self._start < n:
            return None
        out = bytes(self._data[self._start : self._start + n])
        self._start += n
        self._scan = self._start
        return out

    def maybe_at_most(self, n: int) -> bytes | None:
        """Return up to ``n`` buffered bytes (at least one), or None if the buffer is empty."""
        avail = len(self._data) - self._start
        if avail <= 0:
            return None
        take = min(n, avail)
        out = bytes(self._data[self._start : self._start + take])
        self._start += take
        self._scan = self._start
        return out

    def take_all(self) -> bytes:
        """Remove and return everything buffered."""
        out = bytes(self._data[self._start :])
        self._data = bytearray()
        self._start = self._scan = 0
        return out
