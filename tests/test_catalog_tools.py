"""catalog_query and catalog_update (CCTools' flags), and the catalog server's HTTPS port
(--ssl-cert, --ssl-key, --ssl-port, --ssl-port-file), against real catalog server processes on
loopback (issue 18 item 5)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from work_queue.cli.catalog_query import jx_pretty, jx_text

ROOT = Path(__file__).resolve().parent.parent


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    deadline = time.time() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.time() < deadline, f"{path} not written"
        time.sleep(0.05)
    return int(path.read_text())


class Catalog:
    def __init__(self, tmp: Path, tls: bool) -> None:
        args = [sys.executable, "-m", "work_queue.cli.catalog_server", "-I", "127.0.0.1",
                "-Z", str(tmp / "port"), "-H", ""]
        if tls:
            from work_queue.tls import self_signed_pair

            key, cert = self_signed_pair()
            args += ["--ssl-cert", cert, "--ssl-key", key, "--ssl-port-file",
                     str(tmp / "sslport")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=tmp)
        self.port = _wait_file(tmp / "port", self.proc)
        self.ssl_port = _wait_file(tmp / "sslport", self.proc) if tls else 0
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def catalog(tmp_path) -> Iterator[Catalog]:
    c = Catalog(tmp_path, tls=False)
    yield c
    c.stop()


@pytest.fixture
def tls_catalog(tmp_path) -> Iterator[Catalog]:
    c = Catalog(tmp_path, tls=True)
    yield c
    c.stop()


def run(tool: str, *args: str, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"work_queue.cli.{tool}", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def update(catalog: Catalog, tmp_path: Path, record: dict) -> None:
    f = tmp_path / f"rec-{record['label']}.json"
    f.write_text(json.dumps(record))
    r = run("catalog_update", "-c", catalog.address, "-f", str(f))
    assert r.returncode == 0, r.stderr


def query(catalog: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run("catalog_query", "-c", catalog, *args)


def wait_for(catalog: str, label: str) -> list[dict]:
    """The catalog's records once one has this label (the server sets "name" itself, to the
    sender's host name, as CCTools' does)."""
    deadline = time.time() + 10
    while True:
        r = query(catalog)
        assert r.returncode == 0, r.stderr
        records = json.loads(r.stdout)
        if any(x.get("label") == label for x in records):
            return records
        assert time.time() < deadline, r.stdout
        time.sleep(0.1)


def test_console_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["catalog_query"] == "work_queue.cli.catalog_query:main"
    assert scripts["catalog_update"] == "work_queue.cli.catalog_update:main"


def test_jx_printing_as_cctools():
    assert jx_text("a\"b\n") == '"a\\"b\\n"'
    assert jx_text(1.5) == "1.5" and jx_text(2.0) == "2" and jx_text(None) == "null"
    assert jx_text(True) == "true" and jx_text([1, "x"]) == '[1,"x"]'
    assert jx_text({"a": 1}) == '{"a":1}'
    assert jx_pretty({"a": 1, "b": {"c": "d"}}) == (
        '\n{\n  "a":1,\n  "b":\n    {\n      "c":"d"\n    }\n}')


def test_update_then_query(catalog, tmp_path):
    update(catalog, tmp_path, {"label": "alpha", "port": 1001, "type": "wq_test",
                               "color": "red"})
    update(catalog, tmp_path, {"label": "beta", "port": 1002, "type": "wq_test",
                               "color": "blue"})
    wait_for(catalog.address, "alpha")
    records = wait_for(catalog.address, "beta")
    alpha = next(x for x in records if x.get("label") == "alpha")
    # catalog_update's own fields, with the file's on top
    assert alpha["type"] == "wq_test" and alpha["color"] == "red"
    for key in ("version", "cpu", "opsys", "opsysversion", "load1", "load5", "load15",
                "memory_total", "memory_avail", "cpus", "owner"):
        assert key in alpha, key
    assert alpha["opsys"] == alpha["opsys"].lower()

    r = query(catalog.address, "-w", 'type=="wq_test" && color=="red"')
    assert r.returncode == 0, r.stderr
    assert [x["label"] for x in json.loads(r.stdout)] == ["alpha"]
    assert r.stdout.startswith("[\n\n{\n  ") and r.stdout.endswith("\n}\n]\n")

    r = query(catalog.address, "--where", 'type=="wq_test"', "-p", "label", "--output", "color")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "label\tcolor\t"
    assert sorted(lines[1:]) == ['"alpha"\t"red"\t', '"beta"\t"blue"\t']


def test_query_errors(catalog):
    r = query(catalog.address, "-w", "type ==")
    assert r.returncode == 1 and "invalid expression" in r.stderr
    r = query(catalog.address, "extra")
    assert r.returncode == 1 and "--where" in r.stdout  # the help
    r = query("127.0.0.1:1", "-t", "2")
    assert r.returncode == 1 and "couldn't query catalog" in r.stderr


def test_update_refuses_a_file_without_a_record(catalog, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    r = run("catalog_update", "-c", catalog.address, "-f", str(bad))
    assert r.returncode == 1 and "does not contain a valid json record" in r.stderr


def test_update_uses_catalog_host(catalog, tmp_path):
    f = tmp_path / "gamma.json"
    f.write_text('{"label": "gamma", "type": "wq_test"}')
    r = run("catalog_update", "-f", str(f), env={"CATALOG_HOST": catalog.address})
    assert r.returncode == 0, r.stderr
    wait_for(catalog.address, "gamma")


def test_https_queries(tls_catalog, tmp_path):
    assert tls_catalog.ssl_port and tls_catalog.ssl_port != tls_catalog.port
    update(tls_catalog, tmp_path, {"label": "secure", "type": "wq_test"})
    wait_for(tls_catalog.address, "secure")  # plain HTTP still answers
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{tls_catalog.ssl_port}/query.json"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        records = json.loads(resp.read())
    assert any(x.get("label") == "secure" for x in records)
    # catalog_query takes https://host:port
    r = query(f"https://127.0.0.1:{tls_catalog.ssl_port}", "-w", 'label=="secure"', "-p",
              "label")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["label\t", '"secure"\t']
    # plain HTTP on the TLS port is not answered with records
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{tls_catalog.ssl_port}/query.json",
                               timeout=5).read()


def test_ssl_needs_both_cert_and_key(tmp_path):
    from work_queue.tls import self_signed_pair

    _key, cert = self_signed_pair()
    r = run("catalog_server", "-Z", str(tmp_path / "p"), "-H", "", "--ssl-cert", cert)
    assert r.returncode != 0 and "--ssl-key is also required" in r.stderr
