"""This host's network addresses, as a manager's status and catalog records list them."""

from __future__ import annotations

import socket

_CACHE: list[list[dict[str, str]]] = []


def network_interfaces() -> list[dict[str, str]]:
    """This host's IPv4 addresses except loopback (CCTools ``interfaces_of_host``)."""
    out: list[dict[str, str]] = []
    try:
        import psutil

        for name, addrs in psutil.net_if_addrs().items():
            if name.startswith("lo"):
                continue
            for a in addrs:
                if a.family == socket.AF_INET and a.address:
                    out.append({"interface": name, "address": a.address, "family": "AF_INET"})
    except (ImportError, OSError):
        pass
    return out


def cached_interfaces() -> list[dict[str, str]]:
    """:func:`network_interfaces`, looked up once per process (a record is built every
    update; the host's addresses do not change under a running manager)."""
    if not _CACHE:
        _CACHE.append(network_interfaces())
    return list(_CACHE[0])
