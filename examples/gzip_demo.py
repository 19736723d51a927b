#!/usr/bin/env python3
"""Demo: a manager compresses files with gzip tasks, served by local workers it starts itself.

This is the manual's example (``./gzip < my-file > my-file.gz``, gzip sent as a cached input),
run on this machine with ``work_queue_worker`` processes as the workers.

    python examples/gzip_demo.py [--workers 2] [--files 20]
"""

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time

import work_queue as wq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()

    gzip_path = shutil.which("gzip") or "/usr/bin/gzip"
    workdir = tempfile.mkdtemp(prefix="wq-gzip-demo-")
    os.chdir(workdir)
    names = []
    for i in range(args.files):
        name = f"file{i}.txt"
        with open(name, "w") as f:
            f.write(f"This is file number {i}.\n" * (1000 + 100 * i))
        names.append(name)

    q = wq.WorkQueue(port=0)
    print(f"listening on port {q.port}...")
    for name in names:
        t = wq.Task(f"./gzip < {name} > {name}.gz")
        t.specify_input_file(gzip_path, "gzip", cache=True)
        t.specify_input_file(name, cache=False)
        t.specify_output_file(f"{name}.gz", cache=False)
        t.specify_cores(1)
        taskid = q.submit(t)
        print(f"submitted task (id# {taskid}): {t.command}")

    workers = [
        subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--cores", "1",
                          "--timeout", "30", "--single-shot", "localhost", str(q.port)],
                         stderr=subprocess.DEVNULL)
        for _ in range(args.workers)
    ]
    print(f"started {len(workers)} local workers; waiting for tasks to complete...")
    start = time.time()
    ok = True
    while not q.empty():
        t = q.wait(5)
        if t:
            status = "ok" if t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0 \
                else f"FAILED ({t.result_str}, exit {t.return_status})"
            ok &= status == "ok"
            print(f"task (id# {t.id}) complete on {t.hostname}: {t.command} -> {status}")
    elapsed = time.time() - start
    for name in names:
        with gzip.open(name + ".gz", "rt") as f, open(name) as orig:
            ok &= f.read() == orig.read()
    before = sum(os.path.getsize(n) for n in names)
    after = sum(os.path.getsize(n + ".gz") for n in names)
    print(f"all tasks complete in {elapsed:.2f} s: {before} bytes -> {after} bytes; "
          f"outputs verified: {'yes' if ok else 'NO'}")
    q.close()
    for w in workers:
        # A worker that started after every task was done (a slow start on a busy machine)
        # keeps trying to connect until its --timeout: it had nothing to do, so stop it.
        try:
            w.wait(timeout=5)
        except subprocess.TimeoutExpired:
            w.terminate()
            w.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
