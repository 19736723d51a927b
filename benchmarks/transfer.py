#!/usr/bin/env python3
"""Bulk transfer: one large input to a worker and one large output back, against a plain
loopback TCP copy of the same bytes into a file, measured in the same run.

    python benchmarks/transfer.py [--size-mb 1024] [--repeat 2]

The input rate is the task's send-input time (``send_input_start`` to ``send_input_finish``),
the output rate its receive-output time.  With ``CCTOOLS_HOME=/path/to/cctools`` the same two
tasks also run on the CCTools manager with a CCTools worker (its ``time_when_commit_start/end``
and ``time_when_retrieval``/``time_when_done``) and on our manager with a CCTools worker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import cctools_driver as cct

import work_queue as wq


def plain_tcp_copy(path: str, dest: str) -> float:
    """MB/s of sendfile() over loopback into a file: the baseline."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def receive() -> None:
        conn, _ = srv.accept()
        with conn, open(dest, "wb") as f:
            while data := conn.recv(1 << 20):
                f.write(data)

    th = threading.Thread(target=receive)
    th.start()
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    with socket.create_connection(srv.getsockname()) as s, open(path, "rb") as f:
        s.sendfile(f)
    th.join()
    elapsed = time.perf_counter() - t0
    srv.close()
    return size / 2**20 / elapsed


def run_ours(size_mb: int, worker_argv: list[str]) -> tuple[float, float]:
    """(input MB/s, output MB/s) on our manager; ``big.in`` is in the current directory."""
    size = size_mb << 20
    q = wq.WorkQueue(port=0)
    workers = cct.start_workers(worker_argv, q.port, 1, disk_mb=4 * size_mb + 1000)
    while q.stats.workers_connected < 1:
        q.wait(0.05)
    t = wq.Task("true")
    t.specify_input_file("big.in")
    q.submit(t)
    t = q.wait(600)
    if t is None or t.result != wq.WORK_QUEUE_RESULT_SUCCESS:
        raise RuntimeError("input task failed")
    send = size / 2**20 / ((t.send_input_finish - t.send_input_start) / 1e6)
    t = wq.Task(f"head -c {size} /dev/zero > big.out")
    t.specify_output_file("big.out")
    q.submit(t)
    t = q.wait(600)
    if t is None or os.path.getsize("big.out") != size:
        raise RuntimeError("output task failed")
    recv = size / 2**20 / ((t.receive_output_finish - t.receive_output_start) / 1e6)
    os.unlink("big.out")
    q.close()
    cct.stop_workers(workers, 60)
    return send, recv


def run_cctools(home: Path, size_mb: int, worker_argv: list[str]) -> tuple[float, float]:
    """(input MB/s, output MB/s) on the CCTools manager (C driver)."""
    r = cct.run_driver(home, "transfer", 2, 0, 1, size_mb, cwd=os.getcwd(),
                       start=lambda port: cct.start_workers(worker_argv, port, 1,
                                                            disk_mb=4 * size_mb + 1000))
    if os.path.getsize("big.out") != size_mb << 20:
        raise RuntimeError("CCTools output task brought back the wrong size")
    os.unlink("big.out")
    return size_mb / r["send_s"], size_mb / r["recv_s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    home = cct.cctools_home()
    pairs = [("ours", "ours")]
    if home is not None:
        pairs = [("CCTools", "CCTools"), ("ours", "ours"), ("ours", "CCTools")]
    work = tempfile.mkdtemp(prefix="wq-transfer-")
    old = os.getcwd()
    os.chdir(work)
    try:
        with open("big.in", "wb") as f:
            f.truncate(args.size_mb << 20)  # sparse: reading it costs no disk
        # A first copy, not counted: on a VM the first gigabyte of page cache can cost several
        # times what later ones do (guest memory touched for the first time).
        plain_tcp_copy("big.in", "copy.out")
        os.unlink("copy.out")
        print(f"{args.size_mb} MB, MB/s (and % of a plain loopback TCP copy in the same run)")
        print(f"{'manager/workers':>16} {'TCP copy':>9} {'input':>12} {'output':>12}", flush=True)
        for _ in range(args.repeat):
            for manager, workers in pairs:
                # Every run starts with no dirty pages left by the previous one: a run that
                # inherits gigabytes still being written back shares the CPUs with that.
                os.sync()
                baseline = plain_tcp_copy("big.in", "copy.out")
                os.unlink("copy.out")
                os.sync()
                argv = cct.worker_argv(home if workers == "CCTools" else None)
                if manager == "ours":
                    send, recv = run_ours(args.size_mb, argv)
                else:
                    assert home is not None
                    send, recv = run_cctools(home, args.size_mb, argv)
                print(f"{manager + '/' + workers:>16} {baseline:9.0f} "
                      f"{send:6.0f} ({100 * send / baseline:3.0f}%) "
                      f"{recv:6.0f} ({100 * recv / baseline:3.0f}%)", flush=True)
    finally:
        os.chdir(old)
        shutil.rmtree(work, ignore_errors=True)
    if home is None:
        cct.skip_note()
    return 0


if __name__ == "__main__":
    sys.exit(main())
