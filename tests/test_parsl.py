"""Parsl's WorkQueueExecutor, unmodified, runs a workflow on this package."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("parsl")

WORKFLOW = r'''
import os
import sys

import parsl
from parsl.app.app import bash_app, python_app
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.executors import WorkQueueExecutor
from parsl.providers import LocalProvider


@python_app
def double(x):
    return 2 * x


@python_app
def fail():
    raise ValueError("expected failure")


@bash_app
def upper(inputs=[], outputs=[]):
    return f"tr a-z A-Z < {inputs[0]} > {outputs[0]}"


def main(coprocess):
    executor = WorkQueueExecutor(port=0, coprocess=coprocess, shared_fs=False,
                                 worker_options="--cores 2 -t 30",
                                 provider=LocalProvider(init_blocks=1, max_blocks=1))
    parsl.load(Config(executors=[executor]))
    with open("in.txt", "w") as f:
        f.write("hello parsl\n")
    print("doubles", [f.result() for f in [double(i) for i in range(6)]])
    upper(inputs=[File(os.path.abspath("in.txt"))],
          outputs=[File(os.path.abspath("out.txt"))]).result()
    print("staged", open("out.txt").read().strip())
    try:
        fail().result()
    except ValueError as e:
        print("raised", e)
    parsl.dfk().cleanup()


if __name__ == "__main__":
    main(sys.argv[1] == "coprocess")
'''


@pytest.mark.parametrize("mode", ["plain", "coprocess"])
def test_parsl_workflow(tmp_path, mode):
    script = tmp_path / "workflow.py"
    script.write_text(WORKFLOW)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    out = subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "doubles [0, 2, 4, 6, 8, 10]" in out.stdout
    assert "staged HELLO PARSL" in out.stdout
    assert "raised expected failure" in out.stdout


# -- Parsl's test_bad_stdout_file and test_bad_stderr_file (parsl/tests/test_bash_apps/
# test_stdout.py): a bash app whose stdout or stderr is in a directory that does not exist
# must fail with BadStdStreamFile.  Parsl's bash app makes the missing directory itself
# (os.makedirs in parsl/app/bash.py, at the worker) before it opens the file, so the tests
# can pass only where the worker may not create /bad/dir: Parsl marks them
# unix_filesystem_permissions_required.  Run as root they fail with every executor (Parsl's
# own ThreadPoolExecutor and CCTools' too), which is why CCTools "fails" them; nothing a
# manager or worker does can change that (docs/compatibility.md, Parsl).

BAD_STD = r'''
import os
import sys

import parsl
import pytest
from parsl.app.app import bash_app
from parsl.app.errors import BadStdStreamFile
from parsl.config import Config
from parsl.executors import WorkQueueExecutor
from parsl.providers import LocalProvider


@bash_app
def echo_to_streams(msg, stderr=None, stdout=None):
    return 'echo "{0}"; echo "{0}" >&2'.format(msg)


def equivalent():
    """Parsl's two tests with a directory nobody can create, root included: one under a
    regular file."""
    open("not-a-directory", "w").close()
    bad = os.path.abspath("not-a-directory") + "/dir"
    with pytest.raises(BadStdStreamFile):
        echo_to_streams("Hello world", stdout=bad + "/t2.out", stderr="t.err").result()
    with pytest.raises(BadStdStreamFile):
        echo_to_streams("Hello world", stderr=bad + "/t2.err").result()
    echo_to_streams("Hello world", stdout="good.out", stderr="good.err").result()
    assert open("good.out").read() == "Hello world\n"
    assert "Hello world" in open("good.err").read()


def main(mode, which):
    executor = WorkQueueExecutor(port=0, coprocess=mode == "coprocess", shared_fs=False,
                                 worker_options="--cores 1 -t 30",
                                 provider=LocalProvider(init_blocks=1, max_blocks=1))
    parsl.load(Config(executors=[executor]))
    try:
        if which == "parsl":
            from parsl.tests.test_bash_apps import test_stdout

            test_stdout.test_bad_stdout_file()
            test_stdout.test_bad_stderr_file()
        else:
            equivalent()
        print("both raised BadStdStreamFile")
    finally:
        parsl.dfk().cleanup()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
'''


def _check_bad_std(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stdout + out.stderr
    assert "both raised BadStdStreamFile" in out.stdout


@pytest.mark.parametrize("mode", ["plain", "coprocess"])
def test_bad_std_stream_file_fails_with_bad_std_stream_file(tmp_path, mode):
    script = tmp_path / "bad_std.py"
    script.write_text(BAD_STD)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    _check_bad_std(subprocess.run([sys.executable, str(script), mode, "equivalent"],
                                  cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120))


def _unprivileged(tmp: str) -> tuple[list[str], dict[str, str], dict[str, int]]:
    """How to run Parsl and this package as ``nobody``: the system's Python of our version
    (the venv's interpreter may sit where nobody can read), the venv's packages and ours on
    PYTHONPATH, and the worker and Parsl's coprocess script behind wrappers that use it."""
    import pwd
    import shutil
    import sysconfig

    import work_queue

    python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    coprocess = shutil.which("parsl_coprocess.py",
                             path=os.path.dirname(sys.executable) + os.pathsep +
                             os.environ.get("PATH", ""))
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no user 'nobody' to run Parsl as")
    if not os.access(python, os.X_OK) or coprocess is None:
        pytest.skip(f"running as root, and {python} or parsl_coprocess.py is missing")
    bin_dir = os.path.join(tmp, "bin")
    os.mkdir(bin_dir)
    with open(os.path.join(bin_dir, "work_queue_worker"), "w") as f:
        f.write(f'#!/bin/sh\nexec {python} -m work_queue.cli.worker "$@"\n')
    with open(coprocess) as src, open(os.path.join(bin_dir, "parsl_coprocess.py"), "w") as f:
        f.write(f"#!{python}\n" + src.read().partition("\n")[2])
    for name in os.listdir(bin_dir):
        os.chmod(os.path.join(bin_dir, name), 0o755)
    paths = dict.fromkeys([os.path.dirname(os.path.dirname(work_queue.__file__)),
                           sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": tmp, "PYTHONPATH": ":".join(paths)}
    user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    probe = subprocess.run([python, "-c", "import parsl, pytest, work_queue"], cwd=tmp,
                           env=env, capture_output=True, text=True, timeout=60, **user)
    if probe.returncode != 0:
        pytest.skip(f"running as root, and nobody cannot import parsl with {python}: "
                    f"{probe.stderr.strip()[-300:]}")
    return [python], env, user


def test_parsls_own_bad_std_tests_as_an_unprivileged_user():
    """Parsl's two tests themselves (``/bad/dir/t2.out``) with the executor of Parsl's
    ``workqueue_ex`` configuration (``coprocess=True``), as a user who may not create
    ``/bad``: ``nobody`` when the suite runs as root."""
    mode = "coprocess"
    import shutil
    import tempfile

    if os.path.exists("/bad"):
        pytest.skip("/bad exists here, so Parsl's tests cannot fail to open /bad/dir")
    tmp = tempfile.mkdtemp(prefix="wq-parsl-bad-std-")  # not under pytest's 0700 tmp_path
    try:
        os.chmod(tmp, 0o777)
        with open(os.path.join(tmp, "bad_std.py"), "w") as f:
            f.write(BAD_STD)
        if os.geteuid() == 0:
            python, env, user = _unprivileged(tmp)
        else:
            python, user = [sys.executable], {}
            env = dict(os.environ)
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        _check_bad_std(subprocess.run([*python, "bad_std.py", mode, "parsl"], cwd=tmp,
                                      env=env, capture_output=True, text=True, timeout=120,
                                      **user))
        assert not os.path.exists("/bad")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
