"""Warm Python interpreters that run PythonTasks without starting a new interpreter each time.

Each :class:`WarmInterpreter` is a child process of the worker (in its own session) that has
``cloudpickle`` and the task runner imported and runs one task at a time.  The worker sends a
request over a Unix ``SOCK_SEQPACKET`` pair: the pickled ``(sandbox, env, argv, function,
arguments)`` plus two file descriptors (the task's output file and the file for the result
pickle).  The interpreter answers ``done <exit code>``.

Isolation between tasks: every task unpickles its own copy of its function, so the module
globals it sees are fresh; the interpreter restores ``builtins``, the environment and the
working directory after each task; and it is replaced after :data:`TASKS_PER_INTERPRETER`
tasks.  A task that kills or crashes its interpreter only loses that interpreter.

Starting an interpreter costs tens of milliseconds, forking one about 2 ms on small machines;
reusing one costs well under a millisecond, which is what makes thousands of tasks per
second possible.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
from typing import Any

#: An interpreter is replaced after this many tasks, so slow leaks cannot accumulate.
TASKS_PER_INTERPRETER = 1000
#: Requests larger than this go through files instead (a SEQPACKET message must fit a buffer).
MAX_REQUEST = 150_000


class WarmInterpreter:
    """The worker's handle on one warm interpreter process."""

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.pid = os.posix_spawn(
            sys.executable, [sys.executable, "-m", "work_queue.worker.pyexec",
                             str(child.fileno())],
            env, setsid=True, file_actions=[(os.POSIX_SPAWN_DUP2, child.fileno(),
                                            child.fileno())])
        # POSIX_SPAWN_DUP2 onto itself clears close-on-exec, so the child inherits the socket.
        child.close()
        self.sock = parent
        self.task_id = -1
        self.served = 0
        self.alive = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def start(self, task_id: int, request: bytes, output_fd: int, result_fd: int) -> None:
        socket.send_fds(self.sock, [request], [output_fd, result_fd])
        self.task_id = task_id
        self.served += 1

    def read_reply(self) -> int | None:
        """The task's exit code, or None if the interpreter died (see :meth:`reap`)."""
        try:
            data = self.sock.recv(64)
        except OSError:
            data = b""
        self.task_id = -1
        if not data.startswith(b"done "):
            self.alive = False
            return None
        return int(data[5:])

    def reap(self, block: bool = True) -> int:
        """Wait for a dead interpreter; returns its wait status (0 if unknown)."""
        self.alive = False
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            _, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            return status
        except ChildProcessError:
            return 0

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        self.kill()
        self.reap()


def make_request(sandbox: str, env: dict[str, str], argv: list[str], function: Any,
                 arguments: Any) -> bytes | None:
    """The request for one PythonTask, or None if it is too large for one message."""
    data = pickle.dumps(("python", sandbox, env, argv, function, arguments), protocol=5)
    return data if len(data) <= MAX_REQUEST else None


def make_coprocess_request(sandbox: str, port: int, function: str, task_id: int,
                           payload: bytes, timeout: float) -> bytes | None:
    """The request to call ``function`` of the coprocess at ``port`` (a RemoteTask)."""
    data = pickle.dumps(("coprocess", sandbox, port, function, task_id, payload, timeout),
                        protocol=5)
    return data if len(data) <= MAX_REQUEST else None


def _call_coprocess(port: int, function: str, task_id: int, payload: bytes,
                    timeout: float) -> int:
    """Print the coprocess's answer; on failure a 500 answer naming the cause, exit code 1."""
    import json

    from .coprocess import call

    try:
        sys.stdout.buffer.write(call(port, function, task_id, payload, timeout))
        return 0
    except Exception as e:
        answer = {"Result": f"the coprocess did not answer: {type(e).__name__}: {e}",
                  "StatusCode": 500}
        sys.stdout.write(json.dumps(answer))
        return 1


# ---------------------------------------------------------------------------------------------
# The interpreter side (runs as ``python -m work_queue.worker.pyexec FD``)
# ---------------------------------------------------------------------------------------------


def _serve(fd: int) -> None:
    import builtins

    import cloudpickle  # noqa: F401  (warm: imported once for every task)

    from work_queue import pytask_runner

    sock = socket.socket(fileno=fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    home = os.getcwd()
    saved_builtins = dict(builtins.__dict__)
    saved_stdout, saved_stderr = os.dup(1), os.dup(2)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_REQUEST + 1024, 2)
        except OSError:
            return
        if not msg:
            return  # the worker went away
        output_fd, result_fd = fds
        code = 1
        try:
            request = pickle.loads(msg)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            if request[0] == "coprocess":
                _, sandbox, port, function, task_id, payload, timeout = request
                os.chdir(sandbox)
                code = _call_coprocess(port, function, task_id, payload, timeout)
            else:
                _, sandbox, env, argv, function, arguments = request
                os.chdir(sandbox)
                os.environ.clear()
                os.environ.update(env)
                sys.argv = list(argv)
                with os.fdopen(result_fd, "wb") as out:
                    code = pytask_runner.main(argv, function, arguments, out)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(saved_stdout, 1)
            os.dup2(saved_stderr, 2)
            for f in (output_fd, result_fd):
                try:
                    os.close(f)
                except OSError:
                    pass
            # Leave nothing behind for the next task.
            for name in [n for n in builtins.__dict__ if n not in saved_builtins]:
                del builtins.__dict__[name]
            builtins.__dict__.update(saved_builtins)
            os.chdir(home)
        sock.send(b"done %d" % code)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
