"""PythonTask.specify_environment and poncho_package_run: unpack once, share, run inside."""

from __future__ import annotations

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
