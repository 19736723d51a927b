"""DaskWQ computes Dask graphs with real workers, and gets what Dask's own scheduler gets.

Each graph is computed twice: by DaskWQ (``scheduler=m.get``) and by Dask in this process
(``scheduler="sync"``).  Dask is an optional dependency (``pip install 'work-queue-py[dask]'``);
without it, or without numpy/pandas for the array and dataframe graphs, these tests are skipped.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
from collections.abc import Iterator

import cloudpickle
import pytest

dask = pytest.importorskip(
    "dask", reason="dask is not installed (pip install 'work-queue-py[dask]')")

from work_queue.dask_executor import DaskWQ  # noqa: E402

# The graphs' functions are defined here; the workers cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def m(in_tmp, workers) -> Iterator[DaskWQ]:
    q = DaskWQ(port=0)
    for _ in range(2):
        workers.start(q.port, cores=2)
    yield q
    q.close()


def inc(x: int) -> int:
    return x + 1


def add(x: int, y: int) -> int:
    return x + y


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"no {bad} wanted")
    return x


def test_importing_work_queue_does_not_import_dask():
    code = ("import sys, work_queue, ndcctools.work_queue; "
            "assert 'dask' not in sys.modules, 'dask imported'; "
            "assert work_queue.DaskWQ.__name__ == 'DaskWQ'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_delayed_graph(m):
    from dask import delayed

    a = [delayed(inc)(i) for i in range(10)]
    b = [delayed(add)(x, y) for x, y in zip(a, a[1:], strict=False)]
    total = delayed(sum)(b)
    assert total.compute(scheduler=m.get) == total.compute(scheduler="sync")
    # several collections at once, and Dask's configuration naming the scheduler
    with dask.config.set(scheduler=m.get):
        got = dask.compute(total, a[3], {"x": b[0]})
    assert got == dask.compute(total, a[3], {"x": b[0]}, scheduler="sync")


def test_plain_dict_graph_and_nested_keys(m):
    from ndcctools.work_queue_dask import DaskWQ as Same

    assert Same is DaskWQ
    dsk = {"x": 1, "y": (inc, "x"), "z": (operator.mul, "y", "y"), "w": (add, "z", "x")}
    assert m.get(dsk, "w") == 5
    assert m.get(dsk, ["z", ["y", "x"]]) == (4, (2, 1))
    assert m(dsk, ["w"]) == dask.get(dsk, ["w"])
    with pytest.raises(KeyError):
        m.get(dsk, "nope")


def test_array_reduction(m):
    da = pytest.importorskip("dask.array", reason="dask[array] (numpy) is not installed")
    import numpy as np

    x = da.random.default_rng(42).random((300, 200), chunks=(100, 50))
    y = ((x + x.T[:200, :].T) ** 2).sum(axis=0).mean()
    got = y.compute(scheduler=m.get)
    assert np.isclose(got, y.compute(scheduler="sync"))
    z = (x[:, :5] * 2).compute(scheduler=m.get, low_memory_mode=True)
    np.testing.assert_allclose(z, (x[:, :5] * 2).compute(scheduler="sync"))


def test_dataframe_groupby_sum(m):
    dd = pytest.importorskip("dask.dataframe",
                             reason="dask[dataframe] (pandas) is not installed")
    import pandas as pd

    pdf = pd.DataFrame({"k": [i % 7 for i in range(1000)], "v": range(1000),
                        "w": [i * 0.5 for i in range(1000)]})
    df = dd.from_pandas(pdf, npartitions=8)
    s = df.groupby("k")[["v", "w"]].sum()
    pd.testing.assert_frame_equal(s.compute(scheduler=m.get), s.compute(scheduler="sync"))
    pd.testing.assert_frame_equal(s.compute(scheduler="sync").sort_index(),
                                  pdf.groupby("k")[["v", "w"]].sum())


def test_a_task_that_raises_makes_compute_raise(m):
    from dask import delayed

    parts = [delayed(fail_on)(i, 7) for i in range(10)]
    total = delayed(sum)([delayed(inc)(p) for p in parts])
    with pytest.raises(ValueError, match="no 7 wanted") as local:
        total.compute(scheduler="sync")
    with pytest.raises(ValueError, match="no 7 wanted") as remote:
        total.compute(scheduler=m.get)
    assert type(remote.value) is type(local.value)
    assert "fail_on" in remote.value.remote_traceback
    # the graph's other tasks are gone; the manager computes the next graph
    assert m.empty()
    ok = delayed(sum)([delayed(fail_on)(i, -1) for i in range(10)])
    assert ok.compute(scheduler=m.get) == 45


def read_setting(name: str) -> str:
    with open("setting.txt") as f:
        return f"{os.environ.get(name)}:{f.read()}"


def test_options_reach_the_tasks(m, in_tmp, capsys):
    from dask import delayed

    with open("input.txt", "w") as f:
        f.write("from-file")
    v = delayed(read_setting)("DASK_WQ_TEST")
    got = v.compute(scheduler=m.get, env_vars={"DASK_WQ_TEST": lambda mgr, t: "set"},
                    extra_files={"input.txt": "setting.txt"}, resources={"cores": 1},
                    retries=2, verbose=True)
    assert got == "set:from-file"
    assert "read_setting" in capsys.readouterr().out
    assert m.stats_category("read_setting").tasks_done == 1
    with pytest.raises(ValueError):
        v.compute(scheduler=m.get, retries=0)


def analyze_chunk(i: int) -> dict[str, float]:
    """A Coffea-style processor: a chunk's events give a few accumulated numbers."""
    return {"events": 1000.0, "sumw": float(i) * 0.5, "n": 1.0}


def merge(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


def test_many_small_tasks(m):
    from dask import delayed

    level = [delayed(analyze_chunk)(i) for i in range(200)]
    while len(level) > 1:  # a tree reduction of the chunks' outputs, as Coffea's
        level = [delayed(merge)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    out = level[0].compute(scheduler=m.get)
    assert out == level[0].compute(scheduler="sync")
    assert out["n"] == 200.0
