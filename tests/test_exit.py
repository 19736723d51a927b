"""Every program exits soon after its last statement, whatever state its queues are in.

Each case is a real program run as a subprocess: it prints ``LAST`` as its last statement, and
the test measures how long the process takes to end after that line arrives.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

import work_queue as wq
from work_queue.catalog.server import CatalogServer

#: How long a program may take to end after its last statement (issue 14).
EXIT_LIMIT = 2.0

COMMON = r'''
import atexit, os, subprocess, sys
import work_queue as wq


def start_worker(port):
    worker = subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--cores", "1",
                               "-t", "30", "-s", "ws", "localhost", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("WORKER", worker.pid, flush=True)
'''

CASES = {
    # a named queue in a reference cycle after one wait(), no catalog configured
    "named_cycle": r'''
class Holder:
    pass
h = Holder()
q = wq.WorkQueue(port=0, name="exit-test-cycle")
h.q, q.holder = q, h
q.submit(wq.Task("true"))
q.wait(0.2)
del q, h
''',
    # a subclass kept in a module global, a worker connected, tasks still running
    "subclass_global_busy": r'''
class MyQueue(wq.WorkQueue):
    pass
q = MyQueue(port=0)
for _ in range(3):
    q.submit(wq.Task("sleep 30"))
start_worker(q.port)
while q.stats.tasks_running < 1:
    q.wait(0.2)
''',
    # named, advertising to a catalog that answers
    "named_with_catalog": r'''
q = wq.WorkQueue(port=0, name="exit-test-catalog")
q.submit(wq.Task("sleep 30"))
start_worker(q.port)
while q.stats.tasks_running < 1:
    q.wait(0.2)
''',
    # collected only while the interpreter finalizes (our exit handler taken away)
    "collected_while_finalizing": r'''
import work_queue.manager.at_exit as at_exit
atexit.unregister(at_exit.close_all)
class Holder:
    pass
h = Holder()
q = wq.WorkQueue(port=0, name="exit-test-finalizing")
h.q, q.holder = q, h
q.submit(wq.Task("true"))
q.wait(0.2)
del q, h
''',
}


def run_to_exit(args: list[str], cwd: str, env: dict[str, str], timeout: float = 120,
                ) -> tuple[float, str, str]:
    """Run a program; returns (seconds from its ``LAST`` line to its exit, stdout, stderr)."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "LAST":
                break
            assert time.monotonic() < deadline, "the program never reached its end"
        last = time.monotonic()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the program did not exit within 30 s of its last statement: "
                        f"{''.join(lines)}")
        took = time.monotonic() - last
        rest_out, err = proc.communicate()
        return took, "".join(lines) + rest_out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for line in lines:  # workers the program started are not the program
            if line.startswith("WORKER "):
                try:
                    psutil.Process(int(line.split()[1])).kill()
                except psutil.Error:
                    pass


@pytest.mark.parametrize("case", sorted(CASES))
def test_program_exits_within_two_seconds(tmp_path, case):
    env = {**os.environ}
    env.pop("CATALOG_HOST", None)
    catalog = None
    if case == "named_with_catalog":
        catalog = CatalogServer(port=0, interface="127.0.0.1", name="localhost").start()
        env["CATALOG_HOST"] = f"127.0.0.1:{catalog.port}"
    try:
        script = tmp_path / "program.py"
        script.write_text(COMMON + CASES[case] + '\nprint("LAST", flush=True)\n')
        took, out, err = run_to_exit([sys.executable, str(script)], str(tmp_path), env)
    finally:
        if catalog is not None:
            catalog.stop()
    assert took < EXIT_LIMIT, f"{case}: exit took {took:.1f} s\n{out}\n{err}"
    assert "Traceback" not in err, err


def test_closing_at_exit_sends_the_last_catalog_update(tmp_path):
    """The exit handler closes a forgotten named queue properly: the catalog hears of it."""
    with CatalogServer(port=0, interface="127.0.0.1", name="localhost") as catalog:
        env = {**os.environ, "CATALOG_HOST": f"127.0.0.1:{catalog.port}"}
        script = tmp_path / "program.py"
        script.write_text(COMMON + 'q = wq.WorkQueue(port=0, name="exit-final")\n'
                          'print("LAST", flush=True)\n')
        took, _, err = run_to_exit([sys.executable, str(script)], str(tmp_path), env)
        assert took < EXIT_LIMIT, err
        names = [r.get("project") for r in catalog.snapshot()]
        assert "exit-final" in names


PARSL_TUTORIAL = r'''
import parsl
import os
from parsl.app.app import python_app
from parsl.configs.wqex_local import config

parsl.load(config)

@python_app
def square(a):
    return a * a

squares = []
for i in range(10):
    squares.append(square(i))

outputs = [i.result() for i in squares]
print(outputs)
'''


def _kill_workers_of(project: str) -> None:
    for proc in psutil.process_iter(["cmdline"]):
        if project in " ".join(proc.info["cmdline"] or []):
            try:
                proc.kill()
            except psutil.Error:
                pass


def _port_9123_is_free() -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", wq.WORK_QUEUE_DEFAULT_PORT))
        except OSError:
            return False
    return True


def test_parsl_tutorial_cells_complete_and_exit(tmp_path):
    """The tutorial's Parsl cells as written (wqex_local: a named manager on port 9123, its
    worker finding it by name) on a machine without a catalog, then the program ends although
    it never calls parsl.dfk().cleanup()."""
    pytest.importorskip("parsl")
    assert _port_9123_is_free(), "port 9123 (the tutorial's) is in use on this machine"
    env = {**os.environ}
    env.pop("CATALOG_HOST", None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    body = "\n".join("    " + line for line in PARSL_TUTORIAL.splitlines())
    script = tmp_path / "tutorial_parsl.py"
    # Parsl starts its manager with multiprocessing's spawn, which re-imports the main module.
    script.write_text('if __name__ == "__main__":\n' + body +
                      '\n    print("PROJECT", config.executors[0].project_name)'
                      '\n    print("LAST", flush=True)\n')
    out = ""
    try:
        took, out, err = run_to_exit([sys.executable, str(script)], str(tmp_path), env)
    finally:
        for line in out.splitlines():
            if line.startswith("PROJECT "):
                _kill_workers_of(line.split()[1])
    assert "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out, err
    assert took < EXIT_LIMIT, f"exit took {took:.1f} s\n{err}"


def test_parsl_tutorial_cells_in_a_jupyter_kernel(tmp_path):
    """The same cells in a real Jupyter kernel, one cell each as the tutorial has them; when
    the notebook's kernel shuts down, the manager's process ends with it."""
    pytest.importorskip("parsl")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    assert _port_9123_is_free(), "port 9123 (the tutorial's) is in use on this machine"
    cells = [
        "import parsl\nimport os \nfrom parsl.app.app import python_app\n"
        "from parsl.configs.wqex_local import config",
        "parsl.load(config)",
        "@python_app\ndef square(a):\n    return a * a",
        "squares = []\nfor i in range(10):\n    squares.append(square(i))\n    \n"
        "outputs = [i.result() for i in squares]\nprint(outputs)",
        "print(config.executors[0].project_name)",  # for the test: which worker to stop
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    old_path, old_catalog = os.environ.get("PATH", ""), os.environ.pop("CATALOG_HOST", None)
    os.environ["PATH"] = env_path  # the kernel (and the worker Parsl starts) inherit it
    project = ""
    try:
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        outputs = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
        project = outputs[-1].strip()
        assert "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n" in outputs
    finally:
        os.environ["PATH"] = old_path
        if old_catalog is not None:
            os.environ["CATALOG_HOST"] = old_catalog
        if project:
            _kill_workers_of(project)
    deadline = time.monotonic() + EXIT_LIMIT
    while any("submit/wait" in " ".join(p.info["cmdline"] or [])
              for p in psutil.process_iter(["cmdline"])):
        assert time.monotonic() < deadline, "Parsl's manager process outlived the kernel"
        time.sleep(0.1)
