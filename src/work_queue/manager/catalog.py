"""A named manager advertises itself to catalog servers (spec 2), as CCTools does.

The first update goes out at the first ``wait()``, then one every 60 s while the manager
works (``WORK_QUEUE_UPDATE_INTERVAL`` seconds if set), and a last one when it closes.  The
record is built in the manager's thread; sending happens in a background thread (TCP to the
catalog's port + 1 by default, UDP with ``CATALOG_UPDATE_PROTOCOL=udp``), so an unreachable
catalog never slows the manager down.  Where to: ``specify_catalog_server(host, port)``, else
``CATALOG_HOST``/``CATALOG_PORT``, else ``localhost:9097`` -- never a third-party server
unless asked to.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from ..catalog import client
from . import local_catalog, snapshot
from .interfaces import network_interfaces  # noqa: F401  (re-exported for callers)

logger = logging.getLogger(__name__)

UPDATE_INTERVAL = 60.0

#: Fields of the lean record, sent when the full one is too large for a UDP datagram.
LEAN_FIELDS = ("version", "type", "port", "ssl", "owner", "project", "starttime",
               "manager_preferred_connection", "protocol", "network_interfaces",
               "tasks_waiting", "tasks_running", "tasks_complete", "tasks_on_workers",
               "tasks_left", "capacity_tasks", "capacity_cores", "capacity_memory",
               "capacity_disk", "capacity_gpus", "capacity_weighted", "manager_load",
               "tasks_total_cores", "tasks_total_memory", "tasks_total_disk",
               "tasks_total_gpus", "workers", "workers_connected", "workers_blocked",
               "my_manager")


def update_interval() -> float:
    text = os.environ.get("WORK_QUEUE_UPDATE_INTERVAL", "")
    try:
        return max(0.1, float(text)) if text.strip() else UPDATE_INTERVAL
    except ValueError:
        return UPDATE_INTERVAL


def lean_record(full: dict[str, Any]) -> dict[str, Any]:
    lean = {k: full[k] for k in LEAN_FIELDS if k in full}
    if "manager_load" in lean:
        lean["manager_load"] = float(lean["manager_load"])
    return lean


class Advertiser:
    """Sends a manager's record to its catalogs now and then."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.interval = update_interval()
        self.last: float | None = None
        self._thread: threading.Thread | None = None
        self.sent = 0
        #: Whether the last update reached no catalog (said once, until one takes it again).
        self.unreachable_said = False

    def catalogs(self) -> list[tuple[str, int]]:
        chosen = getattr(self.queue, "_catalog", None)
        return [chosen] if chosen else client.default_catalogs()

    def maybe_update(self, now: float, force: bool = False) -> bool:
        """Advertise if the queue has a name and the interval has passed (or ``force``)."""
        q = self.queue
        if not q.name:
            return False
        if not force and self.last is not None and now - self.last < self.interval:
            return False
        if self._thread is not None and self._thread.is_alive() and not force:
            return False  # the previous update is still on its way
        self.last = now
        try:
            record = snapshot.queue_record(q, now)
        except Exception as e:  # a status bug must not break the application
            logger.warning("could not build the catalog record: %s", e)
            return False
        catalogs = self.catalogs()
        default = local_catalog.is_default(getattr(q, "_catalog", None), dict(os.environ))
        self._thread = threading.Thread(target=self._send, args=(catalogs, record, default),
                                        name="wq-catalog-update", daemon=True)
        self._thread.start()
        return True

    def _send(self, catalogs: list[tuple[str, int]], record: dict[str, Any],
              default: bool = False) -> None:
        if default and not local_catalog.ensure(self, catalogs[0][1]):
            return
        protocol = (os.environ.get("CATALOG_UPDATE_PROTOCOL") or "tcp").lower()
        try:
            limit = int(os.environ.get("CATALOG_UPDATE_LIMIT", client.UPDATE_LIMIT))
        except ValueError:
            limit = client.UPDATE_LIMIT
        payload: dict[str, Any] = record
        if protocol == "udp":
            text = client.encode_update(record)
            if len(text) >= limit and len(client.encode_update(text, compress=True)) > limit:
                payload = lean_record(record)
        try:
            n = client.send_update(catalogs, payload, protocol=protocol
                                   if protocol in ("tcp", "udp") else "tcp")
        except (OSError, ValueError) as e:
            logger.debug("catalog update failed: %s", e)
            return
        self.sent += n
        if not n and not self.unreachable_said:
            logger.warning("no catalog server took the record of manager %r (%s): workers "
                           "started with -M will not find it", self.queue.name,
                           client.format_catalogs(catalogs))
        self.unreachable_said = not n

    def final(self, now: float, wait: float = 1.0) -> None:
        """The last update, when the manager closes: waits at most ``wait`` seconds in all for
        it (and one still on its way) to leave.  Nothing is sent while the interpreter is
        finalizing: a thread cannot start then (``Thread.start()`` would block forever)."""
        if not self.queue.name or sys.is_finalizing():
            return
        deadline = time.monotonic() + wait
        if self._thread is not None:
            self._thread.join(wait)
        if self.maybe_update(now, force=True) and self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        local_catalog.release(self)


class FactoryLimits:
    """The ``max_workers`` of the factories whose workers are connected, read from the
    catalog's ``wq_factory`` records (CCTools ``update_read_catalog_factory``).

    The query runs in a background thread once per update interval while some worker says
    ``from-factory``; the manager's loop picks up what it found with :meth:`take`.
    """

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.interval = update_interval()
        self.names: set[str] = set()
        self.max_workers: dict[str, int] = {}
        self.last: float | None = None
        self._thread: threading.Thread | None = None
        self._found: dict[str, int] | None = None
        self._lock = threading.Lock()

    def maybe_fetch(self, now: float) -> None:
        if not self.names or (self.last is not None and now - self.last < self.interval):
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self.last = now
        names = sorted(self.names)
        chosen = getattr(self.queue, "_catalog", None)
        catalogs = [chosen] if chosen else client.default_catalogs()
        self._thread = threading.Thread(target=self._fetch, args=(catalogs, names),
                                        name="wq-factory-query", daemon=True)
        self._thread.start()

    def _fetch(self, catalogs: list[tuple[str, int]], names: list[str]) -> None:
        wanted = " || ".join(f'factory_name == "{n}"' for n in names)
        try:
            records = client.query_catalogs(catalogs, f'type == "wq_factory" && ({wanted})',
                                            timeout=5.0)
        except (OSError, ValueError, client.CatalogError) as e:
            logger.debug("cannot read factory records: %s", e)
            return
        found: dict[str, int] = {}
        for rec in records:
            name, limit = rec.get("factory_name"), rec.get("max_workers")
            if isinstance(name, str) and isinstance(limit, int | float):
                found[name] = int(limit)
        with self._lock:
            self._found = found

    def take(self) -> dict[str, int] | None:
        """New limits found since the last call (None if nothing new)."""
        with self._lock:
            found, self._found = self._found, None
        if found is not None:
            self.max_workers.update(found)
        return found
