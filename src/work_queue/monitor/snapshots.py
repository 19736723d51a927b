"""Snapshots of a task's resources, triggered by files (``resource_monitor --snapshot-events``,
``t.specify_snapshot_file``), as CCTools' ``rmonitor_file_watch.c`` takes them.

The events file is JSON::

    {"FILENAME": {"from-start": false, "from-start-if-truncated": true,
                  "delete-if-found": false,
                  "events": [{"label": "LABEL", "on-create": true, "count": 1}, ...]}, ...}

Each event has a ``label`` (letters, digits, ``-`` and ``_``), exactly one of ``on-create``,
``on-delete``, ``on-truncate`` or ``on-pattern`` (a regular expression searched in each new
line of the file) and an optional ``count`` (the most times it fires; -1: no limit).  At each
look (CCTools looks once a second; here at each sample of the task) the events that fired make
the label ``LABEL(n),OTHER(m)``, and a snapshot is recorded: the peaks of the resources since
the previous snapshot (or the start), with ``start``, ``end``, ``wall_time`` of that window and
``snapshot_name`` (also written to ``<template>.snapshot.NN``, ``cctools-monitor.snapshot.00``
in a Work Queue task's directory).  FILENAME is relative to the task's directory.  Standard
library only (the monitor ships alone).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_TRIGGERS = ("on-create", "on-delete", "on-truncate", "on-pattern")


@dataclass
class Event:
    label: str
    trigger: str
    pattern: re.Pattern[str] | None = None
    max_count: int = -1
    total: int = 0
    cycle: int = 0

    def active(self) -> bool:
        return self.max_count < 0 or self.total < self.max_count

    def fire(self) -> None:
        if self.active():
            self.cycle += 1
            self.total += 1


@dataclass
class Watch:
    """One watched file (``rmonitor_file_watch_info``)."""

    filename: str
    events: list[Event]
    from_start: bool = False
    from_start_if_truncated: bool = True
    delete_if_found: bool = False
    exists: bool = False
    position: int = 0
    last_size: int = 0
    last_mtime: int = 0
    last_ino: int = 0
    done: bool = False
    path: str = field(default="", repr=False)


def _boolean(fname: str, spec: dict[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"Value of {key} for '{fname}' is not a boolean.")
    return value


def _event(fname: str, spec: Any) -> Event:
    if not isinstance(spec, dict):
        raise ValueError(f"An event for '{fname}' is not an object.")
    label = spec.get("label")
    if not isinstance(label, str) or not label:
        raise ValueError(f"A label for '{fname}' was not given.")
    if _LABEL_CHARS.search(label):
        raise ValueError(f"Label for '{fname}' has characters not in [A-Za-z0-9_-]")
    given = [t for t in _TRIGGERS
             if (spec.get(t) is True if t != "on-pattern" else spec.get(t) is not None)]
    if len(given) != 1:
        raise ValueError("Exactly one of on-create, on-delete, on-truncate, or on-pattern "
                         f"should be specified for '{fname}'")
    count = spec.get("count", -1)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"Value of count for '{fname}' is not an integer.")
    pattern = None
    if given[0] == "on-pattern":
        if not isinstance(spec["on-pattern"], str):
            raise ValueError(f"Value of on-pattern for '{fname}' is not a string.")
        try:
            pattern = re.compile(spec["on-pattern"])
        except re.error as e:
            raise ValueError(f"Bad on-pattern for '{fname}': {e}") from None
    return Event(label, given[0], pattern, count)


def parse_events(spec: Any) -> list[Watch]:
    """The watches of an events document (``set_snapshot_watch_events``); ``ValueError`` with
    CCTools' message when it is malformed."""
    if not isinstance(spec, dict):
        raise ValueError("The snapshot events file is not a JSON object.")
    watches = []
    for fname, watch in spec.items():
        if not isinstance(watch, dict):
            raise ValueError(f"Error processing snapshot configurations for {fname}. Not of "
                             'the form {"FILENAME" : { "events" : [ { "label": ..., }, ... ]')
        events = watch.get("events")
        if events is None:
            raise ValueError(f"File watch for '{fname}' did not define any events")
        if not isinstance(events, list):
            raise ValueError(f"Value for key 'events' in file watch for '{fname}' is not an "
                             "array.")
        watches.append(Watch(
            fname, [_event(fname, e) for e in events],
            from_start=_boolean(fname, watch, "from-start", False),
            from_start_if_truncated=_boolean(fname, watch, "from-start-if-truncated", True),
            delete_if_found=_boolean(fname, watch, "delete-if-found", False)))
    return watches


def load_events(path: str) -> list[Watch]:
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"Could not process '{path}' snapshots file: {e}") from None
    return parse_events(spec)


class SnapshotWatcher:
    """Looks at the watched files (relative to ``cwd``); ``poll`` says the label of the
    snapshot to take now, if any."""

    def __init__(self, watches: list[Watch], cwd: str) -> None:
        self.watches = watches
        for w in watches:
            w.path = os.path.join(cwd, w.filename)
            try:
                st = os.stat(w.path)
            except OSError:
                continue
            w.exists, w.last_ino = True, st.st_ino
            if not w.from_start:
                w.position, w.last_size, w.last_mtime = st.st_size, st.st_size, st.st_mtime_ns

    def poll(self) -> str | None:
        labels = [label for w in self.watches if not w.done
                  for label in [_look(w)] if label]
        return ",".join(labels) or None


def _look(w: Watch) -> str | None:
    """One pass of ``rmonitor_watch_file_aux`` over ``w``: the label of what fired."""
    for e in w.events:
        e.cycle = 0
    try:
        st: os.stat_result | None = os.stat(w.path)
    except OSError:
        st = None
    created = st is not None and not w.exists
    deleted = st is None and w.exists
    shrank = False
    if st is None:
        w.exists, w.position, w.last_mtime, w.last_size, w.last_ino = False, 0, 0, 0, 0
    else:
        w.exists = True
        if w.last_mtime < st.st_mtime_ns:
            shrank = w.last_size > st.st_size or (w.last_ino != 0 and w.last_ino != st.st_ino)
            if shrank:
                w.position = 0 if w.from_start_if_truncated else st.st_size
            w.last_mtime, w.last_size, w.last_ino = st.st_mtime_ns, st.st_size, st.st_ino
    for e in w.events:
        if (e.trigger == "on-create" and created) or (e.trigger == "on-delete" and deleted) \
                or (e.trigger == "on-truncate" and shrank):
            e.fire()
    if w.exists and any(e.pattern is not None for e in w.events):
        _read_lines(w)
    label = ",".join(f"{e.label}({e.cycle})" for e in w.events if e.cycle > 0) or None
    if not any(e.active() for e in w.events):
        w.done = True  # "No more active events"
    if w.delete_if_found and w.exists:
        try:
            os.unlink(w.path)
        except OSError:
            pass
        w.exists, w.position, w.last_size, w.last_mtime, w.last_ino = False, 0, 0, 0, 0
    return label


def _read_lines(w: Watch) -> None:
    try:
        with open(w.path, "rb") as f:
            f.seek(w.position)
            data = f.read()
    except OSError:
        return
    w.position += len(data)
    for line in data.decode("utf-8", "replace").splitlines():
        for e in w.events:
            if e.pattern is not None and e.active() and e.pattern.search(line):
                e.fire()


class SnapshotRecorder:
    """The resources of each window between snapshots, and the snapshots taken."""

    def __init__(self, watcher: SnapshotWatcher, start: float,
                 template: str | None = None) -> None:
        self.watcher = watcher
        #: each snapshot is also written to ``<template>.snapshot.NN``, as CCTools does
        self.template = template
        self.window_start = start
        self.window: dict[str, float] = {}
        self.snapshots: list[dict[str, Any]] = []

    def after_sample(self, current: dict[str, float], now: float) -> None:
        """Fold a sample's values into the window, then take a snapshot if a file says so."""
        window = self.window
        for name, value in current.items():
            if value > window.get(name, -1.0):
                window[name] = value
        self.check(now)

    def check(self, now: float) -> None:
        label = self.watcher.poll()
        if label is None:
            return
        snap: dict[str, Any] = dict(self.window)
        snap.update(start=self.window_start, end=now, wall_time=now - self.window_start,
                    snapshot_name=label)
        if self.template:
            from .summary import dumps

            try:
                with open(f"{self.template}.snapshot.{len(self.snapshots):02d}", "w",
                          encoding="utf-8") as f:
                    f.write(dumps(snap, pprint=True) + "\n")
            except OSError:
                pass  # CCTools warns and goes on
        self.snapshots.append(snap)
        self.window = {}
        self.window_start = now
