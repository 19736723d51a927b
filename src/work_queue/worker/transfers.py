"""Files crossing the connection: what the manager puts into the cache, what it gets back.

Incoming: a ``put`` fills one cache object (a small one in memory, a larger one in a file), a
``dir`` opens a directory whose lines (``put``, ``dir``, ``symlink``, ``end``) follow; the data of
a ``put`` arrives as chunks from the reader.  Outgoing: the reply to a ``get`` is written with
the encoders of ``protocol.messages`` (``file``, ``dir``, ``missing``, ``end``), a file's bytes
sent straight from disk with ``sendfile``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import RemoteProtocolError
from ..protocol import messages as m
from ..protocol.reader import Chunk
from ..protocol.urlcodec import url_encode
from .cache import Cache
from .executor import remove_tree

logger = logging.getLogger(__name__)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


class SmallObject:
    """Sink of a small ``put``: the bytes go to the in-memory cache, not to a file."""

    def __init__(self, cache: Cache, name: str, mode: int) -> None:
        self.cache, self.name, self.mode = cache, name, mode
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.cache.store(self.name, b"".join(self.parts), self.mode)


class Incoming:
    """What the manager is in the middle of sending into the cache: a file's data (``sink``)
    or the lines of a directory (``dir_stack``)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.dir_stack: list[str] = []
        self.sink: _Sink | None = None
        #: the cache name of the object being received (``put`` or ``dir``)
        self.receiving: str | None = None

    @property
    def in_directory(self) -> bool:
        return bool(self.dir_stack)

    @property
    def wants_copies(self) -> bool:
        """The chunks are kept (a small object is collected in memory), so the reader must
        hand out copies, not views of its buffer."""
        return isinstance(self.sink, SmallObject)

    def put(self, msg: m.Put) -> None:
        self.receiving = msg.name
        if msg.length <= self.cache.SMALL_LIMIT:
            self.sink = SmallObject(self.cache, msg.name, msg.mode)
            self.cache.path(msg.name)  # refuse names that would leave the cache
        else:
            self._open_sink(self.cache.path(msg.name), msg.mode)

    def directory(self, msg: m.Dir) -> None:
        self.receiving = msg.name
        path = self.cache.path(msg.name)
        remove_tree(path)
        os.makedirs(path)
        self.dir_stack.append(path)

    def dir_line(self, msg: m.Message) -> None:
        top = self.dir_stack[-1]
        if isinstance(msg, m.End):
            self.dir_stack.pop()
        elif isinstance(msg, m.Put):
            self._open_sink(os.path.join(top, _entry_name(msg.name)), msg.mode)
        elif isinstance(msg, m.Dir):
            path = os.path.join(top, _entry_name(msg.name))
            os.makedirs(path, exist_ok=True)
            self.dir_stack.append(path)
        elif isinstance(msg, m.Symlink):
            os.symlink(msg.payload.decode("utf-8", "surrogateescape"),
                       os.path.join(top, _entry_name(msg.name)))
        else:
            raise RemoteProtocolError(f"unexpected line in directory: {msg!r}")

    def chunk(self, chunk: Chunk) -> None:
        sink = self.sink
        if sink is None:
            raise RemoteProtocolError("file data without a put")
        if chunk.data:
            sink.write(chunk.data)  # type: ignore[arg-type]
        if chunk.last:
            sink.close()
            self.sink = None

    def close(self) -> None:
        if self.sink is not None:
            try:
                self.sink.close()
            except OSError:
                pass

    def abandon(self) -> str | None:
        """The connection dropped: stop receiving; the cache name of the object it cut
        short (to be removed and reported), or None if nothing was arriving."""
        if self.sink is None and not self.in_directory:
            return None
        self.close()
        self.sink = None
        self.dir_stack.clear()
        return self.receiving

    def forget_cut_short(self, name: str) -> bytes:
        """Back on a new connection: remove the object ``abandon`` named; the
        ``cache-invalid`` to send, so the manager sends it again when a task needs it."""
        self.cache.remove(name)
        text = b"the connection dropped while it arrived"
        return m.CacheInvalid(name, len(text)).encode() + text

    def _open_sink(self, path: str, mode: int) -> None:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        remove_tree(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, (mode | 0o600) & 0o777)
        self.sink = os.fdopen(fd, "wb")


class Outgoing:
    """Replies to ``get``: one output (a file or a directory tree) from the cache."""

    def __init__(self, cache: Cache, workspace: str, sock: socket.socket, io_timeout: float,
                 send: Callable[[bytes], None], flush: Callable[[], None],
                 bandwidth: int = 0) -> None:
        self.cache = cache
        #: most bytes per second to send (--bandwidth; 0 = unlimited), and bytes sent
        self.bandwidth = bandwidth
        self.sent = 0
        self.workspace = workspace
        self.sock = sock
        self.io_timeout = io_timeout
        self.send = send
        self.flush = flush
        #: The manager confirmed extensions.ENCODED_NAMES: names in replies are url-encoded.
        self.encoded_names = False

    def send_output(self, name: str) -> None:
        if not self.bandwidth:
            self._send_output(name)
            return
        # As CCTools' manager with a bandwidth: the reply takes at least size / bandwidth.
        start, self.sent = time.time(), 0
        self._send_output(name)
        self.flush()
        delay = start + self.sent / self.bandwidth - time.time()
        if delay > 0:
            time.sleep(delay)

    def _send_output(self, name: str) -> None:
        small = self.cache.small.get(name)
        end = m.End().encode()
        if small is not None:
            self.send(m.FileItem(self._wire(name), len(small[0])).encode() + small[0] + end)
            self.sent += len(small[0])
            return
        try:
            path = self.cache.path(name)
        except ValueError:
            self.send(m.MissingItem(self._wire(name), errno.EINVAL).encode() + end)
            return
        self._stream_item(name, path)
        self.send(end)

    def _wire(self, name: str) -> str:
        """``name`` as a reply carries it: url-encoded once the manager confirmed
        extensions.ENCODED_NAMES, else as it is (CCTools)."""
        return url_encode(name) if self.encoded_names else name

    def _missing(self, name: str, error: int) -> None:
        self.send(m.MissingItem(self._wire(name), error).encode())

    def _stream_item(self, name: str, path: str, top: bool = True) -> None:
        """Send one output (``top``) or one entry of an output directory.

        Only regular files and directories are sent.  Anything else (a FIFO, a socket, a
        device) is never opened (opening a FIFO blocks until someone writes to it, and the
        worker with it): as an output it is reported missing at once (the manager returns the
        task with OUTPUT_MISSING); inside an output directory it is skipped, as the CCTools
        worker skips unusual files there, and the rest of the directory comes back.
        """
        if not top and not self.encoded_names and ("\n" in name or "\r" in name):
            # A CCTools manager reads names to the end of the line: this entry cannot go (the
            # requested name itself came in a line, so it holds no line break).
            logger.warning("skipping %r in an output directory: this manager cannot take a "
                           "name with a line break", name)
            return
        try:
            if os.path.islink(path):
                # Never follow a link out of the workspace: a task must not exfiltrate files.
                real = os.path.realpath(path)
                if not real.startswith(self.workspace + os.sep):
                    self._missing(name, errno.EACCES)
                    return
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                self.send(m.DirItem(self._wire(name)).encode())
                for entry in sorted(os.listdir(path)):
                    self._stream_item(f"{name}/{entry}", os.path.join(path, entry), top=False)
                return
            if not stat.S_ISREG(st.st_mode):
                self._unusual_output(name, top)
                return
            self._stream_file(name, path, top)
        except FileNotFoundError:
            self._missing(name, errno.ENOENT)
        except OSError as e:
            self._missing(name, e.errno or errno.EIO)

    def _stream_file(self, name: str, path: str, top: bool) -> None:
        # O_NONBLOCK: should a FIFO replace the file in between, the open does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._unusual_output(name, top)
                return
            size = st.st_size
            self.send(m.FileItem(self._wire(name), size).encode())
            self.flush()
            if size:
                self.sock.settimeout(self.io_timeout)
                try:
                    self.sock.sendfile(f, 0, size)
                    self.sent += size
                finally:
                    self.sock.setblocking(False)

    def _unusual_output(self, name: str, top: bool) -> None:
        """An output that is neither a regular file nor a directory: missing as an output,
        skipped inside an output directory."""
        if top:
            logger.warning("output %s is not a regular file or a directory", name)
            self._missing(name, errno.EINVAL)
        else:
            logger.info("skipping %s in an output directory: not a regular file or a "
                        "directory", name)


def _entry_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise RemoteProtocolError(f"bad directory entry name {name!r}")
    return name
