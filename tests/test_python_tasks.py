"""PythonTask, its warm forked execution, and the map / pair / tree_reduce abstractions."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import threading
import venv

import cloudpickle
import pytest

import work_queue as wq
from tests.conftest import wait_all
from work_queue import pytask_runner

# The worker cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def my_sum(x, y, negate=False):
    return -(x + y) if negate else x + y


def leave_a_global():
    builtins.wq_left_behind = "leaked"
    return "set"


def sees_a_global():
    return hasattr(builtins, "wq_left_behind")


def fails(x):
    raise ValueError(f"bad value {x}")


def big(n):
    return b"x" * n


def test_python_task_values_kwargs_and_exceptions(queue, workers):
    tasks = [wq.PythonTask(my_sum, v, v) for v in range(1, 6)]
    tasks.append(wq.PythonTask(my_sum, 2, 3, negate=True))
    bad = wq.PythonTask(fails, 7)
    for t in [*tasks, bad]:
        queue.submit(t)
    workers.start(queue.port, cores=2)
    wait_all(queue)
    assert [t.output for t in tasks] == [2, 4, 6, 8, 10, -5]
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in tasks)
    assert isinstance(bad.output, ValueError) and str(bad.output) == "bad value 7"
    assert "raise ValueError" in bad.output.remote_traceback
    assert "fails" in bad.output.remote_traceback


def test_each_task_starts_clean(queue, workers):
    """A global one task leaves behind is not visible to the next one on the same worker."""
    first = wq.PythonTask(leave_a_global)
    queue.submit(first)
    workers.start(queue.port)
    wait_all(queue)
    second = wq.PythonTask(sees_a_global)
    queue.submit(second)
    wait_all(queue)
    assert first.output == "set" and second.output is False


def test_unpicklable_function_fails_at_construction():
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot serialize"):
        wq.PythonTask(lambda: lock)
    with pytest.raises(TypeError, match="cannot serialize the arguments"):
        wq.PythonTask(my_sum, lock, 1)
    with pytest.raises(TypeError, match="callable"):
        wq.PythonTask(42)


def test_huge_result_streams_to_a_file(queue, workers):
    n = 40 << 20
    t = wq.PythonTask(big, n)
    queue.submit(t)
    workers.start(queue.port, memory=2000)
    wait_all(queue, timeout=60)
    assert not isinstance(t.memory_outputs.get("out.p"), bytes)
    value = t.output
    assert len(value) == n and value[:3] == b"xxx"


def test_fresh_interpreter_without_cloudpickle_names_the_cause(queue, workers, tmp_path):
    bare = tmp_path / "bare-python"
    venv.create(bare, with_pip=False)
    env_path = f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}"
    t = wq.PythonTask(my_sum, 1, 2)
    queue.submit(t)
    workers.start(queue.port, "--disable-warm-python", extra_env={"PATH": env_path})
    (t,) = wait_all(queue)
    assert isinstance(t.output, wq.PythonTaskNoResult)
    assert "cloudpickle" in str(t.output) and "not installed" in str(t.output)


def test_fresh_interpreter_path_works(queue, workers):
    env_path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    t = wq.PythonTask(my_sum, 20, 22)
    queue.submit(t)
    workers.start(queue.port, "--disable-warm-python", extra_env={"PATH": env_path})
    wait_all(queue)
    assert t.output == 42


def test_runner_refuses_another_python_version(tmp_path, capsys):
    assert pytask_runner.main(["w", "f", "a", "o", "2.7"]) == 3
    assert "Python 2.7" in capsys.readouterr().out


def test_runner_script_is_standalone(tmp_path):
    (tmp_path / "function.p").write_bytes(cloudpickle.dumps(my_sum))
    (tmp_path / "args.p").write_bytes(cloudpickle.dumps([(1, 2), {}]))
    out = subprocess.run([sys.executable, pytask_runner.__file__, "function.p", "args.p",
                          "out.p"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "3\n"
    assert cloudpickle.loads((tmp_path / "out.p").read_bytes()) == 3


def dblfunc(x):
    return 2 * x


def mulfunc(p):
    return p[0] * p[1]


def maxfunc(p):
    return p[0] if p[0] > p[1] else p[1]


def test_manual_abstractions(queue, workers):
    workers.start(queue.port, cores=2)
    a = [1, 2, 3, 4]
    b = [2, 4, 6, 8]
    assert queue.map(dblfunc, a, 1) == [2, 4, 6, 8]
    # The manual prints "8, 18, 24, 32" at the end, a typo for 4*4 = 16.
    assert queue.pair(mulfunc, a, b, 2) == [2, 4, 6, 8, 4, 8, 12, 16, 6, 12, 18, 24,
                                            8, 16, 24, 32]
    assert queue.tree_reduce(maxfunc, b, 2) == 8
    results = queue.map(fails, [1, 2, 3], 2)
    assert len(results) == 3 and all(isinstance(r, ValueError) for r in results)


counter = 0


def bump_global():
    global counter
    counter += 1
    os.environ["WQ_LEAK"] = "yes"
    os.chdir("/")
    return counter


def read_state():
    return counter, os.environ.get("WQ_LEAK"), os.path.basename(os.getcwd()) != ""


def exit_hard(code):
    os._exit(code)


def sleep_long():
    import time

    time.sleep(30)


def test_globals_environment_and_cwd_do_not_leak(queue, workers):
    workers.start(queue.port)
    for f in (bump_global, bump_global, read_state):
        t = wq.PythonTask(f)
        queue.submit(t)
        (t,) = wait_all(queue)
        if f is bump_global:
            assert t.output == 1
    assert t.output == (0, None, True)


def test_interpreter_killed_by_its_task_is_replaced(queue, workers):
    workers.start(queue.port)
    dead = wq.PythonTask(exit_hard, 3)
    queue.submit(dead)
    (dead,) = wait_all(queue)
    assert isinstance(dead.output, wq.PythonTaskNoResult) and dead.return_status == 3
    ok = wq.PythonTask(my_sum, 1, 1)
    queue.submit(ok)
    wait_all(queue)
    assert ok.output == 2


def test_python_task_time_limit_and_cancel(queue, workers):
    slow = wq.PythonTask(sleep_long)
    slow.specify_running_time_max(1)
    stuck = wq.PythonTask(sleep_long)
    queue.submit(slow)
    queue.submit(stuck)
    workers.start(queue.port, cores=2)
    t = queue.wait(15)
    assert t is slow and t.result == wq.WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME
    assert queue.cancel_by_taskid(stuck.id) is stuck
    after = wq.PythonTask(my_sum, 2, 2)
    queue.submit(after)
    wait_all(queue)
    assert after.output == 4


# A function whose file exists only at the manager: the worker must still show its source.
_REMOTE_SCRIPT = """
import linecache, sys
from work_queue.manager.function_pickle import dumps_function
import cloudpickle
source = "import math\\n\\ndef boom(x):\\n    y = math.sqrt(x)\\n    raise KeyError(f'no {y}')\\n"
name = "/nonexistent-manager-dir/user_script.py"
linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # as IPython does
scope = {}
exec(compile(source, name, "exec"), scope)
open("function.p", "wb").write(dumps_function(scope["boom"]))
open("args.p", "wb").write(cloudpickle.dumps([(4,), {}]))
print(cloudpickle.__version__)
"""


def _remote_traceback_with(tmp_path, pythonpath):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    made = subprocess.run([sys.executable, "-c", _REMOTE_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    ran = subprocess.run([sys.executable, pytask_runner.__file__, "function.p", "args.p",
                          "out.p"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    error = cloudpickle.loads((tmp_path / "out.p").read_bytes())
    assert isinstance(error, KeyError)
    return made.stdout.strip(), error.remote_traceback


def _check_traceback(text):
    assert 'File "/nonexistent-manager-dir/user_script.py", line 5, in boom' in text, text
    assert "raise KeyError(f'no {y}')" in text, text


def test_remote_traceback_names_the_users_file_and_line(tmp_path):
    src = os.path.dirname(os.path.dirname(wq.__file__))
    version, text = _remote_traceback_with(tmp_path, src)
    assert version == cloudpickle.__version__
    _check_traceback(text)


def test_remote_traceback_with_the_oldest_cloudpickle_allowed(tmp_path):
    """pyproject.toml allows cloudpickle>=2.2.0 (the first release for Python 3.11)."""
    target = tmp_path / "old"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--disable-pip-version-check", "--target", str(target),
                          "cloudpickle==2.2.0"], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, f"cannot install cloudpickle 2.2.0 to test it: {pip.stderr}"
    src = os.path.dirname(os.path.dirname(wq.__file__))
    work = tmp_path / "work"
    work.mkdir()
    version, text = _remote_traceback_with(work, f"{target}{os.pathsep}{src}")
    assert version == "2.2.0"
    _check_traceback(text)
