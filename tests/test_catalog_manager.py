"""Managers advertise to the catalog; workers find them with -M; status while the app is busy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import work_queue as wq
from work_queue.catalog import client
from work_queue.catalog.server import CatalogServer
from work_queue.errors import AuthenticationError

from .conftest import wait_all


@pytest.fixture
def catalog():
    srv = CatalogServer(port=0, history_dir=None).start()
    yield srv
    srv.stop()


def wait_for(predicate, timeout=10.0, step=0.05):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(step)


def worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "work_queue.cli.worker", "--cores", "1", "--memory", "500",
            "--disk", "500", "-t", "20", "-b", "1", *args]


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_named_manager_advertises_full_record(catalog, in_tmp, monkeypatch):
    monkeypatch.setenv("WORK_QUEUE_UPDATE_INTERVAL", "0.2")
    q = wq.WorkQueue(port=0, name="adv-test")
    q.specify_catalog_server("127.0.0.1", catalog.port)
    try:
        assert client.find_managers("adv-test", [("127.0.0.1", catalog.port)]) == []
        q.submit(wq.Task("true"))
        q.wait(0)  # the first update goes out at the first wait
        wait_for(lambda: client.find_managers("adv-test", [("127.0.0.1", catalog.port)]))
        rec = client.find_managers("adv-.*", [("127.0.0.1", catalog.port)])[0]
        for field in ("type", "project", "starttime", "working_dir", "owner", "version", "port",
                      "priority", "manager_preferred_connection", "protocol", "ssl",
                      "network_interfaces", "workers", "tasks_waiting", "tasks_running",
                      "tasks_complete", "tasks_left", "capacity_tasks", "cores_total",
                      "categories", "tasks_total_cores", "address", "lastheardfrom", "name"):
            assert field in rec, field
        assert rec["type"] == "wq_master" and rec["port"] == q.port
        assert rec["protocol"] == 11 and rec["ssl"] is False
        assert rec["tasks_waiting"] == 1
        assert rec["working_dir"] == in_tmp
        q.cancel_by_taskid(1)
        time.sleep(0.25)
        q.wait(0)  # the next update, once the interval has passed
        wait_for(lambda: client.find_managers("adv-test", [("127.0.0.1", catalog.port)]
                                              )[0]["tasks_waiting"] == 0)
    finally:
        q.close()


def test_final_update_at_close_and_default_catalog(catalog, in_tmp, monkeypatch):
    monkeypatch.setenv("CATALOG_HOST", f"127.0.0.1:{catalog.port}")
    q = wq.WorkQueue(port=0, name="closing")
    q.submit(wq.Task("true"))
    q.close()  # never waited: the last update still goes out
    # the default catalog is CATALOG_HOST; the catalog may take a moment to file the update
    wait_for(lambda: len(client.find_managers("closing")) == 1)
    recs = client.find_managers("closing")
    assert len(recs) == 1 and recs[0]["tasks_waiting"] == 1


def test_unnamed_manager_does_not_advertise(catalog, in_tmp, monkeypatch):
    monkeypatch.setenv("CATALOG_HOST", f"127.0.0.1:{catalog.port}")
    with wq.WorkQueue(port=0) as q:
        q.wait(0)
    time.sleep(0.2)
    assert client.query_catalog("127.0.0.1", catalog.port) == []


def test_status_answered_while_the_application_is_busy(in_tmp, tmp_path):
    q = wq.WorkQueue(port=0)
    try:
        for _ in range(3):
            q.submit(wq.Task("true"))
        # the application never calls wait(): the manager still answers on its port
        for request in ("queue", "task", "worker", "wable", "resources"):
            answer = client.query_manager("127.0.0.1", q.port, request, timeout=3)
            assert isinstance(answer, list)
        assert client.query_manager("127.0.0.1", q.port, "queue")[0]["tasks_waiting"] == 3
        assert len(client.query_manager("127.0.0.1", q.port, "task")) == 3
        code, body = client.http_get("127.0.0.1", q.port, "/tasks")
        assert code == 200 and b'"taskid":1' in body
        # a worker that connects meanwhile is handed to the manager at the next wait()
        w = subprocess.Popen(worker_cmd("127.0.0.1", str(q.port)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            assert len(wait_all(q, 30)) == 3
            assert client.query_manager("127.0.0.1", q.port, "queue")[0]["tasks_complete"] == 3
        finally:
            stop(w)
    finally:
        q.close()


def test_busy_status_with_password_and_tls(in_tmp, tmp_path):
    pw = tmp_path / "pw"
    pw.write_bytes(b"secret\n")
    q = wq.WorkQueue(port=0, ssl=True)
    q.specify_password_file(str(pw))
    try:
        q.submit(wq.Task("true"))
        rec = client.query_manager("127.0.0.1", q.port, "queue", ssl=True,
                                   password=b"secret\n")
        assert rec[0]["ssl"] is True and rec[0]["tasks_waiting"] == 1
        with pytest.raises(AuthenticationError):
            client.query_manager("127.0.0.1", q.port, "queue", ssl=True, password=b"wrong")
        with pytest.raises(client.CatalogError):
            client.query_manager("127.0.0.1", q.port, "queue", ssl=True, timeout=2)
        # a worker with password and TLS connecting while the application is busy
        w = subprocess.Popen(worker_cmd("--ssl", "-P", str(pw), "127.0.0.1", str(q.port)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            assert [t.return_status for t in wait_all(q, 30)] == [0]
        finally:
            stop(w)
    finally:
        q.close()


def test_worker_finds_manager_by_name_and_moves_on(catalog, in_tmp, monkeypatch):
    monkeypatch.setenv("WORK_QUEUE_UPDATE_INTERVAL", "0.2")
    where = f"127.0.0.1:{catalog.port}"
    q1 = wq.WorkQueue(port=0, name="findme-1")
    q1.specify_catalog_server("127.0.0.1", catalog.port)
    q1.wait(0)
    wait_for(lambda: client.find_managers("findme-1", [("127.0.0.1", catalog.port)]))
    w = subprocess.Popen(worker_cmd("-M", "findme-.*", "--catalog", where, "-d", "all"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    q2 = None
    try:
        t = wq.Task("echo one")
        q1.submit(t)
        done = wait_all(q1, 30)
        assert done[0].output == "one\n"
        # a second manager on another port; the first one goes away and the worker,
        # which knew only the first, asks the catalog again and finds the second
        q2 = wq.WorkQueue(port=0, name="findme-2")
        assert q2.port != q1.port
        q2.specify_catalog_server("127.0.0.1", catalog.port)
        q2.submit(wq.Task("echo two"))
        q2.wait(0)
        q1.close()
        done = wait_all(q2, 40)
        assert done[0].output == "two\n"
        assert q2.stats.workers_joined == 1
    finally:
        stop(w)
        w.stderr.close()
        q1.close()
        if q2 is not None:
            q2.close()


def test_worker_name_errors(catalog):
    bad = subprocess.run(worker_cmd("-M", "([", "--catalog", f"127.0.0.1:{catalog.port}"),
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "bad manager name expression" in bad.stderr
    both = subprocess.run(worker_cmd("-M", "x", "localhost", "9123"), capture_output=True,
                          text=True, timeout=30)
    assert both.returncode != 0 and "not both" in both.stderr


def test_manager_trims_idle_workers_of_a_factory_over_its_max(catalog, in_tmp, monkeypatch):
    """A factory lowers max_workers in its catalog record: the manager sends idle workers of
    that factory away (CCTools factory_trim_workers)."""
    monkeypatch.setenv("CATALOG_HOST", f"127.0.0.1:{catalog.port}")
    monkeypatch.setenv("WORK_QUEUE_UPDATE_INTERVAL", "0.2")
    q = wq.WorkQueue(port=0)
    procs = [subprocess.Popen(worker_cmd("--from-factory", "fac1", "localhost", str(q.port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(3)]
    try:
        deadline = time.time() + 15
        while q.stats.workers_connected < 3:
            assert time.time() < deadline
            q.wait(0.1)
        client.send_update([("127.0.0.1", catalog.port)],
                           {"type": "wq_factory", "factory_name": "fac1", "max_workers": 1})
        deadline = time.time() + 15
        while q.stats.workers_connected > 1:
            assert time.time() < deadline, q.stats
            q.wait(0.1)
        deadline = time.time() + 10
        while sum(p.poll() is not None for p in procs) < 2:
            assert time.time() < deadline, "the trimmed workers did not exit"
            time.sleep(0.1)
        assert [p.poll() for p in procs].count(None) == 1     # one stays, serving
        assert all(p.returncode == 0 for p in procs if p.poll() is not None)
    finally:
        for p in procs:
            p.kill()
        q.close()


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (a catalog listens on both)."""
    import socket

    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of ports")


def test_named_manager_serves_a_catalog_when_none_answers(in_tmp, monkeypatch):
    """No catalog configured and none at the default address: the named manager serves one
    on loopback, and a worker started with -M NAME finds it there (issue 14)."""
    port = _free_port_pair()
    monkeypatch.delenv("CATALOG_HOST", raising=False)
    monkeypatch.setenv("CATALOG_PORT", str(port))
    monkeypatch.setenv("WORK_QUEUE_UPDATE_INTERVAL", "0.2")
    q = wq.WorkQueue(port=0, name="served-catalog-test")
    w = subprocess.Popen(worker_cmd("-M", "served-catalog-test"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        t = wq.Task("echo found")
        q.submit(t)
        wait_all(q, timeout=30)
        assert t.output == "found\n"
        records = client.query_catalogs([("127.0.0.1", port)], 'type == "wq_master"')
        assert [r["project"] for r in records] == ["served-catalog-test"]
    finally:
        q.close()
        stop(w)
    with pytest.raises(client.CatalogError):  # the manager's catalog is gone with it
        client.query_catalogs([("127.0.0.1", port)], 'type == "wq_master"', timeout=1)


def test_worker_says_at_once_that_no_catalog_answers(tmp_path):
    port = _free_port_pair()
    w = subprocess.Popen(worker_cmd("-M", "nobody-here", "-C", f"127.0.0.1:{port}",
                                    "-s", str(tmp_path)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert w.stderr is not None
        line = ""
        while "catalog" not in line:  # blocks until the next message
            line = w.stderr.readline()
            assert line, "the worker ended without a word about the catalog"
        assert "no catalog server answered" in line and f"127.0.0.1:{port}" in line, line
        assert "nobody-here" in line
    finally:
        stop(w)
