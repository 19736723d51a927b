"""Catalog server and client: updates over TCP/UDP, queries, filters, expiry, history, bad input."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import zlib

import pytest

from work_queue.catalog import client, history, jx
from work_queue.catalog.server import CatalogServer, parse_update


@pytest.fixture
def catalog(tmp_path):
    srv = CatalogServer(port=0, history_dir=str(tmp_path / "history")).start()
    yield srv
    srv.stop()


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(0.02)


def records(srv, expr=None):
    return client.query_catalog("127.0.0.1", srv.port, expr, timeout=5)


def test_tcp_and_udp_updates_and_queries(catalog):
    rec = {"type": "wq_master", "project": "alpha", "port": 9123, "tasks_waiting": 4}
    assert client.send_update([("127.0.0.1", catalog.port)], rec, protocol="tcp") == 1
    big = {"type": "wq_master", "project": "beta", "port": 9124, "padding": "x" * 5000}
    assert client.send_update(f"127.0.0.1:{catalog.port}", big, protocol="udp") == 1
    wait_for(lambda: len(records(catalog)) == 2)
    got = {r["project"]: r for r in records(catalog)}
    assert got["alpha"]["tasks_waiting"] == 4
    assert got["beta"]["padding"] == "x" * 5000  # arrived compressed (0x1A + zlib)
    for r in got.values():
        assert r["address"] == "127.0.0.1"
        assert abs(r["lastheardfrom"] - time.time()) < 5
        assert r["name"]
    # server-side filter, as CCTools clients send it
    only = records(catalog, 'project=="beta" && type=="wq_master"')
    assert [r["project"] for r in only] == ["beta"]
    assert records(catalog, 'tasks_waiting > 3 || project == "nothing"')[0]["project"] == "alpha"
    # a second update of the same manager replaces its record
    rec["tasks_waiting"] = 7
    client.send_update([("127.0.0.1", catalog.port)], rec)
    wait_for(lambda: records(catalog, 'project=="alpha"')[0]["tasks_waiting"] == 7)
    assert len(records(catalog)) == 2


def test_query_formats(catalog):
    client.send_update([("127.0.0.1", catalog.port)],
                       {"type": "wq_master", "project": "fmt", "port": 1, "ssl": False})
    wait_for(lambda: records(catalog))
    code, body = client.http_get("127.0.0.1", catalog.port, "/query.json")
    assert code == 200
    text = body.decode()
    assert text.startswith("[\n{") and text.endswith("}\n]\n")  # CCTools' layout
    code, body = client.http_get("127.0.0.1", catalog.port, "/query.text")
    assert "project fmt\n" in body.decode() and "ssl false\n" in body.decode()
    with socket.create_connection(("127.0.0.1", catalog.port)) as s:
        s.sendall(b"GET /query.json HTTP/1.0\r\n\r\n")
        raw = b""
        while chunk := s.recv(4096):
            raw += chunk
    head = raw.split(b"\n\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200 OK\n")
    assert "Content-type: text/plain; charset=utf-8" in head
    assert "Access-Control-Allow-Origin: *" in head


def test_broken_filters_and_paths_get_clear_errors(catalog):
    bad = base64.b64encode(b'project=="x" &&').decode()
    code, body = client.http_get("127.0.0.1", catalog.port, "/query/" + bad)
    assert code == 400 and b"Invalid query text" in body
    code, body = client.http_get("127.0.0.1", catalog.port, "/query/@@@notbase64")
    assert code == 400 and b"base-64" in body
    code, _ = client.http_get("127.0.0.1", catalog.port, "/no/such/page")
    assert code == 404
    with pytest.raises(client.CatalogError, match="rejected the filter"):
        records(catalog, "(((")
    with pytest.raises(ValueError, match="bad project name"):
        client.find_managers("([", [("127.0.0.1", catalog.port)])


def test_bad_updates_are_dropped_and_the_server_keeps_running(catalog):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", catalog.port)
    junk = [b"not json at all", b"{\"broken\": ", b"\x1a this is not zlib", b"[1, 2, 3]",
            b"\x00\xff" * 100, b"\x1a" + zlib.compress(b"{" * 10), b""]
    for data in junk:
        u.sendto(data, target)
    bomb = b"\x1a" + zlib.compress(b"{\"a\":\"" + b"x" * (3 << 20) + b"\"}")
    u.sendto(bomb, target)  # 3 MB once decompressed: refused
    for data in (b"x" * (2 << 20), b"GET / HTTP/1.1\r\n\r\n", b"{nope"):
        with socket.create_connection(("127.0.0.1", catalog.port + 1)) as s:
            try:
                s.sendall(data)
            except OSError:
                pass
    # a slow TCP updater that never finishes does not block anyone
    idle = socket.create_connection(("127.0.0.1", catalog.port + 1))
    client.send_update([target], {"type": "wq_master", "project": "ok", "port": 5})
    wait_for(lambda: [r["project"] for r in records(catalog)] == ["ok"])
    wait_for(lambda: catalog.stats["updates_dropped"] >= 9)
    idle.close()
    u.close()


def test_flood_of_updates(catalog):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.time()
    for i in range(3000):
        data = json.dumps({"type": "wq_master", "project": f"p{i % 50}", "port": 1000 + i % 50})
        u.sendto(data.encode() if i % 7 else b"garbage", ("127.0.0.1", catalog.port))
    # queries are answered during and after the flood
    got = records(catalog)
    assert len(got) <= 50
    wait_for(lambda: len(records(catalog)) == 50)
    assert time.time() - t0 < 10
    u.close()


def test_parse_update_forms():
    assert parse_update(b'{"a": 1}') == {"a": 1}
    assert parse_update(b"\x1a" + zlib.compress(b'{"b": 2}')) == {"b": 2}
    assert parse_update(b"type wq_master\nport 9123\nload 0.5\nssl false\n") == \
        {"type": "wq_master", "port": 9123, "load": 0.5, "ssl": False}
    for bad in (b"", b"[1]", b"{", b"\x1anope", b"word"):
        with pytest.raises(ValueError):
            parse_update(bad)


def test_records_expire_after_their_lifetime(tmp_path):
    srv = CatalogServer(port=0, lifetime=1, clean_interval=0.2).start()
    try:
        client.send_update([("127.0.0.1", srv.port)],
                           {"type": "wq_master", "project": "short", "port": 1})
        client.send_update([("127.0.0.1", srv.port)],
                           {"type": "wq_master", "project": "shorter", "port": 2,
                            "lifetime": 0.3})
        wait_for(lambda: len(records(srv)) == 2, 3)
        time.sleep(1.3)
        assert records(srv) == []
        assert srv.records == {}  # cleaned from the table too
    finally:
        srv.stop()


def test_history_is_kept_and_reloaded(tmp_path):
    hist = str(tmp_path / "hist")
    srv = CatalogServer(port=0, history_dir=hist).start()
    try:
        for n in (1, 2, 3):
            client.send_update([("127.0.0.1", srv.port)],
                               {"type": "wq_master", "project": "h", "port": 7, "tasks_done": n})
            wait_for(lambda n=n: records(srv) and records(srv)[0]["tasks_done"] == n)
        when = int(time.time())
        code, body = client.http_get("127.0.0.1", srv.port, f"/history/{when}/query.json")
        assert code == 200 and json.loads(body)[0]["tasks_done"] == 3
    finally:
        srv.stop()
    logs = [os.path.join(d, f) for d, _, fs in os.walk(hist) for f in fs if f.endswith(".log")]
    text = open(logs[0]).read()
    assert text.startswith("T ") and "\nC " in text and '\nM ' in text
    assert history.snapshot(hist, time.time())[next(iter(srv.records))]["tasks_done"] == 3
    again = CatalogServer(port=0, history_dir=hist).start()  # a restart keeps the table
    try:
        assert [r["tasks_done"] for r in records(again)] == [3]
    finally:
        again.stop()


def test_jx_expressions():
    rec = {"type": "wq_master", "project": "abc", "port": 9123, "load": 0.5, "tags": ["a"]}
    yes = ['type=="wq_master"', 'type=="wq_manager" || type=="wq_master"',
           '(type=="wq_master") and (port>9000)', "!(port==1)", "not false", "port - 1 == 9122",
           "load < 1", "port == 9123.0", 'like(project, "^a")', "len(tags) == 1",
           'tags[0] == "a"', "true and ((1 + 2) * 3 == 9)", 'project + "x" == "abcx"']
    no = ["missing == 1", "missing != 1", 'port == "9123"', "false", "1", "port / 0 == 1",
          '"a" < 1']
    for text in yes:
        assert jx.compile_filter(text)(rec), text
    for text in no:
        assert not jx.compile_filter(text)(rec), text
    # CCTools groups 'and' looser than 'or'
    assert jx.compile_filter("true || false && false")(rec) is False
    for bad in ("", "a ==", "(a", "a b", '"open', "f(", "a ? b", "{" * 1000):
        with pytest.raises(jx.JXSyntaxError):
            jx.parse(bad)


def test_client_addresses_and_catalog_lists(monkeypatch):
    monkeypatch.delenv("CATALOG_HOST", raising=False)
    monkeypatch.delenv("CATALOG_PORT", raising=False)
    assert client.default_catalogs() == [("localhost", 9097)]
    monkeypatch.setenv("CATALOG_HOST", "a.example,b.example:1234")
    monkeypatch.setenv("CATALOG_PORT", "9999")
    assert client.default_catalogs() == [("a.example", 9999), ("b.example", 1234)]
    assert client.parse_catalogs("x:1,y") == [("x", 1), ("y", 9999)]
    with pytest.raises(ValueError, match="port"):
        client.parse_catalogs("x:notaport")
    rec = {"port": 9123, "address": "1.2.3.4", "name": "m.example",
           "network_interfaces": [{"address": "10.0.0.1"}, {"address": "1.2.3.4"}]}
    assert client.manager_addresses(rec) == [("10.0.0.1", 9123), ("1.2.3.4", 9123)]
    assert client.manager_addresses({**rec, "network_interfaces": [{"address": "10.0.0.1"}]}
                                    ) == [("10.0.0.1", 9123), ("1.2.3.4", 9123)]
    assert client.manager_addresses({**rec, "manager_preferred_connection": "by_hostname"}
                                    ) == [("m.example", 9123)]
    assert client.manager_addresses(rec, "by_apparent_ip") == [("1.2.3.4", 9123)]
    assert client.manager_addresses({"port": "x"}) == []


def test_unreachable_catalog_fails_fast():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    t0 = time.time()
    with pytest.raises(client.CatalogError, match="cannot reach"):
        client.find_managers(".*", [("127.0.0.1", port)], timeout=2)
    assert time.time() - t0 < 3


def test_catalog_server_command(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "work_queue.cli.catalog_server", "-Z",
                             str(port_file), "-H", str(tmp_path / "h"), "-l", "60"],
                            stderr=subprocess.PIPE)
    try:
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 10)
        port = int(port_file.read_text())
        client.send_update([("127.0.0.1", port)], {"type": "wq_master", "project": "cli",
                                                   "port": 3})
        wait_for(lambda: client.query_catalog("127.0.0.1", port), 5)
        assert client.find_managers("cl.", [("127.0.0.1", port)])[0]["project"] == "cli"
        assert client.find_managers("cl", [("127.0.0.1", port)]) == []  # full match only
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stderr.close()
    bad = subprocess.run([sys.executable, "-m", "work_queue.cli.catalog_server", "-p",
                          str(port), "-l", "soon"], capture_output=True, text=True)
    assert bad.returncode != 0 and "bad time" in bad.stderr


@pytest.mark.parametrize("first", ["b-project", "a-project"])
def test_records_of_one_host_are_listed_in_a_fixed_order(first):
    """Two managers on one host share the record name; the listing (and so the status page)
    must not depend on whose update arrived first (a status page test read the wrong row)."""
    srv = CatalogServer(port=0)
    try:
        for project, port in sorted([("a-project", 9001), ("b-project", 9002)],
                                    key=lambda p: p[0] != first):
            update = {"type": "wq_master", "project": project, "port": port, "name": "host"}
            assert srv.handle_update("127.0.0.1", 40000 + port, json.dumps(update).encode(),
                                     "tcp")
        assert [r["project"] for r in srv.snapshot()] == ["a-project", "b-project"]
        view = srv.managers_view(srv.snapshot())
        assert [m["key"] for m in view["managers"]] == [
            m["key"] for m in sorted(view["managers"], key=lambda m: m["key"])]
    finally:
        srv.stop()
