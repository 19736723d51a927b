"""``catalog_server``: where managers advertise themselves and clients find them (spec 2).

One thread runs a selector loop over three sockets on the same port number as CCTools:

* UDP ``port``: one update per datagram, JSON text or 0x1A + zlib of it (or legacy
  ``name value`` lines);
* TCP ``port + 1``: one update per connection (the sender writes it and closes);
* TCP ``port``: HTTP queries, each answered by a short-lived thread (at most ``max_jobs`` at
  once; beyond that a ``503`` reply), so a slow client never holds up updates.

Updates that are not JSON objects, too large (over 1 MB, also after decompression), or that
arrive when the table is full are dropped and logged; the server keeps running.  Records are
keyed ``address:port:name[:uuid]``, get ``address``, ``lastheardfrom`` and ``name`` (reverse DNS
of the sender, else the name given, else the address) and expire ``lifetime`` seconds after the
last update (a record's own smaller ``lifetime`` wins).

Queries: ``/query.json``, ``/query/<base64 JX filter>``, ``/query.text``, ``/query.newclassads``,
``/history/<epoch>/<query>`` (with a history directory), ``/detail/<key>``; the status pages
``/`` and ``/manager/<key>``, and their data ``/api/managers.json`` and
``/api/manager/<key>/<queue|task|worker|wable>`` (asked of the manager itself).
"""

from __future__ import annotations

import base64
import binascii
import collections
import concurrent.futures
import getpass
import json
import logging
import selectors
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any

from ..version import __version__
from . import client, history, jx, page
from .records import MAX_UPDATE, parse_update, record_key

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9097
#: Most records kept (CCTools MAX_TABLE_SIZE).
MAX_RECORDS = 10000
MAX_REQUEST_HEAD = 64 * 1024
#: Time an HTTP client has to send its request, and a TCP update its record.
REQUEST_TIMEOUT = 15.0
UPDATE_TIMEOUT = 5.0
#: Samples of each manager's numbers kept for the status page's charts.
SERIES_LENGTH = 2880
SERIES_FIELDS = ("tasks_waiting", "tasks_running", "tasks_complete", "workers")


def _http_head(code: int, message: str, content_type: str) -> bytes:
    date = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime())
    return (f"HTTP/1.1 {code} {message}\nDate: {date}\nServer: catalog_server\n"
            f"Connection: close\nAccess-Control-Allow-Origin: *\n"
            f"Content-type: {content_type}; charset=utf-8\n\n").encode()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _unquoted(value: Any) -> str:
    return value if isinstance(value, str) else _compact(value)


def _b64_text(text: str) -> str:
    text = urllib.parse.unquote(text).strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Invalid base-64 encoding.") from None
    return raw.decode("utf-8", "replace")


class _RateLimitedLog:
    """Log one line per kind of problem at most every ``interval`` seconds, with a count."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.suppressed: collections.Counter[str] = collections.Counter()

    def warn(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -1e9) >= self.interval:
            extra = self.suppressed.pop(kind, 0)
            more = f" ({extra} more like it not shown)" if extra else ""
            logger.warning("%s%s", text, more)
            self.last[kind] = now
        else:
            self.suppressed[kind] += 1


class _UpdateConn:
    __slots__ = ("sock", "addr", "data", "deadline")

    def __init__(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.data = bytearray()
        self.deadline = deadline


class CatalogServer:
    """A catalog server.  ``serve_forever()`` in the foreground, or ``start()`` for a thread.

    Args:
        port: query (TCP) and update (UDP) port; TCP updates on ``port + 1``.  0 picks a free
            pair.
        lifetime: seconds a record lives after its last update.
        history_dir: keep the history (deltadb format) there, and reload the table from it.
        update_hosts: catalogs to report this server to (``type:"catalog"``), none by default.
        ssl_context: also answer queries over HTTPS, on ``ssl_port`` (0 picks a free one).
    """

    def __init__(self, port: int = DEFAULT_PORT, interface: str = "", lifetime: float = 1800,
                 history_dir: str | None = None, update_hosts: list[str] | None = None,
                 update_interval: float = 300, max_jobs: int = 50,
                 query_timeout: float = 60.0, name: str | None = None,
                 update_log: str | None = None, max_records: int = MAX_RECORDS,
                 clean_interval: float = 60.0, ssl_context: ssl.SSLContext | None = None,
                 ssl_port: int = 0) -> None:
        if lifetime <= 0:
            raise ValueError(f"lifetime must be positive, not {lifetime}")
        self.lifetime = float(lifetime)
        self.max_jobs = max(1, int(max_jobs))
        self.query_timeout = float(query_timeout)
        self.max_records = int(max_records)
        self.clean_interval = min(float(clean_interval), self.lifetime)
        self.update_hosts = list(update_hosts or [])
        self.update_interval = float(update_interval)
        self.hostname = name or socket.getfqdn()
        self.owner = getpass.getuser()
        self.starttime = time.time()
        self._bind(interface, int(port))
        self.ssl_context = ssl_context
        self.ssl_sock: socket.socket | None = None
        self.ssl_port = 0
        if ssl_context is not None:
            self._bind_ssl(interface, int(ssl_port))
        self.records: dict[str, dict] = {}
        self.series: dict[str, collections.deque[list[float]]] = {}
        self.lock = threading.Lock()
        self.history = history.History(history_dir) if history_dir else None
        self.history_dir = history_dir
        if history_dir:
            self.records.update(history.snapshot(history_dir, time.time()))
        self.update_log = open(update_log, "a", encoding="utf-8") if update_log else None  # noqa: SIM115
        self.stats = collections.Counter[str]()
        self._log = _RateLimitedLog()
        self._names: dict[str, tuple[str | None, float]] = {}
        self._pending_names: dict[str, concurrent.futures.Future[str | None]] = {}
        self._resolver = concurrent.futures.ThreadPoolExecutor(2, "catalog-rdns")
        self._proxy = concurrent.futures.ThreadPoolExecutor(4, "catalog-proxy")
        self._jobs = threading.BoundedSemaphore(self.max_jobs)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._last_clean = time.time()
        self._next_upstream = 0.0

    # -- sockets ---------------------------------------------------------------------------------

    def _bind(self, interface: str, port: int) -> None:
        last: OSError | None = None
        for _ in range(50 if port == 0 else 1):
            socks: list[socket.socket] = []
            try:
                q = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(q)
                q.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                q.bind((interface, port))
                p = q.getsockname()[1]
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(u)
                u.bind((interface, p))
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(t)
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                t.bind((interface, p + 1))
            except OSError as e:
                last = e
                for s in socks:
                    s.close()
                continue
            for s in (q, t):
                s.listen(128)
            for s in socks:
                s.setblocking(False)
            try:
                u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:
                pass
            self.query_sock, self.udp_sock, self.update_sock = q, u, t
            self.port = p
            return
        where = f"{interface or '*'} port {port}" if port else "any free port pair"
        raise OSError(last.errno if last else 0,
                      f"catalog_server: could not listen on {where} (TCP and UDP {port}, "
                      f"TCP {port + 1 if port else 'port+1'}): "
                      f"{last.strerror if last else 'unknown error'}")

    def _bind_ssl(self, interface: str, port: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((interface, port))
            s.listen(128)
        except OSError as e:
            s.close()
            for other in (self.query_sock, self.udp_sock, self.update_sock):
                other.close()
            raise OSError(e.errno, f"catalog_server: could not listen on {interface or '*'} "
                          f"SSL TCP port {port}: {e.strerror}") from None
        s.setblocking(False)
        self.ssl_sock, self.ssl_port = s, s.getsockname()[1]

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> CatalogServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="catalog-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def __enter__(self) -> CatalogServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp_sock, selectors.EVENT_READ, "udp")
        sel.register(self.update_sock, selectors.EVENT_READ, "update-listen")
        sel.register(self.query_sock, selectors.EVENT_READ, "query-listen")
        if self.ssl_sock is not None:
            sel.register(self.ssl_sock, selectors.EVENT_READ, "ssl-listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        pending: dict[int, _UpdateConn] = {}
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(1.0):
                    what = key.data
                    try:
                        self._ready(what, sel, pending)
                    except Exception as e:  # never let one bad peer stop the server
                        self._log.warn("internal", f"error handling {what}: {e!r}")
                        logger.debug("details", exc_info=True)
                self._housekeeping(sel, pending)
        finally:
            for c in pending.values():
                c.sock.close()
            sel.close()
            for s in (self.query_sock, self.udp_sock, self.update_sock, self._wake_r,
                      self._wake_w, self.ssl_sock):
                if s is not None:
                    s.close()
            self._resolver.shutdown(wait=False, cancel_futures=True)
            self._proxy.shutdown(wait=False, cancel_futures=True)
            if self.history:
                self.history.close()
            if self.update_log:
                self.update_log.close()

    def _ready(self, what: Any, sel: selectors.BaseSelector,
               pending: dict[int, _UpdateConn]) -> None:
        """Serve the socket ``what`` names that is ready to read."""
        if what == "udp":
            self._read_udp()
        elif what == "update-listen":
            self._accept_updates(sel, pending)
        elif what == "query-listen":
            self._accept_queries(self.query_sock, None)
        elif what == "ssl-listen" and self.ssl_sock is not None:
            self._accept_queries(self.ssl_sock, self.ssl_context)
        elif what == "wake":
            self._wake_r.recv(64)
        else:
            self._read_update(sel, pending, what)

    def _housekeeping(self, sel: selectors.BaseSelector, pending: dict[int, _UpdateConn]) -> None:
        now = time.time()
        mono = time.monotonic()
        for fd, c in list(pending.items()):
            if mono > c.deadline:
                self._log.warn("slow-update", f"TCP update from {c.addr[0]} took longer than "
                               f"{UPDATE_TIMEOUT:.0f} s; dropped")
                self.stats["updates_dropped"] += 1
                sel.unregister(c.sock)
                c.sock.close()
                del pending[fd]
        if now - self._last_clean >= self.clean_interval:
            self._last_clean = now
            self.remove_expired(now)
        if self.update_hosts and now >= self._next_upstream:
            self._next_upstream = now + self.update_interval
            self._report_upstream()

    # -- updates ---------------------------------------------------------------------------------

    def _read_udp(self) -> None:
        for _ in range(1000):
            try:
                data, addr = self.udp_sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log.warn("udp", f"UDP receive failed: {e}")
                return
            self.handle_update(addr[0], addr[1], data, "udp")

    def _accept_updates(self, sel: selectors.BaseSelector, pending: dict[int, _UpdateConn]
                        ) -> None:
        for _ in range(100):
            try:
                sock, addr = self.update_sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log.warn("accept", f"accepting a TCP update failed: {e}")
                return
            if len(pending) >= 1000:
                self._log.warn("busy", "too many TCP updates at once; dropping one")
                self.stats["updates_dropped"] += 1
                sock.close()
                continue
            sock.setblocking(False)
            c = _UpdateConn(sock, addr, time.monotonic() + UPDATE_TIMEOUT)
            pending[sock.fileno()] = c
            sel.register(sock, selectors.EVENT_READ, c)

    def _read_update(self, sel: selectors.BaseSelector, pending: dict[int, _UpdateConn],
                     c: _UpdateConn) -> None:
        try:
            data = c.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
            c.data.clear()
        if data:
            c.data += data
            if len(c.data) <= MAX_UPDATE:
                return
            self._log.warn("huge", f"TCP update from {c.addr[0]} is larger than {MAX_UPDATE} "
                           "bytes; dropped")
            self.stats["updates_dropped"] += 1
            c.data.clear()
        sel.unregister(c.sock)
        pending.pop(c.sock.fileno(), None)
        c.sock.close()
        if c.data:
            if c.data.startswith(b"GET "):
                self._log.warn("web", f"{c.addr[0]} sent an HTTP request to the update port; "
                               "ignored")
                return
            self.handle_update(c.addr[0], c.addr[1], bytes(c.data), "tcp")

    def handle_update(self, addr: str, port: int, data: bytes, protocol: str) -> bool:
        """Take one update from ``addr``; False (and a logged line) if it was dropped."""
        try:
            record = parse_update(data)
        except ValueError as e:
            self.stats["updates_dropped"] += 1
            self._log.warn("bad-" + protocol, f"dropped a {protocol} update from {addr}:{port}: "
                           f"{e}")
            return False
        now = time.time()
        record["address"] = addr
        record["lastheardfrom"] = int(now)
        resolved = self._reverse_name(addr)
        if resolved:
            record["name"] = resolved
        elif not isinstance(record.get("name"), str) or not record["name"]:
            record["name"] = addr
        key = record_key(record)
        with self.lock:
            old = self.records.get(key)
            if old is None and len(self.records) >= self.max_records:
                self.stats["updates_dropped"] += 1
                self._log.warn("full", f"table full ({self.max_records} records); dropped the "
                               f"update from {addr}")
                return False
            self.records[key] = record
            if client.is_manager(record):
                s = self.series.get(key)
                if s is None:
                    s = self.series[key] = collections.deque(maxlen=SERIES_LENGTH)
                s.append([int(now)] + [_number(record.get(f)) for f in SERIES_FIELDS])
        if self.history is not None:
            if old is None:
                self.history.created(now, self.records, key, record)
            else:
                self.history.changed(now, self.records, key, old, record)
        if self.update_log is not None and old is None:
            self.update_log.write(_compact(record) + "\n")
            self.update_log.flush()
        self.stats["updates"] += 1
        logger.debug("received %s update from %s", protocol, key)
        return True

    def _reverse_name(self, addr: str) -> str | None:
        """Reverse DNS of ``addr``, cached; waits at most 0.5 s for a new address (a slow
        answer lands in the cache for the next update)."""
        now = time.monotonic()
        cached = self._names.get(addr)
        if cached is not None and now - cached[1] < 600:
            return cached[0]
        fallback = cached[0] if cached else None
        future = self._pending_names.get(addr)
        if future is None:
            if len(self._pending_names) >= 64:
                return fallback
            future = self._pending_names[addr] = self._resolver.submit(_gethostbyaddr, addr)
            try:
                future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                return fallback
        if not future.done():
            return fallback
        del self._pending_names[addr]
        name = future.result()
        if len(self._names) > 10000:
            self._names.clear()
        self._names[addr] = (name, now)
        return name

    def remove_expired(self, now: float | None = None) -> int:
        """Drop records not heard from within their lifetime (none during the first
        ``lifetime`` seconds after start, as records reloaded from history look stale)."""
        now = time.time() if now is None else now
        if now - self.starttime < self.lifetime:
            return 0
        with self.lock:
            gone = [k for k, r in self.records.items() if self._expired(r, now)]
            for k in gone:
                del self.records[k]
                self.series.pop(k, None)
        for k in gone:
            if self.history is not None:
                self.history.deleted(now, self.records, k)
        return len(gone)

    def _expired(self, record: dict, now: float) -> bool:
        life = self.lifetime
        own = record.get("lifetime")
        if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0:
            life = min(life, float(own))
        return now - _number(record.get("lastheardfrom")) > life

    def _report_upstream(self) -> None:
        rec = {"type": "catalog", "version": __version__, "owner": self.owner,
               "starttime": int(self.starttime), "port": self.port,
               "url": f"http://{self.hostname}:{self.port}"}
        hosts = list(self.update_hosts)
        threading.Thread(target=lambda: [client.send_update(h, rec) for h in hosts],
                         daemon=True).start()

    # -- queries ---------------------------------------------------------------------------------

    def snapshot(self) -> list[dict]:
        """The live records, sorted by name (case-insensitively) like CCTools."""
        now = time.time()
        grace = now - self.starttime < self.lifetime
        with self.lock:
            records = [r for r in self.records.values() if grace or not self._expired(r, now)]
        records.sort(key=listing_order)
        return records

    def _accept_queries(self, listener: socket.socket, tls: ssl.SSLContext | None) -> None:
        for _ in range(100):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log.warn("accept", f"accepting a query failed: {e}")
                return
            if not self._jobs.acquire(blocking=False):
                self._log.warn("busy", f"{self.max_jobs} queries already running; "
                               f"answering {addr[0]} 503")
                try:
                    sock.setblocking(True)
                    sock.settimeout(0.5)
                    sock.sendall(_http_head(503, "Busy", "text/plain") + b"Server busy.\n")
                except OSError:
                    pass
                sock.close()
                continue
            threading.Thread(target=self._serve_query, args=(sock, addr, tls), daemon=True,
                             name="catalog-query").start()

    def _serve_query(self, sock: socket.socket, addr: tuple[str, int],
                     tls: ssl.SSLContext | None = None) -> None:
        try:
            sock.setblocking(True)
            deadline = time.monotonic() + min(REQUEST_TIMEOUT, self.query_timeout)
            if tls is not None:  # the handshake, in this query's thread (as CCTools' child)
                sock.settimeout(min(REQUEST_TIMEOUT, self.query_timeout))
                sock = tls.wrap_socket(sock, server_side=True)
            head = bytearray()
            while b"\n\n" not in head.replace(b"\r", b""):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                sock.settimeout(left)
                data = sock.recv(8192)
                if not data:
                    if not head:
                        return
                    break
                head += data
                if len(head) > MAX_REQUEST_HEAD:
                    sock.sendall(_http_head(431, "Request Header Fields Too Large",
                                            "text/plain") + b"Request too large.\n")
                    return
            sock.settimeout(self.query_timeout)
            first = head.split(b"\n", 1)[0].decode("latin-1").strip()
            for chunk in self.respond(first):
                sock.sendall(chunk)
        except OSError:
            pass
        except Exception as e:
            self._log.warn("query", f"query from {addr[0]} failed: {e!r}")
            logger.debug("details", exc_info=True)
        finally:
            try:
                sock.close()
            finally:
                self._jobs.release()

    def respond(self, request_line: str) -> list[bytes]:
        """The reply to one HTTP request line (``GET /query.json HTTP/1.1``)."""
        parts = request_line.split()
        if len(parts) < 2:
            return [_http_head(400, "Bad Request", "text/plain"), b"Bad request line.\n"]
        method, url = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return [_http_head(405, "Method Not Allowed", "text/plain"),
                    b"Only GET is supported.\n"]
        path = url
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        path, _, query = path.partition("?")
        params = urllib.parse.parse_qs(query)
        try:
            reply = self._route(path, params)
        except _HTTPError as e:
            reply = [_http_head(e.code, e.message, "text/plain"), e.body.encode()]
        return reply[:1] if method == "HEAD" else reply

    def _route(self, path: str, params: dict[str, list[str]]) -> list[bytes]:
        if path.startswith("/updates/"):
            raise _HTTPError(501, "Not Implemented", "Update streams are not supported by "
                             "this catalog server; use /history/<time>/query.json.\n")
        if path.startswith("/history/"):
            records, stamp, path = self._history_records(path)
        else:
            records, stamp = self.snapshot(), 0
        answer = self._query_answer(path, records)
        if answer is None:
            answer = self._page_answer(path, records, stamp)
        return answer

    def _history_records(self, path: str) -> tuple[list[dict], int, str]:
        """``/history/<epoch>/<rest>``: the table as it was then, the time, and ``/<rest>``
        (answered from those records exactly as the same query of the live table)."""
        if not self.history_dir:
            raise _HTTPError(404, "Not Found", "This server keeps no history "
                             "(start it with -H <dir>).\n")
        stamp_text, _, rest = path[len("/history/"):].partition("/")
        try:
            stamp = int(stamp_text)
        except ValueError:
            raise _HTTPError(400, "Bad Request", "A history query is "
                             "/history/<epoch seconds>/<query>.\n") from None
        table = history.snapshot(self.history_dir, stamp)
        records = sorted(table.values(), key=listing_order)
        return records, stamp, "/" + rest

    def _query_answer(self, path: str, records: list[dict]) -> list[bytes] | None:
        """The machine-readable queries CCTools clients send; None for any other path."""
        if path == "/query.json":
            return [_http_head(200, "OK", "text/plain"), _json_list(records)]
        if path.startswith("/query/"):
            try:
                expr = _b64_text(path[len("/query/"):])
            except ValueError as e:
                raise _HTTPError(400, "Bad Request", f"{e}\n") from None
            try:
                check = jx.compile_filter(expr)
            except jx.JXSyntaxError as e:
                raise _HTTPError(400, "Bad Request", f"Invalid query text.\n{e}\n") from None
            return [_http_head(200, "OK", "text/plain"),
                    _json_list([r for r in records if check(r)])]
        if path == "/query.text":
            text = "".join("".join(f"{k} {_unquoted(v)}\n" for k, v in r.items()) + "\n"
                           for r in records)
            return [_http_head(200, "OK", "text/plain"), text.encode()]
        if path == "/query.newclassads":
            text = "".join("[\n" + "".join(f"{k}={_compact(v)};\n" for k, v in r.items())
                           + "]\n" for r in records)
            return [_http_head(200, "OK", "text/plain"), text.encode()]
        return None

    def _page_answer(self, path: str, records: list[dict], stamp: int) -> list[bytes]:
        """The status pages, their data, and the 404 page for anything unknown."""
        if path in ("/", "/query.html", "/index.html"):
            return [_http_head(200, "OK", "text/html"),
                    page.overview_html(self.hostname, records, stamp).encode()]
        if path.startswith(("/manager/", "/detail/")):
            key = urllib.parse.unquote(path.split("/", 2)[2])
            rec = next((r for r in records if record_key(r) == key), None)
            if rec is None:
                raise _HTTPError(404, "Not Found", f"No record {key!r} (it may have "
                                 "expired).\n")
            return [_http_head(200, "OK", "text/html"),
                    page.manager_html(self.hostname, key, rec).encode()]
        if path == "/api/managers.json":
            return [_http_head(200, "OK", "application/json"),
                    _compact(self.managers_view(records)).encode()]
        if path.startswith("/api/manager/"):
            key, _, request = urllib.parse.unquote(path[len("/api/manager/"):]).rpartition("/")
            rec = next((r for r in records if record_key(r) == key), None)
            if rec is None:
                raise _HTTPError(404, "Not Found", f"No record {key!r}.\n")
            return self._ask_manager(rec, request)
        body = (f"<p>Error 404: Invalid URL</p><pre>{_html_escape(path)}</pre>"
                "<p><a href=/>Return to Index</a></p>")
        return [_http_head(404, "Not Found", "text/html"), body.encode()]

    def managers_view(self, records: list[dict]) -> dict[str, Any]:
        """What the status page draws: each manager's numbers and its recent history."""
        out = []
        with self.lock:
            series = {k: list(v) for k, v in self.series.items()}
        for r in records:
            if not client.is_manager(r):
                continue
            key = record_key(r)
            item = {f: r.get(f) for f in page.OVERVIEW_FIELDS}
            item["key"] = key
            item["series"] = series.get(key, [])
            out.append(item)
        return {"now": int(time.time()), "server": self.hostname, "fields": SERIES_FIELDS,
                "managers": out, "stats": dict(self.stats)}

    def _ask_manager(self, rec: dict, request: str) -> list[bytes]:
        try:
            client.status_request_line(request)
        except ValueError as e:
            raise _HTTPError(400, "Bad Request", f"{e}\n") from None
        addresses = client.manager_addresses(rec)
        errors = []
        for host, port in addresses:
            future = self._proxy.submit(client.query_manager, host, port, request, 3.0,
                                        bool(rec.get("ssl")))
            try:
                answer = future.result(timeout=5.0)
            except (OSError, concurrent.futures.TimeoutError, ValueError) as e:
                errors.append(f"{host}:{port}: {e}")
                continue
            return [_http_head(200, "OK", "application/json"), _compact(answer).encode()]
        return [_http_head(502, "Bad Gateway", "application/json"),
                _compact({"error": "; ".join(errors) or "no address to ask"}).encode()]


def listing_order(record: dict) -> tuple[str, str, str]:
    """Records are listed by name, case-insensitively, like CCTools; managers on one host share
    that name, so their project and port break the tie, and a listing (the status page's rows)
    does not depend on whose update arrived first."""
    return (str(record.get("name") or "unknown").lower(), str(record.get("project") or ""),
            str(record.get("port") or ""))


class _HTTPError(Exception):
    def __init__(self, code: int, message: str, body: str) -> None:
        super().__init__(message)
        self.code, self.message, self.body = code, message, body


def _json_list(records: list[dict]) -> bytes:
    if not records:
        return b"[\n\n]\n"
    return ("[\n" + ",\n".join(_compact(r) for r in records) + "\n]\n").encode()


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0


def _gethostbyaddr(addr: str) -> str | None:
    try:
        return socket.gethostbyaddr(addr)[0]
    except (OSError, UnicodeError):
        return None


def _html_escape(text: str) -> str:
    import html
    return html.escape(text)
