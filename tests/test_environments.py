"""PythonTask.specify_environment and poncho_package_run: unpack once, share, run inside."""

from __future__ import annotations

import json
import os
import sys
import tarfile

import cloudpickle

import work_queue as wq
from tests.conftest import wait_all
from work_queue.poncho import package_run

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def make_env(tmp_path):
    """A packed environment: bin/python3 and a conda-unpack that counts its runs."""
    root = tmp_path / "env-src"
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python3"  # stands for the environment's own interpreter
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    unpack = root / "bin" / "conda-unpack"
    unpack.write_text('#!/bin/sh\necho unpacked >> "$(dirname "$0")/../unpack-count"\n')
    unpack.chmod(0o755)
    (root / "marker.txt").write_text("inside the environment\n")
    env = tmp_path / "my-env.tar.gz"
    with tarfile.open(env, "w:gz") as tar:
        for entry in root.iterdir():
            tar.add(entry, arcname=entry.name)
    return str(env)


def where_am_i():
    import os
    import shutil

    env_dir = os.path.dirname(os.path.dirname(shutil.which("python3")))
    with open(os.path.join(env_dir, "marker.txt")) as f:
        marker = f.read().strip()
    with open(os.path.join(env_dir, "unpack-count")) as f:
        count = len(f.readlines())
    return marker, count


def test_package_run_unpacks_once(tmp_path):
    env = make_env(tmp_path)
    target = str(tmp_path / "unpacked")
    for _ in range(3):
        package_run.unpack(env, target, 5, False)
    assert open(os.path.join(target, "unpack-count")).read() == "unpacked\n"


def test_python_tasks_share_one_unpacked_environment(queue, workers, tmp_path):
    env = make_env(tmp_path)
    tasks = []
    for _ in range(4):
        t = wq.PythonTask(where_am_i)
        t.specify_environment(env)
        queue.submit(t)
        tasks.append(t)
    workers.start(queue.port, cores=2)
    wait_all(queue)
    for t in tasks:
        assert t.output == ("inside the environment", 1), t.std_output


def test_package_analyze(tmp_path, capsys):
    from work_queue.poncho.package_tools import analyze_main

    src = tmp_path / "app.py"
    src.write_text("import os, json\nimport cloudpickle\n\ndef f():\n    import psutil\n")
    assert analyze_main([str(src), "-"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert any(p.startswith("cloudpickle==") for p in spec["pip"])
    assert any(p.startswith("psutil==") for p in spec["pip"])
    assert spec["conda"]["dependencies"][0].startswith("python=")
    assert analyze_main([str(src), "--toplevel", "-"]) == 0
    assert not any("psutil" in p for p in json.loads(capsys.readouterr().out)["pip"])
    src.write_text("import surely_not_a_real_module\n")
    assert analyze_main([str(src), "-"]) == 1
    assert "surely_not_a_real_module" in capsys.readouterr().err


def test_package_create_without_conda_says_so(tmp_path, capsys, monkeypatch):
    from work_queue.poncho.package_tools import create_main

    monkeypatch.setenv("PATH", str(tmp_path))
    assert create_main(["spec.json", str(tmp_path / "env.tar.gz")]) == 1
    assert "needs conda" in capsys.readouterr().err
