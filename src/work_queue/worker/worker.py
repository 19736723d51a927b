"""The worker process: connect to a manager, serve it, reconnect when it goes away.

Theory of operation
-------------------
:meth:`Worker.run` connects (with exponential backoff between ``min_backoff`` and
``max_backoff``), then runs one :class:`Session` per connection (``session.py``: the shell
that carries out what the worker's core, ``core/worker_state.py``, decides).  A session:

* authenticates (if ``--password``) and sends the protocol-11 handshake;
* loops on a watcher (work_queue.events) of the manager socket and one pidfd per running task;
* handles manager messages (task blocks, ``put``/``dir`` into the cache, ``get``, ``kill``,
  ``send_results``, ``release``/``exit``...);
* starts waiting tasks whenever their resources fit (cores, memory, disk, gpus);
* announces finished tasks with ``available_results`` and streams them on ``send_results``.

When the manager disconnects, every task is killed and the cache is emptied (it belongs to
that manager); the worker then reconnects, unless ``--single-shot`` or an idle timeout ended it.
With a manager that took the ``wq-py-resume`` extension, a connection that drops while the
worker holds tasks does not end the session: the tasks go on and the worker comes back for
them (``rejoin.py``).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field

from ..tls import client_context
from . import probe
from .coprocess import CoprocessPool
from .executor import EscapeWatch
from .session import EXITED, IDLED_OUT, LOST, WALL_TIME, Session

logger = logging.getLogger(__name__)

@dataclass
class WorkerConfig:
    """Settings of one worker process (the command-line flags)."""

    host: str = "localhost"
    port: int = 9123
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    idle_timeout: float = 900.0
    connect_timeout: float = 900.0
    single_shot: bool = False
    workdir: str | None = None
    wall_time: float = 0.0
    password: bytes | None = None
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    features: list[str] = field(default_factory=list)
    os_name: str = field(default_factory=platform.system)
    arch: str = field(default_factory=platform.machine)
    io_timeout: float = 3600.0
    ssl: bool = False
    #: --from-factory: the factory that started this worker (sent as ``info from-factory``)
    factory_name: str | None = None
    #: -M: find managers whose project matches this regex through the catalog (issue 5)
    manager_name: str | None = None
    catalogs: str | None = None
    connection_mode: str | None = None
    #: run PythonTasks in warm interpreters (announced as a feature)
    warm_python: bool = True
    #: coprocess command for RemoteTasks, instances, and per-coprocess resources
    coprocess: str | None = None
    coprocesses_total: int = 0
    coprocess_cores: int = -1
    coprocess_memory: int = -1
    coprocess_disk: int = -1
    coprocess_gpus: int = -1
    watch_interval: float = 1.0
    #: --disable-symlinks: sandboxes get copies of cached inputs, never links to them
    copy_inputs: bool = False
    #: --bandwidth: most bytes per second of the worker's transfers (0 = unlimited)
    bandwidth: int = 0
    #: --tcp-window-size: SO_SNDBUF and SO_RCVBUF of the connection (0 = the system's)
    tcp_window: int = 0
    #: --volatility: chance per check (every ``volatility_interval`` s) of disconnecting
    volatility: float = 0.0
    volatility_interval: float = 60.0


class Worker:
    """A worker serving managers until it is told to exit or times out."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        base = config.workdir or _default_tmp()
        self.workspace = tempfile.mkdtemp(prefix=f"worker-{os.getuid()}-{os.getpid()}-",
                                          dir=base)
        self.start_time = time.time()
        self.end_time = self.start_time + config.wall_time if config.wall_time > 0 else 0.0
        gpus, gpu_name = probe.detect_gpus() if config.gpus is None else (config.gpus, None)
        self.cores = config.cores if config.cores is not None else probe.detect_cores()
        self.memory = config.memory if config.memory is not None else probe.detect_memory()
        disk = probe.detect_disk(self.workspace)
        self.disk = min(config.disk, disk) if config.disk is not None else disk
        self.gpus = gpus
        self.features = list(config.features)
        if gpu_name:
            self.features.append(gpu_name)
        self.hostname = _host_name()
        self.warm_python = config.warm_python and _warm_python()
        self.coprocesses: CoprocessPool | None = None
        if config.coprocess:
            instances = config.coprocesses_total or int(self.cores) or 1
            self.coprocesses = CoprocessPool(config.coprocess, instances, self.workspace)
            self.features.append(self.coprocesses.feature)
        self.last_task_id = 0
        #: processes that outlived their tasks (decides which sandboxes may be reused)
        self.escapes = EscapeWatch()

    def describe(self) -> str:
        return (f"using {self.cores} cores, {self.memory} MB memory, {self.disk} MB disk, "
                f"{self.gpus} gpus")

    def run(self) -> int:
        """Serve managers; returns the process exit code."""
        cfg = self.config
        print(f"work_queue_worker: creating workspace {self.workspace}", file=sys.stderr)
        print(f"work_queue_worker: {self.describe()}", file=sys.stderr)
        try:
            backoff = cfg.min_backoff
            last_success = time.time()
            #: a connection a refused resume left, authenticated: the next session's
            handover = None
            while True:
                if self.end_time and time.time() >= self.end_time:
                    return 0
                sock = handover if handover is not None else self._connect()
                if sock is None:
                    if time.time() - last_success > cfg.connect_timeout:
                        logger.info("could not connect for %.0f s; exiting",
                                    cfg.connect_timeout)
                        return 0
                    time.sleep(backoff)
                    backoff = min(cfg.max_backoff, backoff * 2)
                    continue
                backoff = cfg.min_backoff
                session = Session(self, sock, authenticated=handover is not None)
                outcome = session.run()
                handover = session.rejoin.handover
                last_success = time.time()
                logger.info("session ended: %s", outcome)
                if outcome in (EXITED, IDLED_OUT, WALL_TIME) or cfg.single_shot:
                    return 0
                if outcome == LOST and handover is None:
                    time.sleep(min(5.0, cfg.max_backoff))
        except KeyboardInterrupt:
            return 0
        finally:
            if self.coprocesses is not None:
                self.coprocesses.stop()
            shutil.rmtree(self.workspace, ignore_errors=True)

    def _connect(self) -> socket.socket | None:
        use_ssl = self.config.ssl
        if self.config.manager_name:  # issue 5: -M, a manager found through the catalog
            if not hasattr(self, "_finder"):
                from ..catalog.finder import ManagerFinder

                self._finder = ManagerFinder(self.config.manager_name, self.config.catalogs,
                                             self.config.connection_mode)
            found = self._finder.connect()
            if found is None:
                return None
            sock, self.config.host, self.config.port, record_ssl = found
            _set_window(sock, self.config.tcp_window)
            use_ssl = use_ssl or record_ssl
        else:
            try:
                sock = _open_connection(self.config.host, self.config.port,
                                        self.config.tcp_window)
            except OSError as e:
                logger.info("cannot connect to %s:%d: %s", self.config.host, self.config.port,
                            e)
                return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if use_ssl:
            try:
                sock = client_context().wrap_socket(sock, server_hostname=self.config.host)
            except (OSError, ValueError) as e:
                logger.warning("TLS handshake with %s failed: %s", self.config.host, e)
                sock.close()
                return None
        return sock


def _open_connection(host: str, port: int, window: int) -> socket.socket:
    """A connection to ``host:port``, its buffers of ``window`` bytes if given (set before
    connecting, as CCTools' link_window_set, so the TCP window scale fits them)."""
    if not window:
        return socket.create_connection((host, port), timeout=15)
    error: OSError = OSError(f"cannot resolve {host}")
    for family, kind, proto, _name, addr in socket.getaddrinfo(host, port, 0,
                                                                socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            _set_window(sock, window)
            sock.settimeout(15)
            sock.connect(addr)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error


def _set_window(sock: socket.socket, window: int) -> None:
    if window:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, window)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
        logger.debug("TCP window %d bytes (the kernel keeps %d for sending, %d for receiving)",
                     window, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                     sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _warm_python() -> bool:
    """Whether warm interpreters can run Python tasks here (they need cloudpickle)."""
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return False
    return hasattr(socket, "send_fds") and hasattr(os, "posix_spawn")


def _host_name() -> str:
    """This host's name as CCTools reports it: the fully qualified name, unless that is only
    localhost, then the machine's own name."""
    name = socket.getfqdn() or ""
    if not name or name.startswith("localhost") or name.startswith("127."):
        name = socket.gethostname() or name
    return name or "unknown"


def _default_tmp() -> str:
    for var in ("CCTOOLS_TEMP", "_CONDOR_SCRATCH_DIR", "TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(var)
        if value and os.path.isdir(value) and os.access(value, os.W_OK):
            return value
    return "/tmp"
