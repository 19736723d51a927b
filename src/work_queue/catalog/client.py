"""Talking to catalog servers and to managers' status ports (spec sections 2 and 3).

* :func:`query_catalog` asks one catalog for its records (``GET /query/<base64 filter>``, the
  way CCTools clients ask, falling back to ``GET /query.json`` for old servers);
* :func:`find_managers` finds the managers whose project matches a regular expression;
* :func:`manager_addresses` lists the addresses to try for one manager record, in the order
  CCTools workers try them;
* :func:`query_manager` sends one status request (``queue``, ``task``, ``worker``, ``wable``,
  ``resources``, ``category``) to a manager's own port, with TLS and a password if needed;
* :func:`send_update` advertises a record to catalogs (TCP to port+1, or UDP).

The default catalog is ``CATALOG_HOST`` (``host[:port]``, several separated by commas) and
``CATALOG_PORT``, else ``localhost:9097``: nothing goes to a third-party server unless asked.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import AuthenticationError
from ..events import endpoints_of
from ..protocol import auth
from ..tls import client_context

DEFAULT_CATALOG_PORT = 9097
#: Updates at least this long are compressed (0x1A + zlib) when sent over UDP (CCTools).
UPDATE_LIMIT = 1200
#: A reply larger than this is refused (a catalog answer or a manager's status array).
MAX_REPLY = 256 * 1024 * 1024
MANAGER_TYPES = ("wq_master", "wq_manager")
#: The request names a manager's status port understands (spec 3), by short name.
STATUS_REQUESTS = {"queue": "queue_status", "task": "task_status", "tasks": "task_status",
                   "worker": "worker_status", "workers": "worker_status",
                   "wable": "wable_status", "category": "wable_status",
                   "categories": "wable_status", "resources": "resources_status"}


class CatalogError(OSError):
    """A catalog or manager did not answer, or answered something that is not a record list."""


# -- catalog addresses ----------------------------------------------------------------------------

def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host"``, ``"host:port"`` or ``"[v6addr]:port"`` -> (host, port)."""
    text = text.strip()
    if default_port is None:
        default_port = _env_port()
    if not text:
        raise ValueError("empty catalog host")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad catalog address {text!r}: port {port_text!r} is not a "
                         "number") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad catalog address {text!r}: port {port} out of range")
    return host, port


def parse_catalogs(spec: str | Sequence[Any] | None) -> list[tuple[str, int]]:
    """A catalog list from ``"a:9097,b"``, a list of such strings, or (host, port) pairs.
    None or empty gives :func:`default_catalogs`."""
    if not spec:
        return default_catalogs()
    items: Iterable[Any] = [spec] if isinstance(spec, str) else spec
    out: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            out += [parse_hostport(part) for part in item.split(",") if part.strip()]
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append((str(item[0]), int(item[1])))
        else:
            raise ValueError(f"a catalog is 'host:port' or (host, port), not {item!r}")
    return out or default_catalogs()


def _env_port() -> int:
    text = os.environ.get("CATALOG_PORT", "")
    try:
        return int(text) if text.strip() else DEFAULT_CATALOG_PORT
    except ValueError:
        return DEFAULT_CATALOG_PORT


def default_catalogs() -> list[tuple[str, int]]:
    """The catalogs named by ``CATALOG_HOST`` / ``CATALOG_PORT``, else ``localhost:9097``."""
    hosts = os.environ.get("CATALOG_HOST", "").strip()
    port = _env_port()
    if not hosts:
        return [("localhost", port)]
    return [parse_hostport(h, port) for h in hosts.split(",") if h.strip()]


def format_catalogs(catalogs: Sequence[tuple[str, int]]) -> str:
    """``[("a", 9097), ("b", 1)]`` -> ``"a:9097,b:1"`` (the form of ``-C`` options)."""
    return ",".join(f"{h}:{p}" for h, p in catalogs)


# -- HTTP ----------------------------------------------------------------------------------------

def http_get(host: str, port: int, path: str, timeout: float = 5.0,
             tls: bool = False) -> tuple[int, bytes]:
    """One ``GET`` (HTTPS with ``tls``, the certificate not verified); returns (status code,
    body).  Accepts the bare-``\\n`` headers CCTools servers write.  Raises CatalogError when
    the server cannot be reached or says nothing."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as plain, \
                (client_context().wrap_socket(plain, server_hostname=host) if tls
                 else plain) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Connection: close\r\n\r\n".encode())
            data = _read_all(sock, deadline)
    except OSError as e:
        raise CatalogError(f"cannot reach {host}:{port}: {_reason(e)}") from None
    head, body = _split_http(data)
    if head is None:
        raise CatalogError(f"{host}:{port} did not answer with HTTP")
    try:
        code = int(head.split(None, 2)[1])
    except (IndexError, ValueError):
        raise CatalogError(f"{host}:{port} sent a bad HTTP status line "
                           f"{head.splitlines()[0][:80]!r}") from None
    return code, body


def _split_http(data: bytes) -> tuple[str | None, bytes]:
    if not data.startswith(b"HTTP/"):
        return None, data
    cut = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not cut:
        return data.decode("latin-1"), b""
    i = min(cut)
    sep = 4 if data[i:i + 4] == b"\r\n\r\n" else 2
    return data[:i].decode("latin-1"), data[i + sep:]


def _read_all(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)
        data = sock.recv(1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        size += len(data)
        if size > MAX_REPLY:
            raise CatalogError(f"reply larger than {MAX_REPLY} bytes")


def _reason(e: BaseException) -> str:
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


# -- catalog queries -----------------------------------------------------------------------------

def query_catalog(host: str, port: int, filter_expr: str | None = None,
                  timeout: float = 5.0, tls: bool = False) -> list[dict]:
    """The records of the catalog at ``host:port`` for which the JX ``filter_expr`` is true
    (all records when None).  Sends ``/query/<base64>`` like CCTools, and falls back to
    ``/query.json`` (filtering here) if the server does not understand it.  ``tls``: over
    HTTPS (a catalog server's --ssl-port)."""
    deadline = time.monotonic() + timeout
    expr = filter_expr.strip() if filter_expr else "true"
    path = "/query/" + base64.b64encode(expr.encode()).decode()
    code, body = http_get(host, port, path, timeout, tls)
    if code == 400:
        raise CatalogError(f"catalog {host}:{port} rejected the filter {expr!r}: "
                           f"{' '.join(body.decode('utf-8', 'replace').split())[:200]}")
    records = _json_records(body) if code == 200 else None
    if records is None:
        left = max(0.1, deadline - time.monotonic())
        code2, body2 = http_get(host, port, "/query.json", left, tls)
        records = _json_records(body2) if code2 == 200 else None
        if records is None:
            raise CatalogError(f"catalog {host}:{port} did not send a JSON list of records")
        if expr != "true":
            from . import jx
            try:
                check = jx.compile_filter(expr)
            except jx.JXSyntaxError as e:
                raise CatalogError(f"bad filter {expr!r}: {e}") from None
            records = [r for r in records if check(r)]
    return [r for r in records if isinstance(r, dict)]


def _json_records(body: bytes) -> list[Any] | None:
    try:
        value = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def query_catalogs(catalogs: str | Sequence[Any] | None = None, filter_expr: str | None = None,
                   timeout: float = 5.0) -> list[dict]:
    """The records of the first catalog of the list that answers (like CCTools, which tries
    them in order).  Raises CatalogError naming every failure if none answers."""
    errors = []
    deadline = time.monotonic() + timeout
    for host, port in parse_catalogs(catalogs):
        left = deadline - time.monotonic()
        if left <= 0:
            errors.append(f"{host}:{port}: no time left")
            continue
        try:
            return query_catalog(host, port, filter_expr, timeout=left)
        except CatalogError as e:
            errors.append(str(e))
    raise CatalogError("; ".join(errors) or "no catalog server given")


def is_manager(record: dict) -> bool:
    return record.get("type") in MANAGER_TYPES


def find_managers(name_regex: str, catalogs: str | Sequence[Any] | None = None,
                  timeout: float = 5.0) -> list[dict]:
    """Records of type wq_master/wq_manager whose ``project`` fully matches ``name_regex``,
    most recently heard from first.  ``catalogs``: ``"host:port[,...]"``, a list of those or
    of (host, port) pairs; None = :func:`default_catalogs`.  Raises CatalogError if no
    catalog answers, ValueError for a bad regular expression."""
    try:
        pattern = re.compile(name_regex)
    except re.error as e:
        raise ValueError(f"bad project name expression {name_regex!r}: {e}") from None
    records = query_catalogs(catalogs, timeout=timeout)
    found = [r for r in records if is_manager(r) and isinstance(r.get("project"), str)
             and pattern.fullmatch(r["project"])]
    found.sort(key=lambda r: (_num(r.get("lastheardfrom")), _num(r.get("starttime"))),
               reverse=True)
    return found


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def manager_addresses(record: dict, connection_mode: str | None = None) -> list[tuple[str, int]]:
    """Where to connect to a manager, in the order CCTools workers try: ``by_hostname`` ->
    ``name``; ``by_apparent_ip`` -> ``address``; ``by_ip`` (default) -> each
    ``network_interfaces[].address`` in order, then ``address`` if it was not among them.
    ``connection_mode`` (the worker's ``--connection-mode``) overrides the manager's
    ``manager_preferred_connection``."""
    try:
        port = int(record.get("port", 0))
    except (TypeError, ValueError):
        return []
    if not 0 < port < 65536:
        return []
    mode = connection_mode or record.get("manager_preferred_connection") or "by_ip"
    hosts: list[str] = []
    if mode == "by_hostname":
        hosts = [record.get("name")]  # type: ignore[list-item]
    elif mode == "by_apparent_ip":
        hosts = [record.get("address")]  # type: ignore[list-item]
    else:
        for iface in record.get("network_interfaces") or []:
            if isinstance(iface, dict) and isinstance(iface.get("address"), str):
                hosts.append(iface["address"])
        address = record.get("address")
        if address not in hosts:
            hosts.append(address)  # type: ignore[arg-type]
    out: list[tuple[str, int]] = []
    for h in hosts:
        if isinstance(h, str) and h and (h, port) not in out:
            out.append((h, port))
    return out


# -- manager status port ---------------------------------------------------------------------

def status_request_line(request: str) -> bytes:
    """``"queue"`` -> ``b"queue_status\\n"`` (full names pass through)."""
    name = STATUS_REQUESTS.get(request, request)
    if name not in STATUS_REQUESTS.values():
        raise ValueError(f"unknown status request {request!r} (use one of "
                         f"{', '.join(sorted(set(STATUS_REQUESTS)))})")
    return name.encode() + b"\n"


def query_manager(host: str, port: int, request: str = "queue", timeout: float = 5.0,
                  ssl: bool = False, password: bytes | None = None) -> list[dict]:
    """Send one status request (spec 3) to the manager at ``host:port`` and return its
    JSON array.  ``ssl``: wrap in TLS first; ``password``: run the CCTools password exchange
    (a manager with a password asks it of every connection).  Raises CatalogError when the
    manager cannot be reached or does not answer in ``timeout`` seconds, AuthenticationError
    when the password is refused."""
    line = status_request_line(request)
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise CatalogError(f"cannot connect to {host} port {port}: {_reason(e)}") from None
    try:
        if ssl:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock = client_context().wrap_socket(sock, server_hostname=host)
        leftover = b""
        if password is not None:
            leftover = authenticate(sock, password, deadline)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(line)
        data = leftover + _read_all(sock, deadline)
    except AuthenticationError:
        raise
    except OSError as e:
        raise CatalogError(f"no answer from {host} port {port}: {_reason(e)}") from None
    finally:
        sock.close()
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        if not data:
            raise CatalogError(f"{host} port {port} closed the connection without an answer"
                               + ("" if password else " (does it need --password or --ssl?)")
                               ) from None
        raise CatalogError(f"{host} port {port} did not answer with JSON") from None
    if not isinstance(value, list):
        raise CatalogError(f"{host} port {port} answered {type(value).__name__}, not a list")
    return value


def authenticate(sock: socket.socket, password: bytes, deadline: float) -> bytes:
    """The client side of the CCTools password exchange on a blocking socket (both peers run
    the same steps, see ``protocol.auth``).  Returns bytes read past the exchange."""
    buf = bytearray()

    def readline() -> bytes:
        while b"\n" not in buf:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = sock.recv(4096)
            if not data:
                raise AuthenticationError("the manager closed the connection during the "
                                          "password exchange (wrong password?)")
            buf.extend(data)
            if len(buf) > 4096:
                raise AuthenticationError("the manager sent an over-long line during auth")
        i = buf.index(b"\n")
        line = bytes(buf[:i]).replace(b"\r", b"")
        del buf[:i + 1]
        return line

    sock.settimeout(max(0.1, deadline - time.monotonic()))
    exchange = auth.PasswordExchange(password, initiator=True, endpoints=endpoints_of(sock))
    auth.run_blocking(exchange, sock.sendall, readline)
    return bytes(buf)


# -- updates --------------------------------------------------------------------------------------

def encode_update(record: dict | str | bytes, compress: bool = False) -> bytes:
    """The bytes of an update: compact JSON, or 0x1A + zlib of it when ``compress``."""
    if isinstance(record, dict):
        data = json.dumps(record, separators=(",", ":")).encode()
    else:
        data = record.encode() if isinstance(record, str) else bytes(record)
    return b"\x1a" + zlib.compress(data) if compress else data


def send_update(catalogs: str | Sequence[Any] | None, record: dict | str,
                protocol: str | None = None, timeout: float = 15.0) -> int:
    """Advertise ``record`` to every catalog of the list; returns how many took it.

    ``protocol``: ``"tcp"`` (default, or env ``CATALOG_UPDATE_PROTOCOL``): connect to the
    catalog's port + 1, write the JSON, close.  ``"udp"``: one datagram to the port; records of
    ``CATALOG_UPDATE_LIMIT`` (1200) bytes or more go compressed (0x1A + zlib)."""
    protocol = (protocol or os.environ.get("CATALOG_UPDATE_PROTOCOL") or "tcp").lower()
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"catalog update protocol must be tcp or udp, not {protocol!r}")
    text = encode_update(record)
    try:
        limit = int(os.environ.get("CATALOG_UPDATE_LIMIT", UPDATE_LIMIT))
    except ValueError:
        limit = UPDATE_LIMIT
    sent = 0
    for host, port in parse_catalogs(catalogs):
        try:
            if protocol == "udp":
                data = encode_update(text, compress=True) if len(text) >= limit else text
                addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
                with socket.socket(addr[0], socket.SOCK_DGRAM) as s:
                    s.sendto(data, addr[4])
            else:
                with socket.create_connection((host, port + 1), timeout=timeout) as s:
                    s.sendall(text)
                    s.shutdown(socket.SHUT_WR)
            sent += 1
        except OSError:
            continue
    return sent
