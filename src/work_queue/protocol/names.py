"""Checks on names that come over the wire."""

from __future__ import annotations


def escapes(name: str) -> bool:
    """True for a name that is empty, absolute or climbs out with ``..``: as a path below a
    directory (a sandbox, a cache), it would leave that directory."""
    return not name or name.startswith("/") or ".." in name.split("/")
