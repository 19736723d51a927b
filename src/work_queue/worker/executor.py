"""Running one task: its sandbox, its process group, its exit.

A task runs ``/bin/sh -c <command>`` (or, for a plain command, the program itself: see
``launch_for``) in its sandbox (an empty directory in the worker's workspace), in its own
process group (so a kill reaches every process it started), with stdin from /dev/null and
stdout+stderr merged into one file.  Completion is noticed through a pidfd that the worker watches.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..constants import (
    WORK_QUEUE_RESULT_SIGNAL,
    WORK_QUEUE_RESULT_SUCCESS,
)
from ..monitor.measure import tree_usage
from ..protocol.task_block import TaskSpec


@dataclass(slots=True)
class TaskRun:
    """A task the worker holds: waiting, running, or finished and not yet reported."""

    spec: TaskSpec
    cores: float = 0
    memory: float = 0
    disk: float = 0
    gpus: float = 0
    sandbox: str = ""
    #: process id of the task (its process group id too); 0 before it starts
    pid: int = 0
    pidfd: int = -1
    output_fd: int = -1
    #: forked Python tasks: inputs handed over in memory (remote name -> bytes), and where the
    #: result pickle is written (``result_name`` is the output's remote name)
    memory_inputs: dict[str, bytes] = field(default_factory=dict)
    result_fd: int = -1
    result_name: str = ""
    #: the warm interpreter running this task, if any (a WarmInterpreter)
    interp: Any = None
    #: the coprocess instance serving this RemoteTask, if any (a Coprocess)
    coprocess: Any = None
    start: float = 0.0
    finish: float = 0.0
    status: int = WORK_QUEUE_RESULT_SUCCESS
    exit_code: int = 0
    done: bool = False
    reported: bool = False
    #: forced result set by the worker when it kills the task (timeout, wall time)
    forced_status: int | None = None
    #: remote_name -> bytes already reported, for WATCH outputs
    watched: dict[str, int] = field(default_factory=dict)
    #: resource measurement of a monitored task (a work_queue.monitor TreeMonitor)
    monitor: Any = None
    #: the limit the monitor found broken (the task was killed for it), if any
    broken_limit: str | None = None
    #: the monitor's summary (CCTools JSON), sent before the result
    summary: bytes = b""
    #: resource usage and raw wait status of the reaped process
    rusage: Any = None
    wait_status: int = 0
    #: the process ended but is not reaped yet (a zombie keeps its process group's id)
    unreaped: bool = False
    #: the EscapeWatch's count of started tasks when this one started
    epoch: int = 0
    #: the inputs the worker placed in the sandbox were removed (the task ended)
    inputs_removed: bool = False

    @property
    def running(self) -> bool:
        return self.pid > 0 and not self.done


def link_or_copy(src: str, dst: str, copy: bool = False) -> None:
    """Put cache object ``src`` at ``dst``: hard links for files, a tree of them for dirs;
    copies with ``copy`` (--disable-symlinks)."""
    if os.path.isdir(src) and not os.path.islink(src):
        os.makedirs(dst, exist_ok=True)
        for entry in os.scandir(src):
            link_or_copy(entry.path, os.path.join(dst, entry.name), copy)
        return
    parent = os.path.dirname(dst)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    if copy:
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


_WORD = r"[A-Za-z0-9_./:,=+@%^-]+"
#: A command made only of plain words (no quoting, expansion or control operator), maybe
#: followed by `` < file``, `` > file`` or `` >> file`` redirections.  The first word has
#: no ``=`` (``A=1 prog`` sets a variable).
_SIMPLE_COMMAND = re.compile(
    rf"(?P<words>[A-Za-z0-9_./:,+@%^-]+(?: +{_WORD})*)(?P<redirs>(?: +(?:<|>>|>) *{_WORD})*) *")
_REDIRECTION = re.compile(rf"(<|>>|>) *({_WORD})")
#: Words that are only shell builtins or keywords (no program of that name to exec).
_SHELL_ONLY = frozenset({".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval",
                         "exec", "exit", "export", "fc", "fg", "getopts", "hash", "jobs",
                         "local", "read", "readonly", "return", "set", "shift", "source",
                         "times", "trap", "type", "ulimit", "umask", "unalias", "unset",
                         "wait", "if", "for", "while", "until", "case", "function", "time"})

_OPEN_FLAGS = {"<": os.O_RDONLY, ">": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               ">>": os.O_WRONLY | os.O_CREAT | os.O_APPEND}


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a command: the program and its arguments, and the files the shell would
    have opened for ``<``, ``>`` and ``>>``, in the command's order."""

    argv: tuple[str, ...]
    redirections: tuple[tuple[str, str], ...] = ()

    @property
    def by_shell(self) -> bool:
        return self.argv[0] == "/bin/sh"


def shell_launch(command: str) -> Launch:
    return Launch(("/bin/sh", "-c", command))


def launch_for(command: str, path: str | None) -> Launch:
    """How to run ``command``: ``/bin/sh -c`` unless it is plain words naming a program, with
    at most one input and one output redirection.

    Running such a command directly gives the same result as the shell would, without
    starting a shell first (a measurable cost when tasks are short).  Where the direct start
    fails (the program went away, is not executable, is a script without ``#!``, a
    redirected file cannot be opened), ``start_process`` lets the shell run it instead, with
    the shell's messages.
    """
    key = (command, path)
    launch = _LAUNCH_CACHE.get(key)
    if launch is None:
        launch = _plan(command, path)
        if len(_LAUNCH_CACHE) > 1000:
            _LAUNCH_CACHE.clear()
        _LAUNCH_CACHE[key] = launch
    return launch


def _plan(command: str, path: str | None) -> Launch:
    match = _SIMPLE_COMMAND.fullmatch(command)
    if match is None:
        return shell_launch(command)
    words = match["words"].split()
    redirections = tuple((op, target) for op, target in _REDIRECTION.findall(match["redirs"]))
    ops = [">" if op == ">>" else op for op, _ in redirections]
    if words[0] in _SHELL_ONLY or len(set(ops)) != len(ops) or (
            redirections and not hasattr(os, "posix_spawn")):
        return shell_launch(command)
    program = words[0] if "/" in words[0] else _which(words[0], path)
    if not program:
        return shell_launch(command)
    return Launch((program, *words[1:]), redirections)


#: launch_for's answers, by (command, PATH): many tasks run the same command.
_LAUNCH_CACHE: dict[tuple[str, str | None], Launch] = {}


_WHICH_CACHE: dict[tuple[str, str | None], str | None] = {}


def _which(name: str, path: str | None) -> str | None:
    key = (name, path)
    if key not in _WHICH_CACHE:
        if len(_WHICH_CACHE) > 1000:
            _WHICH_CACHE.clear()
        _WHICH_CACHE[key] = shutil.which(name, path=path)
    return _WHICH_CACHE[key]


#: Output files made ahead of time (``make_spare_output_files``), while the worker waits.
_SPARE_OUTPUT_FILES: list[int] = []


def make_spare_output_files(n: int = 2) -> None:
    """Create up to ``n`` output files for the next tasks, off their critical path."""
    while len(_SPARE_OUTPUT_FILES) < n:
        _SPARE_OUTPUT_FILES.append(_new_output_file())


def output_file() -> int:
    """A file descriptor for the task's merged stdout and stderr (in memory if possible)."""
    if _SPARE_OUTPUT_FILES:
        return _SPARE_OUTPUT_FILES.pop()
    return _new_output_file()


def _new_output_file() -> int:
    try:
        return os.memfd_create("wq-task-output", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="worker.stdout.")
        os.unlink(path)
        return fd


def read_output(fd: int, limit: int = 1 << 30, close: bool = True) -> bytes:
    """Everything the task printed (up to ``limit`` bytes), then close ``fd`` (unless the
    caller will)."""
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return b""
        chunks = []
        offset = 0
        while offset < limit:
            # Its size first: a read of a fixed large size would allocate (and map) that
            # much memory for every task, even one that printed nothing.
            want = min(max(size - offset, 1 << 16), 1 << 20, limit - offset)
            data = os.pread(fd, want, offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks)
    finally:
        if close:
            os.close(fd)


def start_process(run: TaskRun, env: dict[str, str], now: float) -> None:
    """Spawn the task in its sandbox, in a new session, and open a pidfd to watch it."""
    if run.output_fd < 0:
        run.output_fd = output_file()
    launch = launch_for(run.spec.command, env.get("PATH"))
    try:
        run.pid = _spawn(launch, run.sandbox, env, run.output_fd)
    except OSError:
        if launch.by_shell:
            raise
        _WHICH_CACHE.clear()  # the program may have moved: look again next time
        _LAUNCH_CACHE.clear()
        run.pid = _spawn(shell_launch(run.spec.command), run.sandbox, env, run.output_fd)
    run.start = now
    try:
        run.pidfd = os.pidfd_open(run.pid)
    except (AttributeError, OSError):
        run.pidfd = -1


def finish_warm_run(run: TaskRun, code: int | None, wait_status: int, now: float) -> None:
    """Record the end of a task run by a warm interpreter (``code`` None: it died)."""
    run.done = True
    run.finish = now
    if run.forced_status is not None:
        run.status, run.exit_code = run.forced_status, 9
    elif code is not None:
        run.status, run.exit_code = WORK_QUEUE_RESULT_SUCCESS, code
    else:
        exit_code = os.waitstatus_to_exitcode(wait_status) if wait_status else 1
        if exit_code < 0:
            run.status, run.exit_code = WORK_QUEUE_RESULT_SIGNAL, -exit_code
        else:
            run.status, run.exit_code = WORK_QUEUE_RESULT_SUCCESS, exit_code


#: The worker's own working directory, returned to after each spawn.
_WORKER_CWD: str | None = None

_DEVNULL_ACTION = (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)


def _spawn(launch: Launch, cwd: str, env: dict[str, str], output_fd: int) -> int:
    """posix_spawn (vfork + exec, no Python in the child) with stdin from /dev/null and
    stdout+stderr into ``output_fd``, then the launch's redirections; falls back to
    subprocess where posix_spawn is unavailable (no redirections then).

    posix_spawn has no working-directory option, so the worker (single-threaded) changes
    directory around the call.
    """
    argv = launch.argv
    if hasattr(os, "posix_spawn"):
        global _WORKER_CWD
        if _WORKER_CWD is None:
            _WORKER_CWD = os.getcwd()
        here = _WORKER_CWD
        actions = [_DEVNULL_ACTION, (os.POSIX_SPAWN_DUP2, output_fd, 1),
                   (os.POSIX_SPAWN_DUP2, output_fd, 2)]
        for op, target in launch.redirections:
            actions.append((os.POSIX_SPAWN_OPEN, 0 if op == "<" else 1, target,
                            _OPEN_FLAGS[op], 0o666))
        os.chdir(cwd)
        try:
            return os.posix_spawn(argv[0], argv, env, setsid=True, file_actions=actions)
        finally:
            os.chdir(here)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output_fd,
                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    proc.returncode = 0  # the worker reaps it with waitpid; keep Popen from doing so
    return proc.pid


def kill_process(run: TaskRun) -> None:
    """SIGKILL the task's whole process group."""
    if run.pid <= 0 or run.done:
        return
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(run.pid, signal.SIGKILL)
        except OSError:
            pass


def reap(run: TaskRun, now: float, block: bool = False, tidy: bool = True) -> bool:
    """Collect the exit status if the process ended; True when it did.

    With ``tidy`` False the caller reports the task first and calls ``end_process_group``
    afterwards; the process is then left a zombie until that call (unless its resource
    usage is wanted), so that the id of its process group cannot be reused in between.
    """
    if run.pid <= 0 or run.done:
        return run.done
    if not tidy and not block and run.monitor is None:
        try:
            info = os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            status = 255 << 8
        else:
            if info is None or info.si_pid == 0:
                return False
            if info.si_code == os.CLD_EXITED:
                status = (info.si_status & 0xFF) << 8
            else:
                status = info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)
            run.unreaped = True
    else:
        try:
            pid, status, run.rusage = os.wait4(run.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = run.pid, 255 << 8
        if pid == 0:
            return False
    run.wait_status = status
    code = os.waitstatus_to_exitcode(status)
    run.done = True
    run.finish = now
    if run.forced_status is not None:
        run.status, run.exit_code = run.forced_status, 9
    elif code < 0:
        # Killed by a signal.  CCTools reports status 0 with the signal number as the exit
        # code; we say SIGNAL so the program can tell it from a normal exit.
        run.status, run.exit_code = WORK_QUEUE_RESULT_SIGNAL, -code
    else:
        run.status, run.exit_code = WORK_QUEUE_RESULT_SUCCESS, code
    if tidy:
        end_process_group(run)
    return True


def end_process_group(run: TaskRun) -> None:
    """After the task's process ended: kill anything left in its process group so no orphan
    outlives the task, reap the process if that was left for now, close its pidfd."""
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if run.unreaped:
        run.unreaped = False
        try:
            os.waitpid(run.pid, 0)
        except ChildProcessError:
            pass
    if run.pidfd >= 0:
        os.close(run.pidfd)
        run.pidfd = -1


def disk_full(sandbox: str, allocated_mb: float) -> bool:
    """Whether a task that failed did so for lack of disk: its file system is full, or its
    sandbox reached its disk allocation."""
    try:
        st = os.statvfs(sandbox)
        if st.f_bavail * st.f_frsize < (1 << 20):
            return True
    except OSError:
        return False
    if allocated_mb <= 0:
        return False
    size, _files = tree_usage(sandbox)
    return size >= allocated_mb * (1 << 20)


def remove_tree(path: str) -> None:
    """Delete a file, link or directory tree; missing paths are fine."""
    if not path:
        return
    try:
        os.unlink(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        os.rmdir(path)  # the common case: an empty sandbox
    except FileNotFoundError:
        return
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


#: prctl(2) option: orphaned descendants are reparented to this process, not to init.
_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def child_pids(pid: int) -> list[int] | None:
    """The children of process ``pid`` (its main thread's), or None if unknown."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return None


class EscapeWatch:
    """Which tasks may have left a process behind (one that still has the task's sandbox as
    its working directory, and may write into it).

    The worker becomes a child subreaper: a process that outlives its task, even one that
    left the task's process group and session (``setsid``), becomes a child of the worker
    when its parent exits, so every such process is a child of the worker the worker did
    not start (an *escapee*).  ``scan`` notes each escapee with the number of tasks started
    when it was first seen.  A task started after an escapee was first seen cannot be its
    ancestor; so the sandbox of a task is safe to reuse when every escapee was first seen
    before the task started (``clean_since``).  Escapees that ended are reaped by ``scan``.
    Without a subreaper (not Linux) nothing is known to be safe: ``enabled`` is False.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.enabled = _become_subreaper() and child_pids(self.pid) is not None
        self.starts = 0
        #: live escapees: pid -> ``starts`` when first seen
        self.seen: dict[int, int] = {}

    def task_started(self) -> int:
        """Count a task start; returns its epoch (for ``clean_since``)."""
        self.starts += 1
        return self.starts

    def scan(self, known: set[int]) -> None:
        """Note the worker's children not in ``known`` (the processes the worker started
        and waits for itself); reap those that ended."""
        if not self.enabled:
            return
        children = child_pids(self.pid)
        if children is None:
            self.enabled = False
            return
        alive = set()
        for pid in children:
            if pid in known:
                continue
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done == 0:
                alive.add(pid)
                self.seen.setdefault(pid, self.starts)
        for pid in list(self.seen):
            if pid not in alive:
                del self.seen[pid]

    def clean_since(self, epoch: int) -> bool:
        """Whether no escapee can descend from a task of ``epoch`` (call ``scan`` first)."""
        return self.enabled and epoch > 0 and all(s < epoch for s in self.seen.values())
