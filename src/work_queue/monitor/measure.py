"""Measuring a task's process tree, driven by the caller's event loop (no threads, no extra
processes), as CCTools' ``resource_monitor`` measures it.

API (``now`` is ``time.time()`` seconds; units are CCTools': s, MB, cores)::

    tree = TreeMonitor(root_pid, sandbox=None, limits=None, start=None, *,
                       measure_only=False, disk_interval=1.0, cores_window=180.0,
                       measure_disk=True, measure_dirs=None)
    broken = tree.sample(now)        # -> name of a broken limit ("memory", ...) or None
    when = tree.next_sample(now, interval)   # 50 ms, 100 ms, 200 ms... up to interval
    tree.kill()                      # SIGKILL every process of the tree
    tree.reaped()                    # (optional) the root was waited for; tree.alive() then
                                     # says whether descendants are left
    summary = tree.finish(now, rusage=None, exit_status=0, signal=0)   # -> dict
    code = exit_code(summary)        # resource_monitor's exit code (RM_SUCCESS..RM_TIME_EXPIRE)
    tree.peaks, tree.peak_times, tree.limits_exceeded, tree.current   # state so far

``limits`` is ``{resource: value}`` (names of :data:`RESOURCE_NAMES`, negative = unset;
``ValueError`` for unknown names).  ``measure_only`` only changes the final ``exit_status``
(CCTools reports 143 when it enforced a limit); killing is the caller's choice.

``sample`` walks the tree from ``root_pid`` through ``/proc/<pid>/task/<tid>/children`` and
reads ``/proc/<pid>/{stat,status,io}`` of each process (tens of us a process); processes seen
once are followed even when orphaned.  Per sample: ``cpu_time`` = sum of utime+stime+cutime+
cstime (so descendants that ended and were waited for stay counted), ``memory`` = sum of
VmHWM (peak RSS; CCTools' /proc/status measure), ``virtual_memory`` = sum of VmPeak,
``swap_memory`` = sum of VmSwap, ``bytes_read``/``bytes_written`` = rchar / max(wchar,
write_bytes) of every process ever seen, ``max_concurrent_processes``, ``total_processes``,
``context_switches``.  The sandbox (``sandbox`` or ``measure_dirs``) is walked for ``disk``
(sizes of regular files, MB rounded up) and ``total_files`` (entries + 1) at most every
``disk_interval`` seconds (the first time ``disk_interval`` after the start, so the first
samples stay cheap) and never more than 10% of the time.  Peaks and their times are kept; the
first limit broken is returned (``rmsummary_check_limits``: broken when ``measured > limit``,
0.25 core forgiven; ``wall_time`` is ``now - start``).  ``cores`` is CCTools' peak over a
``cores_window`` window, divided by the whole window until that much time has passed: short
tasks are only killed for extreme core use.

``finish`` (cheap: one sandbox walk) merges the ``os.wait4`` rusage of the root (cpu time,
peak RSS above our own, blocks read/written, of the root and every descendant it waited for:
tasks that ended before any sample are measured), sets ``cores`` to at least cpu/wall as
CCTools does at the end, checks the limits once more (all but ``cores``) and returns the
summary dict :mod:`.summary` prints: ``exit_type`` (``normal``/``signal``/``limits``),
``exit_status`` (128+signal for a signal; 143 when a limit was broken unless measure_only),
``signal``, ``limits_exceeded`` (``{name: limit}`` or None), every resource, ``peak_times``.
Add ``command``, ``task_id``, ``category``... and write it with ``summary.dumps``.

Also: :func:`parse_limit` (``"cores: 4"``), :func:`parse_limits` (``-L`` strings),
:func:`parse_limits_file` (``-l``), :func:`tree_usage`, :data:`RESOURCE_NAMES` and
:data:`UNITS` (CCTools' order).  Linux only (``/proc``); the standard library only.
"""
from __future__ import annotations

import os
import re
import resource
import signal as _signal
import time

from .summary import RESOURCE_FIELDS, RESOURCE_NAMES, UNITS, format_value

TYPE_CHECKING = False  # typing costs milliseconds at each start of the command
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "RESOURCE_FIELDS", "RESOURCE_NAMES", "UNITS", "RM_SUCCESS", "RM_TASK_ERROR", "RM_OVERFLOW",
    "RM_TIME_EXPIRE", "RM_MONITOR_ERROR", "TreeMonitor", "parse_limit", "parse_limits",
    "parse_limits_file", "validate_limits", "exit_code", "tree_usage",
]

#: ``resource_monitor`` exit codes (``enum rmonitor_errors``).
RM_SUCCESS, RM_TASK_ERROR, RM_OVERFLOW, RM_TIME_EXPIRE, RM_MONITOR_ERROR = range(5)

MB = 1 << 20
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CPUS = float(os.cpu_count() or 1)
#: The smallest gap between samples ``next_sample`` proposes.
FIRST_GAP = 0.05
#: A core is forgiven when checking the ``cores`` limit (bursts happen).
CORES_FORGIVEN = 0.25
#: Resources ``finish`` checks again when the task is over (``cores`` is a windowed peak).
_FINAL_CHECK = tuple(n for n in RESOURCE_NAMES if n not in ("cores", "cores_avg"))


# ----------------------------------------------------------------------------------------------
# Limits


def parse_limit(text: str) -> tuple[str, float]:
    """``"cores: 4"`` -> ``("cores", 4.0)`` (CCTools ``parse_limit_string``)."""
    field, sep, value = str(text).partition(":")
    if not sep:
        raise ValueError(f"missing ':' in limit {text!r} (use e.g. 'memory: 4096')")
    field, value = field.strip(), value.strip()
    if field not in UNITS:
        raise ValueError(f"unknown resource {field!r} in limit {text!r} "
                         f"(known: {', '.join(RESOURCE_NAMES)})")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"invalid value {value!r} for limit {field!r}") from None
    if number != number:  # NaN
        raise ValueError(f"invalid value {value!r} for limit {field!r}")
    return field, number


def parse_limits(text: str) -> dict[str, float]:
    """One ``-L`` string: ``"cores: 4"`` or ``"cores: 4, memory: 100"``."""
    out: dict[str, float] = {}
    for part in str(text).split(","):
        if part.strip():
            name, value = parse_limit(part)
            out[name] = value
    if not out:
        raise ValueError(f"empty limit {text!r}")
    return out


def parse_limits_file(path: str) -> dict[str, float]:
    """A ``-l`` limits file: a CCTools summary (``{"memory": [100, "MB"], ...}``, bare numbers
    accepted too) or ``name: value`` lines (``#`` comments)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        from .summary import loads

        try:
            data = loads(text)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return {k: float(v) for k, v in data.items()
                if k in UNITS and isinstance(v, int | float) and v >= 0}
    out: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.update(parse_limits(line))
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
    return out


def validate_limits(limits: dict[str, Any] | None) -> dict[str, float]:
    """Limits as ``{resource: value}``; unset (negative) values dropped; unknown names and
    non-numbers are a ``ValueError``."""
    out: dict[str, float] = {}
    for name, value in (limits or {}).items():
        if name not in UNITS:
            raise ValueError(f"unknown resource {name!r} in limits "
                             f"(known: {', '.join(RESOURCE_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ValueError(f"limit {name!r} should be a number, not {value!r}")
        if value >= 0:
            out[name] = float(value)
    return out


def exit_code(summary: dict[str, Any]) -> int:
    """``resource_monitor``'s exit code for a final summary (``rmonitor_final_summary``)."""
    exceeded = summary.get("limits_exceeded")
    if exceeded:
        return RM_TIME_EXPIRE if exceeded.get("wall_time", -1) > -1 else RM_OVERFLOW
    return RM_TASK_ERROR if summary.get("exit_status") else RM_SUCCESS


# ----------------------------------------------------------------------------------------------
# /proc


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 16384)
        if len(data) == 16384:  # long children lists
            chunks = [data]
            while True:
                more = os.read(fd, 65536)
                if not more:
                    break
                chunks.append(more)
            data = b"".join(chunks)
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


_STATUS = re.compile(rb"VmPeak:\s*(\d+).*?VmHWM:\s*(\d+).*?VmSwap:\s*(\d+)", re.S).search
_SWITCHES = re.compile(rb"\nvoluntary_ctxt_switches:\s*(\d+)\s*"
                       rb"nonvoluntary_ctxt_switches:\s*(\d+)").search


def _field(text: bytes, key: bytes) -> int:
    """The number after ``key`` in a ``/proc`` ``key: value`` file (0 if absent)."""
    i = text.find(key)
    if i < 0:
        return 0
    i += len(key)
    j = text.find(b"\n", i)
    parts = text[i:j if j >= 0 else None].split()
    try:
        return int(parts[0])
    except (IndexError, ValueError):
        return 0


#: Kernels without CONFIG_PROC_CHILDREN (or some sandboxes) have no ``children`` files.
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _children_by_scan(parent: int) -> list[int]:
    """Children of ``parent`` found by reading every ``/proc/<pid>/stat`` (slow fallback)."""
    out: list[int] = []
    want = str(parent).encode()
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            if stat:
                fields = stat[stat.rfind(b")") + 2:].split()
                if len(fields) > 1 and fields[1] == want:
                    out.append(int(name))
    return out


class _Proc:
    """What was last read of one process of the tree."""

    __slots__ = ("pid", "starttime", "cpu", "hwm", "vmpeak", "swap", "rchar", "wbytes", "ctx",
                 "threads", "alive", "zombie")

    def __init__(self, pid: int, starttime: bytes) -> None:
        self.pid = pid
        self.starttime = starttime
        self.cpu = self.hwm = self.vmpeak = self.swap = 0
        self.rchar = self.wbytes = self.ctx = 0
        self.threads = 1
        self.alive = True
        self.zombie = False


def tree_usage(path: str) -> tuple[int, int]:
    """``(bytes, files)`` of a directory tree as CCTools counts them
    (``path_disk_size_info_get``): sizes of regular files, every entry plus the root counted,
    links not followed.  ``(-1, -1)`` if ``path`` cannot be read."""
    try:
        first = os.scandir(path)
    except OSError:
        return -1, -1
    total, count = 0, 1
    pending: list[str] = []
    it: Any = first
    while True:
        with it:
            for entry in it:
                count += 1
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
        while True:
            if not pending:
                return total, count
            try:
                it = os.scandir(pending.pop())
                break
            except OSError:
                continue


# ----------------------------------------------------------------------------------------------
# The tree monitor


class TreeMonitor:
    """The measured resources of the process tree rooted at ``root_pid`` (see the module
    docstring for the API)."""

    def __init__(self, root_pid: int, sandbox: str | None = None,
                 limits: dict[str, float] | None = None, start: float | None = None, *,
                 measure_only: bool = False, disk_interval: float = 1.0,
                 cores_window: float = 180.0, measure_disk: bool = True,
                 measure_dirs: list[str] | None = None) -> None:
        if not isinstance(root_pid, int) or root_pid <= 0:
            raise ValueError(f"root_pid should be a positive process id, not {root_pid!r}")
        if cores_window <= 0:
            raise ValueError(f"cores_window should be positive, not {cores_window!r}")
        self.root_pid = root_pid
        self.limits = validate_limits(limits)
        self._limit_order = tuple(n for n in RESOURCE_NAMES if n in self.limits)
        self.start = time.time() if start is None else float(start)
        self.measure_only = measure_only
        self.disk_interval = disk_interval
        self.cores_window = cores_window
        dirs = list(measure_dirs or ([sandbox] if sandbox else []))
        self.measure_dirs = dirs if measure_disk else []
        #: The peaks so far (resource -> value), and when each was reached (s after start).
        self.peaks: dict[str, float] = {}
        self.peak_times: dict[str, float] = {"start": 0.0}
        #: Limits broken so far: ``{resource: limit}``.
        self.limits_exceeded: dict[str, float] = {}
        self.samples = 0
        self._procs: dict[int, _Proc] = {}
        self._seen = 0
        self._gone_io = [0, 0, 0]  # rchar, write_bytes, context switches of ended processes
        self._cpu_samples: list[tuple[float, float]] = [(0.0, 0.0)]
        self._next_disk = self.start + disk_interval  # the first samples stay cheap
        self._disk_cost = 0.0
        self._finished: dict[str, Any] | None = None
        self._reaped = False
        #: The values of the last sample (current, not peaks), for time series.
        self.current: dict[str, float] = {}

    # -- sampling ------------------------------------------------------------------------------

    def sample(self, now: float | None = None) -> str | None:
        """Measure the tree now; the first limit broken (CCTools' order) or None."""
        if now is None:
            now = time.time()
        self.samples += 1
        wall = max(0.0, now - self.start)
        now_values = self._walk(root=not self._reaped)
        if self.measure_dirs and now >= self._next_disk:
            self._measure_disk(now_values, now)
        now_values["wall_time"] = wall
        now_values["end"] = now
        now_values["start"] = self.start
        cpu = max(now_values["cpu_time"], self.peaks.get("cpu_time", 0.0))
        now_values["cpu_time"] = cpu
        if wall > 0:
            now_values["cores"] = self._peak_cores(wall, cpu)
            now_values["cores_avg"] = cpu / wall
        self.current = now_values
        self._merge(now_values, wall)
        return self._check(self._limit_order)

    def reaped(self) -> None:
        """The root was waited for: its pid may name another process from now on; any
        descendants left are still followed (``alive``)."""
        self._reaped = True
        root = self._procs.get(self.root_pid)
        if root is not None and root.alive:
            self._gone(root)
        for p in self._procs.values():  # which descendants are still there (cheap)
            if p.alive:
                stat = _read(f"/proc/{p.pid}/stat")
                fields = stat[stat.rfind(b")") + 2:].split() if stat else []
                if len(fields) < 20 or fields[19] != p.starttime or fields[0] == b"Z":
                    self._gone(p)

    @property
    def root_running(self) -> bool:
        """Whether the root was alive at the last sample (False once gone or ``reaped``)."""
        root = self._procs.get(self.root_pid)
        return not self._reaped and (root is None or (root.alive and not root.zombie))

    def alive(self) -> bool:
        """Whether a process of the tree was alive at the last sample (the root counts until
        ``reaped``)."""
        return (not self._reaped) or any(p.alive for p in self._procs.values())

    def next_sample(self, now: float, interval: float) -> float:
        """When to sample next: ``interval`` from now, sooner while the task is young (the
        gap is the task's age, from 50 ms up to ``interval``: short tasks get a few samples)
        and at a ``wall_time``/``end`` limit."""
        when = now + min(interval, max(FIRST_GAP, now - self.start))
        wall = self.limits.get("wall_time", -1)
        if wall >= 0:
            when = min(when, self.start + wall + 1e-3)
        end = self.limits.get("end", -1)
        if end >= 0:
            when = min(when, end + 1e-3)
        return when

    def _walk(self, root: bool = True) -> dict[str, float]:
        """Read every live process of the tree once (from the root, unless it was reaped)."""
        procs = self._procs
        cpu = hwm = vmpeak = swap = 0
        live = 0
        todo = [self.root_pid] if root else []
        todo.extend(pid for pid, p in procs.items() if p.alive and pid != self.root_pid)
        visited: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid in visited:
                continue
            visited.add(pid)
            p = procs.get(pid)
            stat = _read(f"/proc/{pid}/stat")
            if stat is None:
                if p is not None and p.alive:
                    self._gone(p)
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            try:
                starttime = fields[19]
                ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
                threads = int(fields[17])
            except (IndexError, ValueError):
                continue
            if p is None or p.starttime != starttime:
                if p is not None and p.alive:
                    self._gone(p)  # the pid was reused
                p = procs[pid] = _Proc(pid, starttime)
                self._seen += 1
            elif not p.alive:
                continue
            live += 1
            p.zombie = fields[0] == b"Z"
            p.cpu = ticks
            p.threads = threads
            _read_memory_and_io(p)
            cpu += ticks
            hwm += p.hwm
            vmpeak += p.vmpeak
            swap += p.swap
            if not p.zombie:
                todo.extend(self._children(pid, threads))
        rchar, wbytes, ctx = self._gone_io
        for p in procs.values():
            if p.alive:
                rchar, wbytes, ctx = rchar + p.rchar, wbytes + p.wbytes, ctx + p.ctx
        return {
            "cpu_time": cpu / _TICKS,
            "memory": _kb_to_mb(hwm), "virtual_memory": _kb_to_mb(vmpeak),
            "swap_memory": _kb_to_mb(swap),
            "bytes_read": rchar / MB, "bytes_written": wbytes / MB,
            "context_switches": float(ctx),
            "max_concurrent_processes": float(live), "total_processes": float(self._seen),
        }

    @staticmethod
    def _children(pid: int, threads: int) -> list[int]:
        if not _HAS_CHILDREN_FILES:
            return _children_by_scan(pid)
        if threads > 1:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                tids = [str(pid)]
        else:
            tids = [str(pid)]
        out: list[int] = []
        for tid in tids:
            text = _read(f"/proc/{pid}/task/{tid}/children")
            if text:
                out.extend(int(c) for c in text.split())
        return out

    def _gone(self, p: _Proc) -> None:
        """A process ended: keep its I/O counts (its cpu time went to whoever waited for it)."""
        p.alive = False
        self._gone_io[0] += p.rchar
        self._gone_io[1] += p.wbytes
        self._gone_io[2] += p.ctx

    def _measure_disk(self, values: dict[str, float], now: float) -> None:
        t0 = time.perf_counter()
        total = files = 0
        for path in self.measure_dirs:
            size, count = tree_usage(path)
            if size >= 0:
                total += size
                files += count
        cost = time.perf_counter() - t0
        self._next_disk = now + max(self.disk_interval, 10 * cost)
        values["disk"] = float((total + MB - 1) // MB)
        values["total_files"] = float(files)
        values["machine_load"] = os.getloadavg()[0]

    def _peak_cores(self, wall: float, cpu: float) -> float:
        """CCTools ``peak_cores``: cpu over the last ``cores_window`` seconds of wall time,
        divided by the whole window until that much time has passed."""
        samples = self._cpu_samples
        samples.append((wall, cpu))
        while len(samples) > 2 and samples[0][0] + self.cores_window < wall:
            samples.pop(0)
        head_wall, head_cpu = samples[0]
        diff_wall = max(0.0, wall - head_wall)
        diff_cpu = max(0.0, cpu - head_cpu)
        if wall < self.cores_window:
            diff_wall = self.cores_window
        return diff_cpu / diff_wall if diff_wall > 0 else 0.0

    def _merge(self, values: dict[str, float], wall: float) -> None:
        """``rmsummary_merge_max_w_time``: raise peaks, remembering when."""
        peaks, times = self.peaks, self.peak_times
        for name, value in values.items():
            old = peaks.get(name)
            if old is None or value > old:
                peaks[name] = value
                if value > (old or 0.0):
                    times[name] = wall
        peaks["start"] = self.start
        times["start"] = 0.0
        times["end"] = wall

    def _check(self, names: tuple[str, ...]) -> str | None:
        """``rmsummary_check_limits`` on the peaks; remembers what broke."""
        first = None
        for name in names:
            limit = self.limits.get(name)
            if limit is None:
                continue
            measured = self.peaks.get(name, 0.0)
            forgiven = CORES_FORGIVEN if name == "cores" else 0.0
            if measured > 0 and limit < measured - forgiven:
                self.limits_exceeded[name] = limit
                if first is None:
                    first = name
        if first is None and self.limits_exceeded:
            first = next(iter(self.limits_exceeded))
        return first

    def exceeded_messages(self) -> list[str]:
        """The debug line CCTools' ``rmsummary_check_limits`` writes for each limit broken so
        far: ``Resource limit for disk has been exceeded: 30 > 10 MB``."""
        return [f"Resource limit for {name} has been exceeded: "
                f"{format_value(name, self.peaks.get(name, 0.0))} > "
                f"{format_value(name, limit)} {UNITS[name]}"
                for name, limit in self.limits_exceeded.items()]

    # -- ending --------------------------------------------------------------------------------

    def kill(self, sig: int = _signal.SIGKILL) -> None:
        """Send ``sig`` to every live process of the tree (and to the root's process group
        when the root leads its own group)."""
        pids = [self.root_pid] + [p for p, info in self._procs.items() if info.alive]
        try:
            if os.getpgid(self.root_pid) == self.root_pid != os.getpgrp():
                os.killpg(self.root_pid, sig)
        except OSError:
            pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def finish(self, now: float | None = None, rusage: Any = None, exit_status: int = 0,
               signal: int = 0) -> dict[str, Any]:
        """The final summary of a task that ended at ``now`` with ``exit_status`` (or killed
        by ``signal``); ``rusage`` is the root's (``os.wait4(...)[2]``)."""
        if self._finished is not None:
            return self._finished
        if now is None:
            now = time.time()
        wall = max(0.0, now - self.start)
        values: dict[str, float] = {"start": self.start, "end": now, "wall_time": wall}
        self.reaped()
        # descendants the root did not wait for, still running: one last look
        if any(p.alive for p in self._procs.values()):
            live = self._walk(root=False)
            for name in ("cpu_time", "memory", "virtual_memory", "swap_memory", "bytes_read",
                         "bytes_written", "context_switches", "total_processes"):
                values[name] = live[name]
        else:
            rchar, wbytes, ctx = self._gone_io
            values["bytes_read"] = rchar / MB
            values["bytes_written"] = wbytes / MB
            values["context_switches"] = float(ctx)
        if rusage is not None:
            _fold_rusage(values, rusage)
        if self.measure_dirs:
            self._measure_disk(values, now)
        else:
            values["machine_load"] = os.getloadavg()[0]
        cpu = max(values.get("cpu_time", 0.0), self.peaks.get("cpu_time", 0.0))
        values["cpu_time"] = cpu
        if wall > 0:
            # CCTools takes cores from the whole run at the end (rmonitor_final_usage_tree)
            values["cores"] = cpu / wall
        self._merge(values, wall)
        peaks = self.peaks
        if wall > 0:
            peaks["cores_avg"] = cpu / wall
        peaks["machine_cpus"] = _CPUS
        gpus = self.limits.get("gpus", -1)
        peaks["gpus"] = gpus if gpus > 0 else 0.0  # CCTools: the gpus measured are the limit
        self._check(tuple(n for n in self._limit_order if n in _FINAL_CHECK))

        out: dict[str, Any] = {}
        if signal:
            out["exit_type"] = "signal"
            out["signal"] = int(signal)
            out["exit_status"] = 128 + int(signal)
        else:
            out["exit_type"] = "normal"
            out["exit_status"] = int(exit_status)
        if self.limits_exceeded:
            out["exit_type"] = "limits"
            if not self.measure_only:
                out["exit_status"] = 128 + _signal.SIGTERM
        exceeded = self.limits_exceeded
        out["limits_exceeded"] = {n: exceeded[n] for n in RESOURCE_NAMES if n in exceeded} \
            if exceeded else None
        for name in RESOURCE_NAMES:
            out[name] = peaks.get(name, 0.0)
        out["peak_times"] = dict(self.peak_times)
        self._finished = out
        return out

    @property
    def resources(self) -> dict[str, float]:
        """The peaks measured so far (resource -> value, CCTools units)."""
        return dict(self.peaks)


def _read_memory_and_io(p: _Proc) -> None:
    """Refresh ``p``'s memory peaks, context switches and I/O counts from ``/proc``; a zombie
    keeps its last figures, because its status file has no memory lines any more."""
    status = None if p.zombie else _read(f"/proc/{p.pid}/status")  # no Vm lines
    if status is not None:
        m = _STATUS(status)
        if m is not None:
            p.vmpeak, p.hwm, p.swap = int(m[1]), int(m[2]), int(m[3])
        else:  # zombies and kernel threads have no Vm lines
            p.vmpeak, p.hwm, p.swap = (_field(status, b"VmPeak:"),
                                       _field(status, b"VmHWM:"),
                                       _field(status, b"VmSwap:"))
        m = _SWITCHES(status)
        if m is not None:
            p.ctx = int(m[1]) + int(m[2])
    io = _read(f"/proc/{p.pid}/io")
    if io is not None:
        p.rchar = _field(io, b"rchar:")
        p.wbytes = max(_field(io, b"wchar:"), _field(io, b"\nwrite_bytes:"))


def _fold_rusage(values: dict[str, float], rusage: Any) -> None:
    """Raise the final ``values`` to what the kernel counted for the root and the children it
    waited for: those processes are gone before the last walk, so only rusage saw them."""
    cpu = float(rusage.ru_utime) + float(rusage.ru_stime)
    values["cpu_time"] = max(values.get("cpu_time", 0.0), cpu)
    # A child's ru_maxrss starts from its parent's RSS when it was forked (or
    # vforked by posix_spawn), so it only tells something above our own peak.
    maxrss = int(rusage.ru_maxrss)
    if maxrss > _self_maxrss():
        values["memory"] = max(values.get("memory", 0.0), _kb_to_mb(maxrss))
    values["bytes_written"] = max(values.get("bytes_written", 0.0),
                                  rusage.ru_oublock * 512 / MB)
    values["bytes_read"] = max(values.get("bytes_read", 0.0),
                               rusage.ru_inblock * 512 / MB)
    values["context_switches"] = max(values.get("context_switches", 0.0),
                                     float(rusage.ru_nvcsw + rusage.ru_nivcsw))
    values["total_processes"] = max(values.get("total_processes", 0.0), 1.0)
    values["max_concurrent_processes"] = 1.0


def _self_maxrss() -> int:
    try:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except OSError:
        return 1 << 62


def _kb_to_mb(kb: int) -> float:
    return float(-(-int(kb) // 1024))

