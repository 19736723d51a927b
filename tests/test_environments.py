"""PythonTask.specify_environment and poncho_package_run: unpack once, share, run inside."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile

import cloudpickle
import pytest

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
    assert "no conda or mamba on PATH" in capsys.readouterr().err


def six_from_environment():
    import six

    return six.__version__, six.__file__


def test_package_create_without_conda_builds_a_venv(queue, workers, tmp_path, capsys,
                                                    monkeypatch):
    """No conda here: poncho_package_create makes a venv with pip, and a PythonTask imports a
    package that only that environment has, on a real worker."""
    import importlib.util
    import subprocess

    from work_queue.poncho.package_tools import create_main

    if shutil.which("conda") or shutil.which("mamba"):
        pytest.skip("conda is installed: poncho_package_create uses it instead of a venv")
    if importlib.util.find_spec("six") is not None:
        pytest.skip("six is installed in the test environment, so importing it proves nothing")
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "-d", str(tmp_path / "probe"), "six"], capture_output=True,
                           timeout=60)
    if probe.returncode != 0:
        pytest.skip("pip cannot reach a package index: " + probe.stderr.decode()[-200:])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "conda": {"channels": ["conda-forge"], "dependencies": ["python=%d.%d"
                                                                 % sys.version_info[:2]]},
        "pip": ["six", f"cloudpickle=={cloudpickle.__version__}"]}))
    env = str(tmp_path / "six-env.tar.gz")
    assert create_main([str(spec), env]) == 0, capsys.readouterr().err
    with tarfile.open(env) as tar:
        names = tar.getnames()
    assert "bin/conda-unpack" in names and "bin/python3" in names
    assert any(n.endswith("site-packages/six.py") for n in names)

    # poncho_package_run from another directory: the unpacked copy finds its own six.
    monkeypatch.chdir(tmp_path / "probe")
    unpacked = str(tmp_path / "elsewhere" / "env")
    run = subprocess.run([sys.executable, package_run.__file__, "-e", env, "-u", unpacked, "--",
                          "python", "-c", "import six, sys; print(sys.prefix, six.__file__)"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    prefix, six_file = run.stdout.split()
    assert prefix == unpacked and six_file.startswith(unpacked + "/")
    with open(os.path.join(unpacked, "bin", "activate")) as f:
        assert f'VIRTUAL_ENV="{unpacked}"' in f.read()  # conda-unpack moved the venv

    t = wq.PythonTask(six_from_environment)
    t.specify_environment(env)
    queue.submit(t)
    workers.start(queue.port)
    wait_all(queue)
    version, where = t.output
    assert version == "1.17.0" or version.count(".") == 2, t.std_output
    assert where.endswith("six-env.tar.gz-env/lib/python%d.%d/site-packages/six.py"
                          % sys.version_info[:2]), where


def test_package_create_without_conda_refuses_other_python(tmp_path, capsys, monkeypatch):
    from work_queue.poncho.package_tools import create_main

    if shutil.which("conda") or shutil.which("mamba"):
        pytest.skip("conda is installed: poncho_package_create uses it instead of a venv")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"conda": {"dependencies": ["python=2.7", "pip"]}}))
    out = tmp_path / "env.tar.gz"
    assert create_main([str(spec), str(out)]) == 1
    err = capsys.readouterr().err
    assert "'python=2.7'" in err and "running Python" in err
    assert not out.exists()


def test_venv_spec_requirements():
    from work_queue.poncho.venv_pack import SpecError, requirements

    here = "%d.%d" % sys.version_info[:2]
    spec = {"conda": {"channels": ["conda-forge"],
                      "dependencies": [f"python={here}", "pip", "conda-forge::numpy=1.26",
                                       "toolz 0.12.1", "conda", "attrs>=23",
                                       {"pip": ["six==1.17.0"]}]},
            "pip": ["cloudpickle"]}
    from_conda, pip = requirements(spec)
    assert from_conda == ["pip", "numpy==1.26.*", "toolz==0.12.1", "attrs>=23"]
    assert pip == ["cloudpickle", "six==1.17.0"]
    assert requirements({"conda": {"dependencies": [f"python>={here}"]}}) == ([], [])
    with pytest.raises(SpecError, match="python<3"):
        requirements({"conda": {"dependencies": ["python<3"]}})
    with pytest.raises(SpecError, match="JSON object"):
        requirements(["six"])
