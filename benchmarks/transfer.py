#!/usr/bin/env python3
"""Bulk transfer: one large input to a worker and one large output back, against a plain
loopback TCP copy of the same bytes into a file, measured in the same run.

    python benchmarks/transfer.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=1024)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="wq-transfer-")
    os.chdir(work)
    size = args.size_mb << 20
    with open("big.in", "wb") as f:
        f.truncate(size)  # sparse: reading it costs no disk
    baseline = plain_tcp_copy("big.in", "copy.out")
    os.unlink("copy.out")
    q = wq.WorkQueue(port=0)
    w = subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--single-shot",
                          "-t", "60", "--disk", str(4 * args.size_mb + 1000), "localhost",
                          str(q.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while q.stats.workers_connected < 1:
        q.wait(0.05)
    t = wq.Task("true")
    t.specify_input_file("big.in")
    q.submit(t)
    t = q.wait(600)
    send_mbs = size / 2**20 / ((t.send_input_finish - t.send_input_start) / 1e6)
    t = wq.Task(f"head -c {size} /dev/zero > big.out")
    t.specify_output_file("big.out")
    q.submit(t)
    t = q.wait(600)
    assert os.path.getsize("big.out") == size
    recv_mbs = size / 2**20 / ((t.receive_output_finish - t.receive_output_start) / 1e6)
    q.close()
    w.wait(timeout=60)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.size_mb} MB: plain loopback TCP copy {baseline:.0f} MB/s; input to worker "
          f"{send_mbs:.0f} MB/s ({100 * send_mbs / baseline:.0f}%); output back "
          f"{recv_mbs:.0f} MB/s ({100 * recv_mbs / baseline:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
