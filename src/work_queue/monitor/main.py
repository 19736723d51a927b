"""The ``resource_monitor`` command, with CCTools' options, outputs and exit codes.

    resource_monitor [options] -- command [args...]
    resource_monitor [options] --sh 'command line'

Runs the command, samples its process tree (:class:`.measure.TreeMonitor`), kills the tree
when a ``-L``/``-l`` limit is broken (unless ``--measure-only``) and writes
``<template>.summary`` (``-O``, default ``resource-pid-<pid>``), plus ``<template>.series``
with ``--with-time-series``, and ``--snapshot-events FILE`` snapshots (:mod:`.snapshots`) in
the summary and in ``<template>.snapshot.NN``.  Exit codes (``enum rmonitor_errors``): 0 the
command succeeded, 1 it failed (its status is the summary's ``exit_status``), 2 a limit was
broken, 3 the ``wall_time``/``end`` limit expired... (``wall_time`` only, as CCTools), 4 the
monitor failed.

It is also what the manager wraps commands in for CCTools workers::

    ./cctools-monitor --no-pprint --with-output-files=cctools-monitor -L 'cores: 1' \\
        -V 'task_id: 7' --measure-only --sh 'cmd'

Accepted for compatibility and ignored: ``-f``, ``--follow-chdir``, ``--with-inotify``,
``--accurate-short-processes``, ``--catalog*``.  Extension:
``--peak-cores-window SECONDS`` (CCTools' fixed 180 s window for peak ``cores``) and
fractional ``-i`` intervals.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import sys
import time

from . import summary as summary_mod
from .measure import (
    RM_MONITOR_ERROR,
    RM_TASK_ERROR,
    TreeMonitor,
    exit_code,
    parse_limits,
    parse_limits_file,
)
from .summary import format_value

TYPE_CHECKING = False  # typing costs milliseconds at each start of the command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

PROGRAM = "resource_monitor"
VERSION = "7.17.1"
#: ``monitor_version`` in summaries: CCTools prints ``major.minor.micro.<commit:8>``.
MONITOR_VERSION = f"{VERSION}.wqpy"
DEFAULT_INTERVAL = 5.0
#: The first samples come quickly (short tasks), then every ``interval`` seconds.
FIRST_DELAY = 0.05
FORWARDED_SIGNALS = ("SIGINT", "SIGQUIT", "SIGTERM", "SIGABRT", "SIGALRM", "SIGHUP", "SIGUSR1",
                     "SIGUSR2")

SHORT = "c:d:fhi:L:l:o:O:vV:"
LONG = [
    "debug=", "debug-file=", "help", "version", "interval=", "limits=", "limits-file=", "sh=",
    "pid=", "measure-only", "verbatim-to-summary=", "follow-chdir", "measure-dir=", "no-pprint",
    "accurate-short-processes", "with-output-files=", "with-time-series", "with-inotify",
    "without-disk-footprint", "snapshot-file=", "snapshot-events=", "catalog-task-name=",
    "catalog=", "catalog-project=", "catalog-interval=", "update-summary",
    "child-in-foreground", "peak-cores-window=",
]

HELP = """
Use: {prog} [options] -- command-line-and-options

-d,--debug=<subsystem>         Enable debugging for this subsystem.
-o,--debug-file=<file>         Send debugging to this file. (can also be :stderr, or :stdout)
-h,--help                      Show this message.
-v,--version                   Show version string.

-i,--interval=<n>              Maximum interval between observations, in seconds. (default=5)
--pid=<pid>                    Track <pid> instead of executing a command line.
--accurate-short-processes     (accepted, no effect)
-c,--sh=<str>                  Read command line from <str>, and execute as '/bin/sh -c <str>'

-l,--limits-file=<maxfile>     Use maxfile with list of var: value pairs for resource limits.
-L,--limits=<string>           Use string of the form "var: value, var: value" to specify.
                               resource limits. Can be specified multiple times.
--measure-only                 Do not enforce resource limits, only measure resources.

-O,--with-output-files=<file>  Specify filename template for log files (default=resource-pid-<pid>)
--with-time-series             Write resource time series to <template>.series
--with-inotify                 (accepted, no effect)
-V,--verbatim-to-summary=<str> Include this string verbatim in a line in the summary.
                               (Could be specified multiple times.)

--measure-dir=<dir>            Follow the size of <dir>. By default the directory at the start of
                               execution is followed. Can be specified multiple times.
--without-disk-footprint       Do not measure working directory footprint.
--update-summary               Update resource summary file every measurement interval.
--no-pprint                    Do not pretty-print summaries.
--peak-cores-window=<secs>     Window for the peak cores measurement. (default=180)

Resources: {resources}.
"""


class UsageError(Exception):
    """Bad command line: exit 1 (``show_help`` in CCTools)."""


class FatalError(Exception):
    """The monitor cannot work: exit 4 (``RM_MONITOR_ERROR``)."""


class _Debug:
    """``-d <flags> -o <file>``: CCTools-style debug lines, or nothing."""

    def __init__(self) -> None:
        self.stream: TextIO | None = None
        self.path: str | None = None

    def enable(self) -> None:
        if self.stream is None:
            if self.path in (None, ":stderr"):
                self.stream = sys.stderr
            elif self.path == ":stdout":
                self.stream = sys.stdout
            else:
                self.stream = open(self.path, "a", buffering=1)  # noqa: SIM115

    def __call__(self, message: str) -> None:
        if self.stream is not None:
            now = time.time()
            stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now))
            self.stream.write(f"{stamp}.{int(now % 1 * 100):02d} {PROGRAM}[{os.getpid()}] "
                              f"rmonitor: {message}\n")


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.interval = DEFAULT_INTERVAL
        self.limits: dict[str, float] = {}
        self.sh: str | None = None
        self.pid = 0
        self.measure_only = False
        self.verbatim: list[tuple[str, str]] = []
        self.measure_dirs: list[str] = []
        self.disk = True
        self.pprint = True
        self.template: str | None = None
        self.series = False
        self.update_summary = False
        self.cores_window = 180.0
        self.command: list[str] = []
        self.debug = _Debug()
        self.debug_on = False
        self.snapshot_events: str | None = None
        #: the snapshots.SnapshotRecorder of --snapshot-events, once the task starts
        self.snapshots: Any = None


def getopt(args: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]],
                                                                  list[str]]:
    """``getopt.getopt`` (options up to the first operand or ``--``; unique prefixes of long
    options), without its import of gettext: this command starts for every task."""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return opts, args[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return opts, args[i:]
        if arg.startswith("--"):
            i = _long_option(args, i, long, opts)
        else:
            i = _short_options(args, i, short, opts)
        i += 1
    return opts, []


def _long_option(args: list[str], i: int, long: list[str],
                 opts: list[tuple[str, str]]) -> int:
    """Append the ``--name[=value]`` at ``args[i]`` to ``opts``; returns the index of the
    last argument it used (its value may be the next one)."""
    name, eq, value = args[i][2:].partition("=")
    matches = [o for o in long if o.rstrip("=") == name] or \
        [o for o in long if o.startswith(name)]
    if len(matches) != 1:
        raise UsageError(f"option --{name} not recognized" if not matches
                         else f"option --{name} not a unique prefix")
    full = matches[0]
    if full.endswith("="):
        if not eq:
            i += 1
            if i >= len(args):
                raise UsageError(f"option --{full[:-1]} requires argument")
            value = args[i]
        opts.append(("--" + full[:-1], value))
    elif eq:
        raise UsageError(f"option --{full} must not have an argument")
    else:
        opts.append(("--" + full, ""))
    return i


def _short_options(args: list[str], i: int, short: str,
                   opts: list[tuple[str, str]]) -> int:
    """Append the letters grouped in ``args[i]`` (``-ab``, ``-ovalue``, ``-o value``) to
    ``opts``; returns the index of the last argument they used."""
    arg = args[i]
    j = 1
    while j < len(arg):
        ch = arg[j]
        k = short.find(ch)
        if k < 0 or ch == ":":
            raise UsageError(f"option -{ch} not recognized")
        if short[k + 1:k + 2] == ":":
            value = arg[j + 1:]
            if not value:
                i += 1
                if i >= len(args):
                    raise UsageError(f"option -{ch} requires argument")
                value = args[i]
            opts.append(("-" + ch, value))
            break
        opts.append(("-" + ch, ""))
        j += 1
    return i


def _verbatim(text: str) -> tuple[str, str]:
    field, sep, value = text.partition(":")
    if not sep:
        raise FatalError(f"missing ':' in '{text}'")
    return field.strip(), value.strip()


def _set_interval(o: Options, arg: str) -> None:
    try:
        o.interval = float(arg)
    except ValueError:
        raise FatalError(f"bad interval '{arg}' (seconds)") from None
    if not o.interval > 0:
        raise FatalError("interval cannot be set to less than one second.")


def _add_limits_file(o: Options, arg: str) -> None:
    try:
        o.limits.update(parse_limits_file(arg))
    except OSError as e:
        raise FatalError(f"cannot read limits file '{arg}': {e.strerror}") from None
    except ValueError as e:
        raise FatalError(str(e)) from None


def _add_limits(o: Options, arg: str) -> None:
    try:
        o.limits.update(parse_limits(arg))
    except ValueError as e:
        raise FatalError(str(e)) from None


def _add_measure_dir(o: Options, arg: str) -> None:
    path = os.path.abspath(arg)
    if not os.path.isdir(path):
        raise FatalError(f"Directory '{arg}' does not exist.")
    o.measure_dirs.append(path)


def _set_pid(o: Options, arg: str) -> None:
    try:
        o.pid = int(arg)
    except ValueError:
        o.pid = 0
    if o.pid < 1:
        raise FatalError("Option --pid should be positive integer.")


def _set_cores_window(o: Options, arg: str) -> None:
    try:
        o.cores_window = float(arg)
    except ValueError:
        o.cores_window = 0
    if not o.cores_window > 0:
        raise FatalError(f"bad --peak-cores-window '{arg}' (seconds > 0)")


def _replaced_snapshot_file(o: Options, arg: str) -> None:
    raise FatalError("This option has been replaced with --snapshot-events.")


def _set(field: str, value: Any) -> Callable[[Options, str], None]:
    """A setter for a flag that only turns a setting on or off."""
    return lambda o, arg: setattr(o, field, value)


def _set_to_arg(field: str) -> Callable[[Options, str], None]:
    """A setter for an option whose argument is the setting, as given."""
    return lambda o, arg: setattr(o, field, arg)


_OPTION_SETTERS: dict[str, Callable[[Options, str], None]] = {
    "-d": _set("debug_on", True), "--debug": _set("debug_on", True),
    "-o": lambda o, arg: setattr(o.debug, "path", arg),
    "--debug-file": lambda o, arg: setattr(o.debug, "path", arg),
    "-c": _set_to_arg("sh"), "--sh": _set_to_arg("sh"),
    "-i": _set_interval, "--interval": _set_interval,
    "-l": _add_limits_file, "--limits-file": _add_limits_file,
    "-L": _add_limits, "--limits": _add_limits,
    "-V": lambda o, arg: o.verbatim.append(_verbatim(arg)),
    "--verbatim-to-summary": lambda o, arg: o.verbatim.append(_verbatim(arg)),
    "-O": _set_to_arg("template"), "--with-output-files": _set_to_arg("template"),
    "--with-time-series": _set("series", True),
    "--without-disk-footprint": _set("disk", False),
    "--measure-dir": _add_measure_dir,
    "--no-pprint": _set("pprint", False),
    "--measure-only": _set("measure_only", True),
    "--update-summary": _set("update_summary", True),
    "--pid": _set_pid,
    "--peak-cores-window": _set_cores_window,
    "--snapshot-file": _replaced_snapshot_file,
    "--snapshot-events": _set_to_arg("snapshot_events"),
    # -f, --follow-chdir, --with-inotify, --accurate-short-processes,
    # --catalog*: accepted, no effect (so not in this table)
}


def parse_args(argv: list[str]) -> Options | None:
    """Options from ``argv`` (without the program name); None after -h/-v.  Options apply in
    the order given, so a bad value before ``-h`` is still reported, as in CCTools."""
    o = Options()
    opts, rest = getopt(argv, SHORT, LONG)
    for opt, arg in opts:
        if opt in ("-h", "--help"):
            print(HELP.format(prog=PROGRAM, resources=", ".join(summary_mod.RESOURCE_NAMES)))
            return None
        if opt in ("-v", "--version"):
            print(f"{PROGRAM} version {VERSION} FINAL (work-queue-py, protocol 11)")
            return None
        setter = _OPTION_SETTERS.get(opt)
        if setter is not None:
            setter(o, arg)
    o.command = rest
    if o.pid:
        if rest or o.sh is not None:
            raise FatalError("A command line cannot be used with --pid.")
    elif (rest and o.sh is not None) or (not rest and o.sh is None):
        raise UsageError("give a command after '--', or --sh 'command line'")
    if o.debug_on:
        o.debug.enable()
    return o


# ----------------------------------------------------------------------------------------------
# executable_type (``rmonitor_determine_exec_type``)


def _which(name: str) -> str | None:
    if "/" in name:
        return name if os.path.isfile(name) else None
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def executable_type(executable: str) -> str:
    """``dynamic``, ``static``, ``unknown`` or the ``#!`` line, as CCTools reports it."""
    path = _which(executable)
    if path is None:
        raise FatalError(f"Error reading {executable}.")
    try:
        with open(path, "rb") as f:
            head = f.read(4095)
    except OSError:
        raise FatalError(f"Error reading {executable}.") from None
    if not head:
        return "unknown"
    if head.startswith(b"#!"):
        return head.split(b"\n", 1)[0].decode("utf-8", "replace")
    return _elf_type(path, head)


def _elf_type(path: str, head: bytes) -> str:
    if head[:4] != b"\x7fELF" or len(head) < 64:
        return "unknown"
    bits64, little = head[4] == 2, head[5] == 1
    end = "<" if little else ">"
    try:
        if bits64:
            phoff, = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        else:
            phoff, = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        with open(path, "rb") as f:
            f.seek(phoff)
            table = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, = struct.unpack_from(end + "I", table, i * phentsize)
            if p_type == 3:  # PT_INTERP
                return "dynamic"
    except (struct.error, OSError):
        return "unknown"
    return "static"


# ----------------------------------------------------------------------------------------------
# Running


def _open_output(path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as e:
            raise FatalError(f"could not create directory {directory} : {e.strerror}") from None


SERIES_HEADER = (
    "# Units:\n"
    "# wall_clock and cpu_time in seconds\n"
    "# virtual, resident and swap memory in megabytes.\n"
    "# disk in megabytes.\n"
    "# bandwidth in Mbps.\n"
    "# cpu_time, bytes_read, bytes_written, bytes_sent, and bytes_received show cummulative "
    "values.\n"
    "# wall_clock, max_concurrent_processes, virtual, resident, swap, files, and disk show "
    "values at the sample point.\n"
    "#wall_clock cpu_time cores max_concurrent_processes virtual_memory memory swap_memory "
    "bytes_read bytes_written bytes_received bytes_sent bandwidth machine_load")
SERIES_COLUMNS = ("max_concurrent_processes", "virtual_memory", "memory", "swap_memory",
                  "bytes_read", "bytes_written", "bytes_received", "bytes_sent", "bandwidth",
                  "machine_load")


def series_row(tree: TreeMonitor, disk: bool) -> str:
    """One ``.series`` line (``rmonitor_log_row``) from the last sample."""
    cur, peaks = tree.current, tree.peaks
    wall = cur.get("wall_time", 0.0)
    cores = cur.get("cores", 0.0) if wall > tree.cores_window else cur.get("cores_avg", 0.0)
    cols = [format_value("start", tree.start + wall), format_value("cpu_time",
                                                                   cur.get("cpu_time", 0.0)),
            format_value("cores", cores)]
    cols += [format_value(n, cur.get(n, peaks.get(n, 0.0))) for n in SERIES_COLUMNS]
    if disk:
        cols += [format_value(n, cur.get(n, peaks.get(n, 0.0))) for n in ("total_files", "disk")]
    return " ".join(cols) + "\n"


def _spawn(argv: list[str]) -> int:
    """Start the command in our process group (so whoever kills our group kills it too)."""
    return os.posix_spawnp(argv[0], argv, os.environ)


class _Waiter:
    """Wait for a process to end, with a timeout: a pidfd when the kernel has them."""

    def __init__(self, pid: int, child: bool) -> None:
        self.pid, self.child = pid, child
        self.fd = -1
        try:
            self.fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = -1

    def wait(self, timeout: float) -> bool:
        """True if the process may have ended (then reap or look)."""
        timeout = max(0.0, timeout)
        if self.fd >= 0:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            return bool(ready)
        # no pidfd: a child is polled with wait4 every 10 ms, another process at each sample
        time.sleep(min(timeout, 0.01) if self.child else timeout)
        return self.child

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def monitor(o: Options) -> int:
    """Run and measure; returns the exit code."""
    debug = o.debug
    template = o.template or f"resource-pid-{os.getpid()}"
    summary_path = template + ".summary"
    _open_output(summary_path)
    verbatim = list(o.verbatim)
    verbatim.append(("host", os.uname().nodename))
    verbatim.append(("monitor_version", MONITOR_VERSION))
    argv, command_line = _command(o)
    if argv:
        if os.environ.get("CCTOOLS_RESOURCE_MONITOR_INFO"):
            # an upstream monitor measures us already (CCTools does the same)
            os.execvp("/bin/sh", ["sh", "-c", command_line])
        verbatim.append(("executable_type", executable_type(argv[0])))
    debug(f"command line: {command_line}")
    for name, value in o.limits.items():
        debug(f"max resource {name:<18}   : {format_value(name, value)} "
              f"{summary_mod.UNITS[name]}")
    series = _open_series(o, template)
    dirs = o.measure_dirs or ([os.getcwd()] if o.disk else [])
    child = [0]  # set once spawned; signals before that are forwarded right after
    pending: list[int] = []
    forwarded = _handle_signals(bool(argv), debug, child, pending)
    start = time.time()
    if o.snapshot_events:
        o.snapshots = _snapshot_recorder(o.snapshot_events, template, start)
    spawn_error = 0
    pid = o.pid
    if argv:
        try:
            pid = child[0] = _spawn(argv)
        except OSError as e:
            spawn_error = e.errno or 1
            debug(f"error executing {argv[0]}: {e.strerror}")
        for signum in pending:
            if pid:
                os.kill(pid, signum)
    try:
        if spawn_error:
            summary = _spawn_failed(start, spawn_error)
        else:
            tree = TreeMonitor(pid, None, o.limits, start=start, measure_only=o.measure_only,
                               disk_interval=min(1.0, o.interval), cores_window=o.cores_window,
                               measure_dirs=dirs, measure_disk=bool(dirs))
            summary = _measure(o, tree, pid, series, summary_path, verbatim, command_line)
    finally:
        for num, old in forwarded.items():
            signal.signal(num, old)
        if series is not None:
            series.close()
    summary = {"command": command_line, **summary}
    try:
        summary_mod.write_summary(summary_path, summary, pprint=o.pprint, verbatim=verbatim)
    except OSError as e:
        raise FatalError(f"could not open log file {summary_path} : {e.strerror}") from None
    return exit_code(summary)


def _command(o: Options) -> tuple[list[str], str]:
    """What to run (empty with ``--pid``, which follows a process already running) and the
    command line the summary names."""
    if o.pid:
        try:
            os.kill(o.pid, 0)
        except ProcessLookupError:
            raise FatalError(f"Process with pid {o.pid} could not be found.") from None
        except PermissionError:
            pass
        return [], "# following pid with --pid"
    if o.sh is not None:
        return ["/bin/sh", "-c", o.sh], o.sh
    argv = list(o.command)
    return argv, " ".join(argv)


def _open_series(o: Options, template: str) -> TextIO | None:
    """The time-series file with its header, when ``--with-time-series`` asks for one."""
    if not o.series:
        return None
    _open_output(template + ".series")
    try:
        series = open(template + ".series", "w")  # noqa: SIM115
    except OSError as e:
        raise FatalError(f"could not open log file {template}.series : {e.strerror}") \
            from None
    series.write(SERIES_HEADER + (" %25s %25s" % ("total_files", "disk") if o.disk else "")
                 + "\n")
    return series


def _handle_signals(spawning: bool, debug: _Debug, child: list[int],
                    pending: list[int]) -> dict[int, Any]:
    """Install the signal handlers; returns the previous ones, to put back at the end.  A
    command we start gets the termination signals we receive (kept in ``pending`` until it
    exists, ``child[0]``); with ``--pid`` the process is not ours, so a signal only ends the
    measurement."""
    forwarded: dict[int, Any] = {}
    if spawning:
        def forward(signum: int, frame: Any) -> None:
            debug(f"forwarding signal {signal.Signals(signum).name}({signum})")
            if not child[0]:
                pending.append(signum)
                return
            try:
                os.kill(child[0], signum)
            except OSError:
                pass

        for name in FORWARDED_SIGNALS:
            num = getattr(signal, name)
            forwarded[num] = signal.signal(num, forward)
    else:
        def stop(signum: int, frame: Any) -> None:
            raise _Stop  # --pid: not ours to stop; just end the measurement

        for num in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
            forwarded[num] = signal.signal(num, stop)
    return forwarded


def _measure(o: Options, tree: TreeMonitor, pid: int, series: TextIO | None,
             summary_path: str, verbatim: list[tuple[str, str]],
             command_line: str) -> dict[str, Any]:
    """Follow the process tree to its end; the final summary, with how the root ended."""
    rusage, wait_status = _loop(o, tree, pid, series, summary_path, verbatim, command_line)
    code, sig = 0, 0
    if wait_status is not None:
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
        elif os.WIFEXITED(wait_status):
            code = os.WEXITSTATUS(wait_status)
    if o.snapshots is not None:
        o.snapshots.check(time.time())
    summary = tree.finish(time.time(), rusage=rusage, exit_status=code, signal=sig)
    if o.snapshots is not None and o.snapshots.snapshots:
        summary["snapshots"] = o.snapshots.snapshots
    if rusage is None:  # --pid: the tree was never waited for
        summary["max_concurrent_processes"] = max(1.0, summary["max_concurrent_processes"])
    return summary


def _spawn_failed(start: float, errno: int) -> dict[str, Any]:
    """The summary of a command that could not start: as CCTools' child exiting with errno."""
    now = time.time()
    out: dict[str, Any] = {"exit_type": "normal", "exit_status": errno, "limits_exceeded": None}
    for name in summary_mod.RESOURCE_NAMES:
        out[name] = 0.0
    out.update(start=start, end=now, wall_time=now - start, machine_cpus=float(os.cpu_count()
                                                                              or 1))
    out["peak_times"] = {"start": 0.0, "end": now - start}
    return out


def _loop(o: Options, tree: TreeMonitor, pid: int, series: TextIO | None, summary_path: str,
          verbatim: list[tuple[str, str]], command_line: str) -> tuple[Any, int | None]:
    """Sample until the tree is gone; kill it when a limit breaks.  Returns the root's
    (rusage, wait status), or (None, None) for a ``--pid`` process."""
    debug = o.debug
    child = not o.pid
    waiter = _Waiter(pid, child)
    next_time = tree.start
    next_summary = tree.start + o.interval
    rusage: Any = None
    status: int | None = None
    root_done = False
    try:
        while True:

            now = time.time()
            if now >= next_time:
                broken = tree.sample(now)
                next_summary = _report_sample(o, tree, now, next_summary, series,
                                              summary_path, verbatim, command_line)
                if broken and not o.measure_only:
                    unreaped = pid if child and not root_done else None
                    return _kill_for_limit(tree, broken, debug, unreaped, (rusage, status))
                next_time = tree.next_sample(now, o.interval)
                if root_done or (not child and not tree.root_running):
                    if not child and not root_done:
                        root_done = True
                        tree.reaped()
                    if not tree.alive():
                        return rusage, status
            if root_done:
                time.sleep(max(0.0, next_time - time.time()))
                continue
            fired = waiter.wait(next_time - time.time())
            if fired and child:
                got, st, ru = _wait4(pid, os.WNOHANG)
                if got:
                    status, rusage, root_done = st, ru, True
                    tree.reaped()
                    debug(f"process {pid} finished")
                    if not tree.alive():
                        return rusage, status
                    # descendants left behind: follow them until they end, as CCTools does
                    next_time = time.time() + FIRST_DELAY
            elif fired:
                waiter.close()  # --pid: it ended (or is a zombie); look now
                next_time = time.time()
    except _Stop:
        debug("measurement stopped by a signal")
        return rusage, status
    finally:
        waiter.close()


def _kill_for_limit(tree: TreeMonitor, broken: str, debug: _Debug, root: int | None,
                    ended: tuple[Any, int | None]) -> tuple[Any, int | None]:
    """Kill the whole tree because ``broken`` went over its limit.  When the root is our child
    still to be waited for (``root``), reap it and return its (rusage, wait status); else the
    root had ended already, and how it ended (``ended``) is the answer."""
    for line in tree.exceeded_messages() or [f"Resource limit for {broken} was broken"]:
        debug(line)
    tree.kill(signal.SIGKILL)
    if root is None:
        return ended
    _, status, rusage = _wait4(root, 0)
    return rusage, status


def _snapshot_recorder(events: str, template: str, start: float) -> Any:
    from .snapshots import SnapshotRecorder, SnapshotWatcher, load_events

    try:
        return SnapshotRecorder(SnapshotWatcher(load_events(events), os.getcwd()), start,
                                template)
    except ValueError as e:
        raise FatalError(str(e)) from None


def _report_sample(o: Options, tree: TreeMonitor, now: float, next_summary: float,
                   series: TextIO | None, summary_path: str, verbatim: list[tuple[str, str]],
                   command_line: str) -> float:
    """Write what a sample shows: a time-series row, and with ``--update-summary`` a
    "running" summary every interval (so a reader sees progress before the end).  Returns
    when the next running summary is due."""
    if o.snapshots is not None:
        o.snapshots.after_sample(tree.current, now)
    if series is not None:
        series.write(series_row(tree, o.disk))
        series.flush()
    if o.update_summary and now >= next_summary:
        next_summary = now + o.interval
        running = {"command": command_line, **tree.peaks, "exit_type": "running",
                   "peak_times": tree.peak_times,
                   "limits_exceeded": tree.limits_exceeded or None}
        summary_mod.write_summary(summary_path, running, pprint=o.pprint, verbatim=verbatim)
    return next_summary


class _Stop(Exception):
    """A termination signal in --pid mode."""


def _wait4(pid: int, options: int) -> tuple[int, int, Any]:
    while True:
        try:
            return os.wait4(pid, options)
        except InterruptedError:
            continue
        except ChildProcessError:
            return pid, 0, None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``resource_monitor``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        o = parse_args(args)
        if o is None:
            return 0
        return monitor(o)
    except UsageError as e:
        print(f"{PROGRAM}: {e} (use -h for help)", file=sys.stderr)
        return RM_TASK_ERROR
    except FatalError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return RM_MONITOR_ERROR
    except _Stop:  # --pid, stopped before the measurement began
        return RM_MONITOR_ERROR


if __name__ == "__main__":
    sys.exit(main())
