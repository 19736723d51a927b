"""Choosing and binding the manager's listening port, as CCTools does.

``port=0`` means "the first free port in [TCP_LOW_PORT, TCP_HIGH_PORT]" (default 1024..32767,
scanned upward), unless ``WORK_QUEUE_PORT`` is set.  ``WORK_QUEUE_LOW_PORT`` /
``WORK_QUEUE_HIGH_PORT`` override the range.  A ``(low, high)`` pair binds the first free port
in that range.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping, Sequence

DEFAULT_LOW_PORT = 1024
DEFAULT_HIGH_PORT = 32767


def port_range(env: Mapping[str, str]) -> tuple[int, int]:
    low = env.get("WORK_QUEUE_LOW_PORT") or env.get("TCP_LOW_PORT") or DEFAULT_LOW_PORT
    high = env.get("WORK_QUEUE_HIGH_PORT") or env.get("TCP_HIGH_PORT") or DEFAULT_HIGH_PORT
    low_i, high_i = int(low), int(high)
    if low_i > high_i:
        raise ValueError(f"port range low {low_i} is above high {high_i}")
    return low_i, high_i


def candidate_ports(port: int | Sequence[int], env: Mapping[str, str]) -> range:
    """The ports to try, in order."""
    if isinstance(port, (list, tuple)):
        if len(port) != 2:
            raise ValueError(f"a port range is (low, high), not {port!r}")
        low, high = int(port[0]), int(port[1])
        if low > high:
            raise TypeError(f"port range low {low} is above high {high}")
        return range(low, high + 1)
    port = int(port)
    if port < 0 or port > 65535:
        raise ValueError(f"port {port} is not between 0 and 65535")
    if port == 0:
        if env.get("WORK_QUEUE_PORT"):
            fixed = int(env["WORK_QUEUE_PORT"])
            return range(fixed, fixed + 1)
        low, high = port_range(env)
        return range(low, high + 1)
    return range(port, port + 1)


def bind_listener(port: int | Sequence[int], env: Mapping[str, str] | None = None,
                  interface: str = "") -> socket.socket:
    """Bind and listen on the first free port; raises OSError naming the range if none is."""
    env = os.environ if env is None else env
    ports = candidate_ports(port, env)
    last: OSError | None = None
    for p in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((interface, p))
        except OSError as e:
            sock.close()
            last = e
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    what = f"port {ports.start}" if len(ports) == 1 else f"ports {ports.start}-{ports.stop - 1}"
    raise OSError(last.errno if last else errno.EADDRINUSE,
                  f"could not listen on {what}: {last.strerror if last else 'none free'}")
