"""``remote_map``, ``remote_pair`` and ``remote_tree_reduce``: the manual's abstractions as
RemoteTasks, against a coprocess made by ``poncho_package_serverize`` and run by real workers.

Also the local ``map``/``pair``/``tree_reduce`` leave the application's own tasks alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import work_queue as wq
from tests.conftest import Workers, wait_all
from work_queue.cli.poncho_serverize import main as serverize

FUNCTIONS = textwrap.dedent('''
    def name():
        return "abstractions"

    def squares(values):
        return [v * v for v in values]

    def sums(pairs):
        return [a + b for a, b in pairs]

    def total(values):
        return sum(values)

    def longest(words):
        return max(words, key=len)

    def picky(values):
        if 13 in values:
            raise ValueError("13 is unlucky")
        return values

    def scalar(values):
        return len(values)
''')
SERVED = ["squares", "sums", "total", "longest", "picky", "scalar"]


@pytest.fixture(scope="module")
def coprocess(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("coprocess")
    (d / "functions.py").write_text(FUNCTIONS)
    dest = d / "coprocess.py"
    args = ["--src", str(d / "functions.py"), "--dest", str(dest)]
    for f in SERVED:
        args += ["--function", f]
    assert serverize(args) == 0
    return str(dest)


def _start(workers: Workers, q: wq.WorkQueue, coprocess: str, n: int = 2) -> None:
    workers.start(q.port, "--coprocess", coprocess, "--coprocesses-total", str(n), cores=n)


def test_remote_map_calls_the_function_once_per_chunk(queue, workers, coprocess):
    _start(workers, queue, coprocess)
    assert queue.remote_map("squares", list(range(7)), "abstractions", "values") == \
        [v * v for v in range(7)]
    # CCTools' keyword names; a last chunk shorter than the others
    assert queue.remote_map(fn="squares", seq=list(range(7)), coprocess="abstractions",
                            name="values", chunksize=3) == [v * v for v in range(7)]
    assert queue.stats.tasks_done == 7 + 3
    assert queue.remote_map("squares", [], "abstractions", "values") == []
    # a function that answers one value per chunk gives one value per chunk (TaskVine's rule)
    assert queue.remote_map("scalar", list(range(5)), "abstractions", "values", 2) == [2, 2, 1]


def test_remote_pair_over_the_cartesian_product(queue, workers, coprocess):
    _start(workers, queue, coprocess)
    seq1, seq2 = [1, 2, 3], [10, 20, 30]
    expected = [a + b for a in seq1 for b in seq2]
    assert queue.remote_pair("sums", seq1, seq2, "abstractions", "pairs") == expected
    assert queue.remote_pair("sums", seq1, seq2, "abstractions", "pairs", chunksize=4) == expected


def test_remote_tree_reduce_until_one_value(queue, workers, coprocess):
    _start(workers, queue, coprocess)
    assert queue.remote_tree_reduce("total", list(range(10)), "abstractions", "values") == 45
    before = queue.stats.tasks_done
    assert queue.remote_tree_reduce("total", list(range(10)), "abstractions", "values",
                                    chunksize=3) == 45
    assert queue.stats.tasks_done - before == 4 + 2 + 1  # 10 -> 4 -> 2 -> 1 values
    assert queue.remote_tree_reduce("longest", ["a", "abc", "ab", "abcd", "x"],
                                    "abstractions", "words") == "abcd"
    assert queue.remote_tree_reduce("total", [5], "abstractions", "values") == 5


def test_a_failing_call_gives_errors_not_garbage(queue, workers, coprocess):
    _start(workers, queue, coprocess)
    out = queue.remote_map("picky", [11, 12, 13, 14, 15], "abstractions", "values", 2)
    assert out[:2] == [11, 12] and out[4] == 15
    for bad in out[2:4]:  # the chunk [13, 14]: one error in place of each of its values
        assert isinstance(bad, wq.RemoteTaskError)
        assert bad.status_code == 500 and "13 is unlucky" in str(bad)
    with pytest.raises(wq.RemoteTaskError, match="13 is unlucky"):
        queue.remote_tree_reduce("picky", [12, 13, 14], "abstractions", "values")
    # a function the coprocess does not serve
    (missing,) = queue.remote_map("nope", [1], "abstractions", "values")
    assert isinstance(missing, wq.RemoteTaskError) and "nope" in str(missing)


def test_bad_arguments_are_refused_before_anything_is_submitted(queue):
    with pytest.raises(ValueError, match="identifier"):
        queue.remote_map("squares", [1], "abstractions", "not a name")
    with pytest.raises(ValueError, match="chunk size"):
        queue.remote_map("squares", [1], "abstractions", "values", chunksize=0)
    with pytest.raises(ValueError, match="at least 2"):
        queue.remote_tree_reduce("total", [1, 2], "abstractions", "values", chunksize=1)
    with pytest.raises(ValueError, match="empty"):
        queue.remote_tree_reduce("total", [], "abstractions", "values")
    with pytest.raises(TypeError, match="JSON"):
        queue.remote_map("squares", [object()], "abstractions", "values")
    assert queue.empty()


def test_the_applications_own_tasks_are_left_for_its_wait(queue, workers, coprocess):
    """The abstractions wait for their own tasks only; one the application submitted before
    comes back from its own ``wait`` afterwards (it was swallowed before)."""
    _start(workers, queue, coprocess)
    mine = wq.Task("echo mine")
    mine.specify_tag("0")  # the tag CCTools gives a first chunk
    queue.submit(mine)
    assert queue.remote_map("squares", [1, 2, 3], "abstractions", "values") == [1, 4, 9]
    assert queue.map(abs, [-1, -2]) == [1, 2]
    assert queue.tree_reduce(sum, [1, 2, 3]) == 6
    (back,) = wait_all(queue)
    assert back is mine and back.output == "mine\n"


def test_pair_runs_its_tasks_in_the_environment_it_is_given(queue, tmp_path: Path):
    """``pair(..., env=...)`` gives every chunk's task the environment (it was ignored);
    a missing one is a clear error before anything is submitted."""
    with pytest.raises(FileNotFoundError, match="no-such-env.tar.gz"):
        queue.pair(max, [1], [2], env=str(tmp_path / "no-such-env.tar.gz"))
    assert queue.empty()
