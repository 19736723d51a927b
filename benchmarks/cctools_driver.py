"""Run a benchmark's workload against a CCTools installation named by ``CCTOOLS_HOME``.

Used by the scripts in this directory; not a benchmark itself.  ``CCTOOLS_HOME`` is the prefix of
an installed CCTools (``bin/work_queue_worker``, ``lib/libwork_queue.a``, ``include/cctools``).
When it is unset the comparisons are skipped with a one-line note.

To drive the CCTools manager the same way our manager is driven, :func:`build_driver` compiles
``DRIVER_SOURCE`` -- a small C program of ours, below, written for these benchmarks and not taken
from CCTools -- against the user's installation, into a temporary directory, at run time.  It
uses only the public C API of ``work_queue.h``.  Nothing from CCTools is stored here.

The driver prints ``port P`` once its queue listens, waits for the expected number of workers,
runs the workload and prints one ``result key=value ...`` line (for ``latency``, a ``samples``
line of milliseconds first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "CCTOOLS_HOME"

DRIVER_SOURCE = r"""
/* Benchmark driver for a CCTools Work Queue manager (written for this project's benchmarks). */
#include "work_queue.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double cpu(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec +
           r.ru_stime.tv_usec * 1e-6;
}
static double rss_mb(void) {
    long pages = 0, resident = 0; FILE *f = fopen("/proc/self/statm", "r");
    if (f) { if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0; fclose(f); }
    return resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

/* mode: true | files | latency | queue | transfer; size: MB for transfer */
static struct work_queue_task *make(const char *mode, int i, long size) {
    char cmd[256], in[64], out[64];
    struct work_queue_task *t;
    if (!strcmp(mode, "files")) {
        snprintf(in, sizeof in, "in.%d", i); snprintf(out, sizeof out, "out.%d", i);
        FILE *f = fopen(in, "w");
        if (!f) { perror(in); exit(1); }
        fprintf(f, "input %d\n", i);
        for (int k = 0; k < 1000; k++) fputc('x', f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "cat %s > %s", in, out);
        t = work_queue_task_create(cmd);
        work_queue_task_specify_file(t, in, in, WORK_QUEUE_INPUT, WORK_QUEUE_NOCACHE);
        work_queue_task_specify_file(t, out, out, WORK_QUEUE_OUTPUT, WORK_QUEUE_NOCACHE);
    } else if (!strcmp(mode, "transfer") && i == 0) {
        t = work_queue_task_create("true");
        work_queue_task_specify_file(t, "big.in", "big.in", WORK_QUEUE_INPUT, WORK_QUEUE_CACHE);
    } else if (!strcmp(mode, "transfer")) {
        snprintf(cmd, sizeof cmd, "head -c %ld /dev/zero > big.out", size << 20);
        t = work_queue_task_create(cmd);
        work_queue_task_specify_file(t, "big.out", "big.out", WORK_QUEUE_OUTPUT,
                                     WORK_QUEUE_NOCACHE);
    } else {
        t = work_queue_task_create("true");
    }
    work_queue_task_specify_cores(t, 1);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODE TASKS WINDOW WORKERS [SIZE_MB]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int n = atoi(argv[2]), window = atoi(argv[3]), nworkers = atoi(argv[4]);
    long size = argc > 5 ? atol(argv[5]) : 0;
    struct work_queue_stats s;
    double rss0 = rss_mb();
    struct work_queue *q = work_queue_create(0);
    if (!q) { fprintf(stderr, "work_queue_create failed\n"); return 1; }
    printf("port %d\n", work_queue_port(q)); fflush(stdout);

    if (!strcmp(mode, "queue")) {  /* no workers: memory and submit cost of n queued tasks */
        double t0 = now();
        for (int i = 0; i < n; i++) work_queue_submit(q, make(mode, i, 0));
        double submit = now() - t0, grown = rss_mb() - rss0;
        t0 = now(); work_queue_wait(q, 0); double waited = now() - t0;
        t0 = now(); work_queue_get_stats(q, &s); double stats = now() - t0;
        printf("result tasks=%d rss_mb=%.1f grown_mb=%.1f submit_s=%.6f wait0_s=%.6f "
               "stats_s=%.6f waiting=%d\n", n, rss_mb(), grown, submit, waited, stats,
               s.tasks_waiting);
        return 0;
    }
    do {  /* connected and resources reported */
        work_queue_wait(q, 1); work_queue_get_stats(q, &s);
    } while (s.workers_connected < nworkers || s.workers_init > 0);

    if (!strcmp(mode, "latency")) {
        printf("samples");
        for (int i = 0; i < n + 20; i++) {
            double t0 = now();
            work_queue_submit(q, make("true", i, 0));
            struct work_queue_task *t = work_queue_wait(q, 10);
            if (!t || t->return_status != 0) { fprintf(stderr, "task failed\n"); return 1; }
            if (i >= 20) printf(" %.4f", 1000 * (now() - t0));
            work_queue_task_delete(t);
        }
        printf("\nresult tasks=%d\n", n);
        work_queue_delete(q);
        return 0;
    }
    if (!strcmp(mode, "transfer")) {
        struct work_queue_task *t;
        work_queue_submit(q, make(mode, 0, size));
        t = work_queue_wait(q, 600);
        if (!t || t->result != WORK_QUEUE_RESULT_SUCCESS) return fprintf(stderr, "in failed\n"), 1;
        double send = (t->time_when_commit_end - t->time_when_commit_start) / 1e6;
        work_queue_task_delete(t);
        work_queue_submit(q, make(mode, 1, size));
        t = work_queue_wait(q, 600);
        if (!t || t->result != WORK_QUEUE_RESULT_SUCCESS) return fprintf(stderr, "out failed\n"), 1;
        double recv = (t->time_when_done - t->time_when_retrieval) / 1e6;
        work_queue_task_delete(t);
        printf("result send_s=%.6f recv_s=%.6f\n", send, recv);
        work_queue_delete(q);
        return 0;
    }

    for (int i = 0; i < nworkers; i++) work_queue_submit(q, make("true", i, 0));  /* warm-up */
    for (int i = 0; i < nworkers; i++) {
        struct work_queue_task *t = work_queue_wait(q, 30);
        if (t) work_queue_task_delete(t);
    }
    double cpu0 = cpu(), t0 = now();
    int first = (window <= 0 || window > n) ? n : window, submitted = first, done = 0, failed = 0;
    for (int i = 0; i < first; i++) work_queue_submit(q, make(mode, i, 0));
    double submit_cpu = cpu() - cpu0, last = now(), longest = 0;
    int longest_at = 0;
    while (done < n) {
        struct work_queue_task *t = work_queue_wait(q, 10);
        if (!t) { fprintf(stderr, "stalled after %d tasks\n", done); break; }
        double tnow = now();
        if (tnow - last > longest) { longest = tnow - last; longest_at = done; }
        last = tnow;
        done++;
        failed += t->result != WORK_QUEUE_RESULT_SUCCESS || t->return_status != 0;
        work_queue_task_delete(t);
        if (submitted < n) work_queue_submit(q, make(mode, submitted++, 0));
    }
    double elapsed = now() - t0, used = cpu() - cpu0;
    work_queue_get_stats(q, &s);
    printf("result tasks=%d failed=%d seconds=%.6f cpu_s=%.6f submit_cpu_s=%.6f "
           "longest_pause_s=%.6f longest_pause_at=%d workers_connected=%d workers_lost=%d\n",
           done, failed, elapsed, used, submit_cpu, longest, longest_at, s.workers_connected,
           s.workers_lost);
    work_queue_delete(q);
    return 0;
}
"""

_built: dict[str, str] = {}


def cctools_home() -> Path | None:
    """The CCTools prefix from ``$CCTOOLS_HOME``, or None; exits with a clear error if unusable."""
    value = os.environ.get(ENV)
    if not value:
        return None
    home = Path(value)
    for need in ("bin/work_queue_worker", "lib/libwork_queue.a", "include/cctools/work_queue.h"):
        if not (home / need).exists():
            sys.exit(f"{ENV}={value}: no {need} there (expected an installed CCTools prefix)")
    return home


def skip_note() -> None:
    """The one line printed when no CCTools installation is named."""
    print(f"CCTools comparison skipped: set {ENV}=/path/to/cctools (an installed prefix) to run "
          "the same workload with its manager and workers")


def worker_argv(home: Path | None) -> list[str]:
    """The worker command: CCTools' work_queue_worker under ``home``, or ours when None."""
    if home is None:
        return [sys.executable, "-m", "work_queue.cli.worker"]
    return [str(home / "bin" / "work_queue_worker")]


def start_workers(argv: list[str], port: int, n: int, cores: int = 1,
                  disk_mb: int = 1000) -> list[subprocess.Popen[bytes]]:
    """Start ``n`` local workers with ``cores`` cores each, connecting to ``port``."""
    return [subprocess.Popen(argv + ["--cores", str(cores), "--memory", "1000", "--disk",
                                     str(disk_mb), "-t", "60", "--single-shot", "localhost",
                                     str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(n)]


def wait_connected(q: Any, n: int, timeout: float = 30) -> None:
    """Serve ``q`` until ``n`` workers have connected (or ``timeout`` seconds passed)."""
    deadline = time.time() + timeout
    while q.stats.workers_connected < n and time.time() < deadline:
        q.wait(0.05)


def stop_workers(workers: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Wait for single-shot workers to leave; kill any still there after ``timeout``."""
    for w in workers:
        try:
            w.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def build_driver(home: Path) -> str:
    """Compile DRIVER_SOURCE against ``home`` into a temporary directory; return its path."""
    if str(home) in _built:
        return _built[str(home)]
    out = tempfile.mkdtemp(prefix="wq-cctools-driver-")
    src = os.path.join(out, "driver.c")
    exe = os.path.join(out, "driver")
    with open(src, "w") as f:
        f.write(DRIVER_SOURCE)
    cc = os.environ.get("CC", "cc")
    base = [cc, "-O2", "-std=gnu99", "-o", exe, src, f"-I{home / 'include' / 'cctools'}",
            str(home / "lib" / "libwork_queue.a"), str(home / "lib" / "libdttools.a")]
    tail = ["-lz", "-lm", "-ldl", "-lrt", "-lpthread"]
    errors = ""
    for libs in (["-lssl", "-lcrypto"], []):  # CCTools built with or without OpenSSL
        r = subprocess.run(base + libs + tail, capture_output=True, text=True)
        if r.returncode == 0:
            _built[str(home)] = exe
            return exe
        errors = r.stderr
    sys.exit(f"cannot compile the CCTools benchmark driver against {home}:\n{errors[-2000:]}")


def run_driver(home: Path, mode: str, tasks: int, window: int = 0, workers: int = 0,
               size_mb: int = 0, start: Callable[[int], object] | None = None,
               cwd: str | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run the CCTools manager driver; ``start(port)`` starts its workers (returns anything).

    Returns the ``result`` line's fields as floats (and ``samples``, a list of ms, for latency).
    """
    exe = build_driver(home)
    return run_program([exe, mode, str(tasks), str(window), str(workers), str(size_mb)],
                       start=start, cwd=cwd, timeout=timeout)


def python_bindings(home: Path) -> str | None:
    """The site-packages directory of CCTools' Python bindings under ``home``, if installed."""
    version = "python%d.%d" % sys.version_info[:2]
    for d in (home / "lib" / version / "site-packages", home / "lib" / "python3" / "site-packages"):
        if (d / "ndcctools" / "work_queue.py").exists():
            return str(d)
    return None


def run_program(argv: list[str], start: Callable[[int], object] | None = None,
                cwd: str | None = None, timeout: float = 900,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a manager program that prints ``port P``, then ``result k=v ...`` (see module doc)."""
    own = cwd is None
    work = cwd or tempfile.mkdtemp(prefix="wq-cctools-bench-")
    proc = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            proc.kill()
            raise RuntimeError(f"CCTools manager did not start: {line!r} {proc.stderr.read()!r}")
        started = start(int(line.split()[1])) if start else None
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"CCTools manager failed ({proc.returncode}): {err.strip()[-500:]}")
        result: dict[str, Any] = {}
        for row in out.splitlines():
            if row.startswith("samples"):
                result["samples"] = [float(x) for x in row.split()[1:]]
            elif row.startswith("result"):
                for field in row.split()[1:]:
                    k, v = field.split("=", 1)
                    result[k] = float(v)
        if isinstance(started, list):
            stop_workers(started)
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if own:
            shutil.rmtree(work, ignore_errors=True)
