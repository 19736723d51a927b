"""A catalog on this machine for named managers when none is configured and none answers.

A manager with a name advertises itself to a catalog, and workers started with ``-M NAME``
find it there.  With no catalog configured (no :meth:`WorkQueue.specify_catalog_server`, no
``CATALOG_HOST``), both sides use ``localhost:9097``; on a fresh machine nothing listens there,
so a worker and its manager would wait for each other forever (Parsl's ``wqex_local`` example
does exactly this).  The first named manager of a process that finds no catalog at the default
address serves one itself there, on the loopback interface only (nothing leaves the machine),
for as long as it is open; another manager of the process takes over when it closes.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

logger = logging.getLogger("work_queue")

_lock = threading.Lock()
_server: Any = None
_owner: Any = None


def is_default(chosen: tuple[str, int] | None, environ: dict[str, str]) -> bool:
    """Whether the catalog is the unconfigured default (``localhost`` and ``CATALOG_PORT``)."""
    return chosen is None and not environ.get("CATALOG_HOST", "").strip()


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a catalog accepts connections at ``host:port`` (its query port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure(owner: Any, port: int) -> bool:
    """Make sure a catalog answers at ``localhost:port``, serving one for ``owner`` if none
    does; False (with a warning) when none answers and none can be served."""
    global _server, _owner
    with _lock:
        if _server is not None or answers("localhost", port):
            return True
        from ..catalog.server import CatalogServer

        try:
            _server = CatalogServer(port=port, interface="127.0.0.1", name="localhost").start()
        except OSError as e:
            logger.warning("no catalog server answers at localhost:%d and this manager cannot "
                           "serve one there (%s): workers started with -M will not find it; "
                           "set CATALOG_HOST or call specify_catalog_server()", port, e)
            return False
        _owner = owner
        logger.info("no catalog server answered at localhost:%d: serving one there on "
                    "127.0.0.1 while this manager is open", port)
        return True


def release(owner: Any) -> None:
    """Stop the catalog if ``owner`` started it (the next named manager serves another)."""
    global _server, _owner
    with _lock:
        if _owner is not owner or _server is None:
            return
        server, _server, _owner = _server, None, None
    server.stop()
