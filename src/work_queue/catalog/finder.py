"""How a worker started with ``-M NAME`` finds a manager (spec 2, CCTools worker).

The catalog's records are fetched (at most once a minute), those of type wq_master/wq_manager
whose ``project`` fully matches the regular expression are kept and shuffled, and each one's
addresses are tried in the order :func:`client.manager_addresses` gives.  A manager that
goes away is simply not reachable at the next try, so the worker moves on to another.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
from typing import Any

from . import client

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


class ManagerFinder:
    """Connects to one of the managers whose project matches ``name_regex``."""

    def __init__(self, name_regex: str, catalogs: str | None = None,
                 connection_mode: str | None = None, connect_timeout: float = 5.0) -> None:
        try:
            self.pattern = re.compile(name_regex)
        except re.error as e:
            raise ValueError(f"bad manager name expression {name_regex!r}: {e}") from None
        if connection_mode not in (None, "by_ip", "by_hostname", "by_apparent_ip"):
            raise ValueError(f"connection mode must be by_ip, by_hostname or by_apparent_ip, "
                             f"not {connection_mode!r}")
        self.name_regex = name_regex
        self.catalogs = client.parse_catalogs(catalogs)
        self.connection_mode = connection_mode
        self.connect_timeout = connect_timeout
        self._records: list[dict[str, Any]] = []
        self._fetched = -1e9
        #: The manager of the previous connection, tried last next time.
        self.last: tuple[str, int] | None = None
        #: Whether the catalog's silence was already reported (once, until it answers).
        self.unreachable_said = False

    def records(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - self._fetched >= CACHE_SECONDS or not self._records:
            try:
                self._records = client.find_managers(self.name_regex, self.catalogs)
                self._fetched = now
            except client.CatalogError as e:
                # Said at once and clearly, then quietly while it lasts: a worker usually
                # starts before its manager, or the catalog comes up later.
                log = logger.info if self.unreachable_said else logger.warning
                log("no catalog server answered (%s): %s; still looking for a manager named "
                    "%r (set -C HOST:PORT or CATALOG_HOST to use another catalog)",
                    client.format_catalogs(self.catalogs), e, self.name_regex)
                self.unreachable_said = True
                return []
            self.unreachable_said = False
        return list(self._records)

    def forget(self) -> None:
        """Ask the catalog again at the next connection attempt."""
        self._fetched = -1e9

    def connect(self) -> tuple[socket.socket, str, int, bool] | None:
        """A connected socket to a matching manager, with its host, port and whether it
        wants TLS; None when none is reachable now."""
        records = self.records()
        random.shuffle(records)
        if self.last is not None and len(records) > 1:
            # prefer another manager than the one we just left
            records.sort(key=lambda r: (str(r.get("address")), r.get("port")) == self.last)
        for rec in records:
            for host, port in client.manager_addresses(rec, self.connection_mode):
                try:
                    sock = socket.create_connection((host, port), timeout=self.connect_timeout)
                except OSError as e:
                    logger.info("cannot connect to %s (%s:%d): %s", rec.get("project"), host,
                                port, e)
                    continue
                logger.info("connected to manager %s at %s:%d", rec.get("project"), host, port)
                self.last = (str(rec.get("address")), rec.get("port"))  # type: ignore[assignment]
                return sock, host, port, bool(rec.get("ssl"))
        if records:
            self.forget()  # every known manager failed: the list may be stale
        return None
