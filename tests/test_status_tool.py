"""work_queue_status against a real manager, a real catalog and an unreachable host."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

import work_queue as wq
from work_queue.catalog import client
from work_queue.catalog.server import CatalogServer
from work_queue.cli.status import QUEUE_HEADERS, TASK_HEADERS, table_header, table_row

from .conftest import wait_all

CCTOOLS_STATUS = "/tmp/cctools/bin/work_queue_status"


def status(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "work_queue.cli.status", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def start_worker(port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--cores", "2",
                             "--memory", "2000", "--disk", "3000", "-t", "30", *extra,
                             "127.0.0.1", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def test_table_layout_matches_cctools():
    # widths from CCTools' jx_table: negative widths grow with the terminal
    head = table_header(QUEUE_HEADERS, 80)
    assert head == ("PROJECT            HOST                   PORT WAITING RUNNING COMPLETE "
                    "WORKERS ")
    row = table_row(QUEUE_HEADERS, {"project": "p", "name": "h", "port": 9123,
                                    "tasks_waiting": 1, "tasks_running": 2}, 80)
    assert row.split() == ["p", "h", "9123", "1", "2", "???", "???"]
    narrow = table_header(TASK_HEADERS, 30)
    assert narrow.startswith("ID   STATE    PRIORITY") and len(narrow) <= 40


def test_direct_queries(in_tmp):
    q = wq.WorkQueue(port=0)
    q.specify_category_max_resources("fixed", {"cores": 1, "memory": 300, "disk": 200})
    for i in range(2):
        t = wq.Task("sleep 20")
        t.specify_category("fixed")
        t.specify_tag(f"long{i}")
        q.submit(t)
    t = wq.Task("echo waiting-task")
    t.specify_cores(3)  # larger than the worker: it stays waiting
    q.submit(t)
    w = start_worker(q.port)
    try:
        deadline = time.time() + 20
        while q.stats.tasks_running < 2:
            assert time.time() < deadline
            q.wait(0.1)
        # the application is busy (not in wait): the manager still answers
        out = status("127.0.0.1", str(q.port))
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].split() == ["PROJECT", "HOST", "PORT", "WAITING", "RUNNING",
                                    "COMPLETE", "WORKERS"]
        tasks = status("-T", "127.0.0.1", str(q.port)).stdout.splitlines()
        assert tasks[0].split()[:3] == ["ID", "STATE", "PRIORITY"]
        states = sorted(line.split()[1] for line in tasks[1:])
        assert states == ["RUNNING", "RUNNING", "WAITING"]
        assert any("sleep 20" in line for line in tasks)
        workers = status("-W", "127.0.0.1", str(q.port)).stdout.splitlines()
        assert workers[0].split()[:3] == ["HOST", "ADDRESS", "COMPLETED"]
        assert len(workers) == 2 and workers[1].split()[1].startswith("127.0.0.1:")
        able = status("-A", "127.0.0.1", str(q.port)).stdout.splitlines()
        assert able[0].split() == ["CATEGORY", "DISPATCHED", "WAITING", "FIT-WORKERS",
                                   "MAX-CORES", "MAX-MEMORY", "MAX-DISK"]
        fixed = next(line.split() for line in able if line.startswith("fixed"))
        assert fixed == ["fixed", "2", "0", "1", "1.000", "300", "200"]  # CCTools: %.3f cores
        res = status("-R", "127.0.0.1", str(q.port)).stdout.splitlines()
        assert res[0].split()[:3] == ["MANAGER", "CORES", "INUSE"]
        long = json.loads(status("-l", "-T", "127.0.0.1", str(q.port)).stdout)
        assert {t.get("tag") for t in long} == {"long0", "long1", None}
    finally:
        stop(w)
        q.close()


def test_able_workers_marks(in_tmp):
    """-A shows '~n' (largest seen) and '>n' (exhausted, still exploring) as CCTools does."""
    q = wq.WorkQueue(port=0)
    q.enable_monitoring()
    q.specify_category_mode("auto", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    t = wq.Task("sleep 0.2")
    t.specify_category("auto")
    q.submit(t)
    t = wq.Task(sys.executable + " -c 'x = bytearray(300 << 20); import time; time.sleep(1.5)'")
    t.specify_category("big")
    t.specify_memory(50)
    t.specify_max_retries(0)
    q.submit(t)
    w = start_worker(q.port)
    try:
        results = {t.category: t.result for t in wait_all(q, 40)}
        assert results["big"] == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
        able = status("-A", "127.0.0.1", str(q.port)).stdout.splitlines()
        auto = next(line.split() for line in able if line.startswith("auto"))
        big = next(line.split() for line in able if line.startswith("big"))
        assert all(v.startswith("~") for v in auto[4:]), auto
        assert big[5].startswith(">"), big
    finally:
        stop(w)
        q.close()


def test_catalog_table_filters_and_long_output(in_tmp):
    srv = CatalogServer(port=0, history_dir=None).start()
    queues = []
    try:
        for name in ("status-a", "status-b", "other"):
            q = wq.WorkQueue(port=0, name=name)
            q.specify_catalog_server("127.0.0.1", srv.port)
            q.submit(wq.Task("true"))
            q.wait(0)
            queues.append(q)
        where = f"127.0.0.1:{srv.port}"
        deadline = time.time() + 10
        while len(client.query_catalog("127.0.0.1", srv.port)) < 3:
            assert time.time() < deadline
            time.sleep(0.05)
        out = status("-C", where)
        assert out.returncode == 0, out.stderr
        projects = sorted(line.split()[0] for line in out.stdout.splitlines()[1:])
        assert projects == ["other", "status-a", "status-b"]
        row = next(line.split() for line in out.stdout.splitlines() if "status-a" in line)
        assert row[2] == str(queues[0].port) and row[3] == "1"
        out = status("-C", where, "-M", "status-.*")
        assert sorted(line.split()[0] for line in out.stdout.splitlines()[1:]) == \
            ["status-a", "status-b"]
        out = status("-C", where, "--where", 'project=="other"')
        assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == ["other"]
        long = json.loads(status("-C", where, "-l").stdout)
        assert {r["project"] for r in long} == {"other", "status-a", "status-b"}
        bad = status("-C", where, "--where", "project ==")
        assert bad.returncode == 1 and "invalid expression" in bad.stderr
        usage = status("-T")
        assert usage.returncode != 0 and "explicit manager" in usage.stderr
    finally:
        for q in queues:
            q.close()
        srv.stop()


def test_unreachable_host_one_line_error_within_timeout():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = status("127.0.0.1", str(port), "-t", "3")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"port {port}" in out.stderr
    # a host that accepts but never answers: the timeout bounds the wait
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        t0 = time.time()
        out = status("127.0.0.1", str(silent.getsockname()[1]), "-t", "2")
        assert time.time() - t0 < 6
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
        assert "timed out" in out.stderr
        out = status("-C", f"127.0.0.1:{port}", "-t", "2")
        assert out.returncode == 1 and "failed to query catalog server" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    finally:
        silent.close()


def test_password_and_ssl(in_tmp, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("sesame\n")
    q = wq.WorkQueue(port=0, ssl=True)
    q.specify_password_file(str(pw))
    try:
        q.submit(wq.Task("true"))
        out = status("--ssl", "--password", str(pw), "-T", "127.0.0.1", str(q.port))
        assert out.returncode == 0, out.stderr
        assert "WAITING" in out.stdout
        out = status("--ssl", "-T", "127.0.0.1", str(q.port), "-t", "3")
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    finally:
        q.close()


@pytest.mark.skipif(not os.access(CCTOOLS_STATUS, os.X_OK),
                    reason="no CCTools work_queue_status at /tmp/cctools (an interoperability "
                    "check by hand: CI never builds CCTools)")
def test_cctools_work_queue_status_against_our_manager_and_catalog(in_tmp):
    srv = CatalogServer(port=0, history_dir=None).start()
    q = wq.WorkQueue(port=0, name="cct-check")
    q.specify_catalog_server("127.0.0.1", srv.port)
    try:
        q.submit(wq.Task("true"))
        q.wait(0)
        env = dict(os.environ, COLUMNS="100")
        for args in (["-T", "127.0.0.1", str(q.port)], ["-A", "127.0.0.1", str(q.port)],
                     ["-C", f"127.0.0.1:{srv.port}"]):
            theirs = subprocess.run([CCTOOLS_STATUS, *args], capture_output=True, text=True,
                                    env=env, timeout=30)
            ours = status(*args)
            assert theirs.returncode == 0 and theirs.stdout == ours.stdout, args
    finally:
        q.close()
        srv.stop()
