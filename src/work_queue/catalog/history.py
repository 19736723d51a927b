"""The catalog's history directory, in CCTools' deltadb format (``deltadb/src/deltadb.c``).

``<dir>/<year>/<day-of-year>.log`` holds one event per line::

    T <epoch>           absolute time        t <seconds>        time advanced
    C <key> <json>      record created        M <key> <json>     fields changed (merge)
    R <key> <field>     field removed         D <key>            record deleted

and ``<day>.ckpt`` the whole table (a JSON object key -> record) when a new day's log starts.
A server restarted on the same directory gets its table back; ``snapshot(dir, t)`` rebuilds
the table as it was at time ``t`` (``/history/<t>/...`` queries).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import IO, Any

logger = logging.getLogger(__name__)

#: One catalog record (a manager's or worker's advertised JSON object), and the table of
#: them by key.
Record = dict[str, Any]
Table = dict[str, Record]

#: Fields that change on every update and carry no information (CCTools skips them too).
_SKIP = ("lastheardfrom", "uptime")


def _day_paths(directory: str, t: float) -> tuple[str, str]:
    tm = time.gmtime(t)
    base = os.path.join(directory, str(tm.tm_year), str(tm.tm_yday - 1))
    return base + ".log", base + ".ckpt"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class History:
    """Appends table changes to the history directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._file: IO[str] | None = None
        self._day: tuple[int, int] | None = None
        self._last_time = 0

    def _select(self, now: float, table: Table) -> IO[str]:
        tm = time.gmtime(now)
        day = (tm.tm_year, tm.tm_yday)
        if self._file is not None and day == self._day:
            return self._file
        new_day = self._file is not None
        if self._file is not None:
            self._file.close()
        self._day = day
        log, ckpt = _day_paths(self.directory, now)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        self._file = open(log, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        if new_day or not os.path.exists(ckpt):
            write_checkpoint(ckpt, table)
        self._last_time = 0
        return self._file

    def _write(self, now: float, table: Table, line: str) -> None:
        try:
            f = self._select(now, table)
            t = int(now)
            if self._last_time == 0:
                f.write(f"T {t}\n")
            elif t != self._last_time:
                f.write(f"t {t - self._last_time}\n")
            self._last_time = t
            f.write(line)
            f.flush()
        except OSError as e:
            logger.warning("cannot write catalog history in %s: %s", self.directory, e)

    def created(self, now: float, table: Table, key: str, record: Record) -> None:
        self._write(now, table, f"C {key} {_compact(record)}\n")

    def changed(self, now: float, table: Table, key: str, old: Record,
                new: Record) -> None:
        lines = [f"R {key} {name}\n" for name in old if name not in new and name not in _SKIP]
        update = {k: v for k, v in new.items() if k not in _SKIP and old.get(k, ...) != v}
        if update:
            lines.append(f"M {key} {_compact(update)}\n")
        for line in lines:
            self._write(now, table, line)

    def deleted(self, now: float, table: Table, key: str) -> None:
        self._write(now, table, f"D {key}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_checkpoint(path: str, table: Table) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(",\n".join(f"{_compact(k)}:\n{_compact(v)}" for k, v in table.items()))
        f.write("\n}\n")
    os.replace(tmp, path)


def _read_checkpoint(path: str) -> Table:
    """The table a day's checkpoint holds; empty when it is missing or unreadable, because a
    history query should still answer from the day's log alone."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _created(table: Table, rest: str) -> None:
    key, _, text = rest.partition(" ")
    value = json.loads(text)
    if isinstance(value, dict):
        table[key] = value


def _merged(table: Table, rest: str) -> None:
    key, _, text = rest.partition(" ")
    value = json.loads(text)
    if isinstance(value, dict):
        table.setdefault(key, {}).update(value)


def _removed(table: Table, rest: str) -> None:
    key, _, name = rest.partition(" ")
    table.get(key, {}).pop(name, None)


def _deleted(table: Table, rest: str) -> None:
    table.pop(rest.strip(), None)


#: How each kind of record event changes the table (the time events ``T``/``t`` are handled
#: by ``snapshot`` itself, since they decide where the replay stops).
_EVENTS: dict[str, Callable[[Table, str], None]] = {
    "C": _created, "M": _merged, "R": _removed, "D": _deleted,
}


def snapshot(directory: str, when: float) -> Table:
    """The table as it was at ``when`` (epoch seconds): that day's checkpoint, then its log
    replayed up to ``when``.  Corrupt lines are skipped."""
    log, ckpt = _day_paths(directory, when)
    table = _read_checkpoint(ckpt)
    try:
        f = open(log, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return table
    current = 0
    with f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            try:
                if kind in ("T", "t"):
                    current = int(rest) if kind == "T" else current + int(rest)
                    if current > when:
                        break
                    continue
                event = _EVENTS.get(kind)
                if event is not None:
                    event(table, rest)
            except ValueError:
                logger.debug("corrupt history line in %s: %r", log, line[:200])
    return table
