"""The worker flags of CCTools 7.17.1 beyond the common ones (issue 18 item 6), with real
worker processes: --disable-symlinks, --bandwidth, --tcp-window-size, --volatility,
--debug-rotate-max, the foreman flags' errors, and the flags refused with a reason
(--disk-allocation, --tlq)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import pytest

import work_queue as wq
from tests.conftest import WORKER_CMD, wait_all, wait_until
from work_queue.cli.common import parse_metric
from work_queue.cli.worker import build_parser, foreman_config
from work_queue.cli.worker import main as worker_main

OURS = WORKER_CMD[0] == sys.executable
pytestmark = pytest.mark.skipif(not OURS, reason="these test our own worker's flags")


def test_metric_sizes_are_powers_of_1024_as_cctools_reads_them():
    assert parse_metric("100") == 100
    assert parse_metric("100K") == 100 << 10
    assert parse_metric("2M") == 2 << 20 and parse_metric("1G") == 1 << 30
    with pytest.raises(argparse.ArgumentTypeError):
        parse_metric("fast")


@pytest.mark.parametrize("flags, linked", [((), True), (("--disable-symlinks",), False)])
def test_disable_symlinks_gives_each_sandbox_its_own_copy(queue, workers, in_tmp, flags, linked):
    src = os.path.join(in_tmp, "big.dat")
    with open(src, "wb") as f:
        f.write(os.urandom(200_000))  # past the worker's in-memory limit: a cache file
    t = wq.Task("stat -c %h input.dat > count.txt; echo changed >> input.dat")
    t.specify_input_file(src, "input.dat", cache=True)
    t.specify_output_file("count.txt", "count.txt")
    queue.submit(t)
    workers.start(queue.port, *flags)
    (done,) = wait_all(queue)
    assert done.return_status == 0, done.output
    count = int(open(os.path.join(in_tmp, "count.txt")).read())
    assert (count > 1) is linked  # a hard link to the cache object, or a copy


def test_bandwidth_throttles_the_worker_transfers(queue, workers, in_tmp):
    t = wq.Task("head -c 150000 /dev/zero > out.dat; echo $WORK_QUEUE_BANDWIDTH > bw.txt")
    t.specify_output_file("out.dat", "out.dat")
    t.specify_output_file("bw.txt", "bw.txt")
    queue.submit(t)
    workers.start(queue.port, "--bandwidth", "100K")
    start = time.time()
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert os.path.getsize("out.dat") == 150000
    # 150000 bytes at 102400 B/s take at least 1.46 s to come back
    assert time.time() - start > 1.4
    # the tasks see the setting, as under CCTools (it sets WORK_QUEUE_BANDWIDTH)
    assert open("bw.txt").read().strip() == "100K"


def test_tcp_window_size_sets_the_socket_buffers(queue, workers, tmp_path):
    log = tmp_path / "worker.log"
    workers.start(queue.port, "-w", "40000", "-d", "all", "-o", str(log))
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    wait_until(lambda: "TCP window" in log.read_text(), queue)
    text = log.read_text()
    assert "TCP window 40000" in text
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-tmn", f"dport = :{queue.port}"], capture_output=True,
                             text=True).stdout
        # the kernel doubles what setsockopt asks for
        assert "rb80000" in out and "tb80000" in out, out


def test_volatility_disconnects_and_reconnects(queue, workers):
    t = wq.Task("true")
    queue.submit(t)
    workers.start(queue.port, "--volatility", "1", "--volatility-interval", "0.3")
    wait_until(lambda: queue.stats.workers_removed >= 2, queue, timeout=15)
    assert queue.stats.workers_joined >= 2


def test_no_volatility_by_default(queue, workers):
    workers.start(queue.port, "--volatility", "0", "--volatility-interval", "0.2")
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    deadline = time.time() + 1.0
    while time.time() < deadline:
        queue.wait(0.1)
    assert queue.stats.workers_removed == 0


def test_debug_rotate_max_rotates_the_debug_file(queue, workers, tmp_path):
    log = tmp_path / "worker.log"
    workers.start(queue.port, "-d", "all", "-o", str(log), "--debug-rotate-max", "2K")
    for i in range(10):
        queue.submit(wq.Task(f"echo {i}"))
    wait_all(queue)
    wait_until(lambda: os.path.exists(f"{log}.old"), queue)
    assert os.path.getsize(f"{log}.old") <= 4096


@pytest.mark.parametrize("flags, word", [
    (["--disk-allocation"], "loop device"),
    (["--tlq", "9300"], "TLQ"),
])
def test_refused_flags_say_why(capsys, flags, word):
    with pytest.raises(SystemExit) as e:
        worker_main([*flags, "localhost", "9123"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "not supported" in err


@pytest.mark.parametrize("flags, words", [
    (["--foreman-port", "high"], "PORT or PORT:HIGHPORT"),
    (["-f", "proj", "-M", "proj"], "share a name"),
])
def test_bad_foreman_flags_say_why(capsys, flags, words):
    # (foremen themselves: tests/test_foreman.py)
    if "-M" in flags:
        args = flags
    else:
        args = [*flags, "localhost", "9123"]
    with pytest.raises(SystemExit) as e:
        worker_main(args)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_foreman_only_flags_without_a_foreman_are_ignored_with_a_warning(capsys):
    parser = build_parser()
    args = parser.parse_args(["-F", "3", "--specify-log", "s.log", "localhost", "9123"])
    assert foreman_config(args) is None
    err = capsys.readouterr().err
    assert "-F only matters with --foreman" in err and "--specify-log only matters" in err
    for flags in (["--foreman"], ["-f", "fm"], ["--foreman-port", "9200:9300"], ["-Z", "p"]):
        assert foreman_config(parser.parse_args([*flags, "localhost", "9123"])) is not None
    assert foreman_config(parser.parse_args(["--foreman-port", "9200:9300", "h", "1"])
                          ).port == (9200, 9300)


def test_bad_values_are_refused(capsys):
    for flags in (["--bandwidth", "fast"], ["-w", "big"], ["--volatility", "often"]):
        with pytest.raises(SystemExit):
            worker_main([*flags, "localhost", "9123"])


def test_deprecated_flags_are_still_accepted(workers, queue):
    p = workers.start(queue.port, "-a", "-c", "-z", "100", "--memory-threshold", "100",
                      "-p", "9123", "--single-shot")
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    assert p.poll() is None
