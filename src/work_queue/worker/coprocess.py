"""Worker coprocesses (``--coprocess FILE``): long-running servers that RemoteTasks call.

Protocol (CCTools, spec 1.11): the worker starts each instance with ``/bin/sh -c <command>``
with stdin and stdout on pipes; the coprocess writes ``<len>\\n`` and a JSON object
``{"name": ..., "port": ...}``.  The worker then announces the feature
``wq_worker_coprocess:<name>``.  A call is a TCP connection to 127.0.0.1:<port> carrying
``<function> <taskid> <len>\\n`` plus the task's ``infile`` contents; the answer is ``<len>\\n``
plus JSON, which becomes the task's output.

An instance that dies is restarted (at most :data:`MAX_RESTARTS` times); the task it was
serving comes back with a failure result.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import time

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
MAX_RESTARTS = 10


class CoprocessError(Exception):
    """A coprocess could not be started or did not answer."""


class Coprocess:
    """One running coprocess instance."""

    def __init__(self, command: str, index: int) -> None:
        self.command = command
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = ""
        self.port = 0
        self.busy_with = -1
        self.restarts = 0

    @property
    def feature(self) -> str:
        return f"wq_worker_coprocess:{self.name}"

    def start(self, cwd: str) -> None:
        """Start the instance and read its ``{"name", "port"}`` announcement."""
        self.proc = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=cwd, start_new_session=True)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.time() + START_TIMEOUT
        data = b""
        header: dict[str, object] | None = None
        while header is None:
            remaining = deadline - time.time()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.stop()
                raise CoprocessError(f"coprocess {self.command!r} did not announce itself "
                                     f"within {START_TIMEOUT:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                self.stop()
                raise CoprocessError(f"coprocess {self.command!r} exited before announcing "
                                     "its name and port")
            data += chunk
            length_text, sep, rest = data.partition(b"\n")
            if sep and len(rest) >= int(length_text or b"0"):
                header = json.loads(rest[:int(length_text)])
        if "name" not in header or "port" not in header:
            self.stop()
            raise CoprocessError(f"coprocess {self.command!r} announced {header!r}, without a "
                                 "name and a port")
        self.name = str(header["name"])
        self.port = int(header["port"])  # type: ignore[call-overload]
        self.busy_with = -1
        logger.info("coprocess %d (%s) listening on port %d", self.index, self.name, self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.proc = None


#: Seconds to wait, after a failed call, for a coprocess that may be dying to exit.
FAILED_CALL_GRACE = 1.0


class CoprocessPool:
    """The worker's coprocess instances."""

    def __init__(self, command: str, instances: int, cwd: str) -> None:
        self.cwd = cwd
        self.instances = [Coprocess(command, i) for i in range(max(1, instances))]
        for c in self.instances:
            c.start(cwd)
        names = {c.name for c in self.instances}
        if len(names) != 1:
            raise CoprocessError(f"coprocess instances disagree on their name: {names}")

    @property
    def feature(self) -> str:
        return self.instances[0].feature

    def acquire(self, task_id: int) -> Coprocess | None:
        """A ready instance, now marked busy with ``task_id`` (restarting dead ones)."""
        for c in self.instances:
            if c.busy_with < 0 and not c.alive():
                self.restart(c)
            if c.busy_with < 0 and c.alive():
                c.busy_with = task_id
                return c
        return None

    def release(self, task_id: int, failed: bool = False) -> None:
        """The instance serving ``task_id`` is free again; restart it if it died.  After a
        failed call the instance may be dying still: wait a moment for it to exit, so the next
        task does not get a coprocess that no longer listens."""
        for c in self.instances:
            if c.busy_with == task_id:
                c.busy_with = -1
                if failed and c.proc is not None:
                    try:
                        c.proc.wait(timeout=FAILED_CALL_GRACE)
                    except subprocess.TimeoutExpired:
                        pass  # alive: the call failed for another reason
                if not c.alive():
                    self.restart(c)

    def restart(self, c: Coprocess) -> None:
        c.stop()
        if c.restarts >= MAX_RESTARTS:
            return
        c.restarts += 1
        try:
            c.start(self.cwd)
        except CoprocessError as e:
            logger.warning("cannot restart coprocess %d: %s", c.index, e)

    def stop(self) -> None:
        for c in self.instances:
            c.stop()


def call(port: int, function: str, task_id: int, payload: bytes, timeout: float) -> bytes:
    """Invoke ``function`` on the coprocess at ``port``; returns its JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"{function} {task_id} {len(payload)}\n".encode() + payload)
        f = s.makefile("rb")
        line = f.readline()
        if not line.strip():
            raise CoprocessError("the coprocess closed the connection without answering")
        length = int(line)
        data = f.read(length)
        if len(data) != length:
            raise CoprocessError("the coprocess answer was cut short")
        return data
