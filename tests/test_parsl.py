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
