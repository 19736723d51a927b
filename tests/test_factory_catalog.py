"""``work_queue_factory -M`` finds its managers through a real ``catalog_server``.

The workers' own ``-M`` lookup is not part of this test (their command line is checked with a
recording ``sbatch``): what is tested is that the factory asks the catalog, matches the project
regular expression, sizes the pool from the record and passes ``-M``/``-C`` to the workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import work_queue as wq

from .factory_support import (
    FactoryProc,
    env_with_path,
    make_recorders,
    needs_catalog_client,
    read_log,
    serve_until,
)


@pytest.fixture
def catalog(tmp_path):
    needs_catalog_client()
    pytest.importorskip("work_queue.cli.catalog_server")
    port_file = tmp_path / "catalog.port"
    proc = subprocess.Popen([sys.executable, "-m", "work_queue.cli.catalog_server", "-Z",
                             str(port_file), "-H", ""], cwd=tmp_path,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not port_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert port_file.exists(), "catalog_server did not start"
    yield f"localhost:{int(port_file.read_text())}"
    proc.terminate()
    proc.wait(timeout=10)


def test_manager_name_mode_reads_the_catalog(catalog, tmp_path, monkeypatch):
    from work_queue.catalog import client

    monkeypatch.chdir(tmp_path)
    q = wq.WorkQueue(port=0)
    try:
        for _ in range(7):
            q.submit(wq.Task("sleep 30"))
        record = dict(q.status("queue")[0], project="fx-proj-1", type="wq_manager")
        assert client.send_update(catalog, record) == 1
        other = dict(record, project="someone-else", port=1, tasks_waiting=500)
        assert client.send_update(catalog, other) == 1
        deadline = time.time() + 10
        while len(client.find_managers("fx-proj-.*", catalogs=catalog)) < 1 \
                and time.time() < deadline:
            time.sleep(0.1)
        conf = tmp_path / "factory.json"
        conf.write_text(json.dumps({"manager-name": "fx-proj-.*", "max-workers": 20,
                                    "min-workers": 0, "workers-per-cycle": 0,
                                    "tasks-per-worker": 2}))
        bindir = tmp_path / "fakebin"
        make_recorders(bindir, ["sbatch", "scancel"])
        env = env_with_path(bindir, FAKE_BATCH_LOG=str(tmp_path / "calls.jsonl"))
        f = FactoryProc(["-T", "slurm", "-S", str(tmp_path / "scratch"), "--catalog", catalog,
                         "-C", str(conf), "--factory-name", "fx"], cwd=tmp_path, env=env)
        try:
            assert serve_until(q, lambda: f.stats(), 15), (f.out, f.err)
            assert f.stats()[0][1] == 4            # 7 tasks, 2 per worker; not the other one
            assert any("fx-proj-1" in line for line in f.out)
            assert f.stop() == 0
        finally:
            f.kill()
        calls = read_log(tmp_path / "calls.jsonl")
        submits = [c for c in calls if c["argv"][0] == "sbatch"]
        assert len(submits) == 4
        assert submits[0]["BATCH_JOB_COMMAND"].startswith(
            f"./work_queue_worker -M fx-proj-.* -t 300 -C '{catalog}' -d all -o worker.log "
            '--from-factory "fx"')
        assert sorted(c["argv"] for c in calls if c["argv"][0] == "scancel") == \
            [["scancel", str(1000 + i)] for i in range(4)]
        # the factory reported itself to the catalog as a wq_factory
        reports = client.query_catalog(*client.parse_hostport(catalog),
                                       filter_expr='type == "wq_factory"')
        assert reports and reports[0]["factory_name"] == "fx"
        assert reports[0]["project_regex"] == "fx-proj-.*"
    finally:
        q.close()
