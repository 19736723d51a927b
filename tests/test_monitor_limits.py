"""Limits the resource monitor enforces, and what the worker's debug log says about them."""

from __future__ import annotations

import re

import pytest

import work_queue as wq

from .conftest import wait_all

WRITE_AND_WAIT = ("python3 -c 'open(\"big.dat\", \"wb\").write(b\"x\" * (30 << 20)); "
                  "import time; time.sleep(20)'")


def test_worker_debug_log_says_which_limit_was_broken(queue, workers, tmp_path):
    """``work_queue_worker -d all -o log``: the monitor's line for a broken limit
    (``rmsummary_check_limits``: "Resource limit for disk has been exceeded: 30 > 10 MB")."""
    log = tmp_path / "worker.debug"
    queue.enable_monitoring()
    # 1 core of 4: a quarter of the worker, 10 MB of disk
    workers.start(queue.port, "-d", "all", "-o", str(log), cores=4, memory=1000, disk=40)
    t = wq.Task(WRITE_AND_WAIT)
    t.specify_cores(1)
    queue.submit(t)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, done.output
    assert done.limits_exceeded.disk == 10
    text = log.read_text()
    assert re.search(r"Resource limit for disk has been exceeded: \d+ > 10 MB", text), \
        text[-3000:]


#: every field of CCTools' resource summary (``rmsummary.c`` ``resources_info``)
SUMMARY_FIELDS = ("start", "end", "wall_time", "cpu_time", "memory", "virtual_memory",
                  "swap_memory", "disk", "bytes_read", "bytes_written", "bytes_received",
                  "bytes_sent", "bandwidth", "gpus", "cores", "cores_avg", "machine_cpus",
                  "machine_load", "context_switches", "max_concurrent_processes",
                  "total_processes", "total_files", "fs_nodes", "workers")


def test_category_limits_accept_every_summary_field(queue):
    every = {name: 1000 + i for i, name in enumerate(SUMMARY_FIELDS)}
    queue.specify_category_max_resources("all", every)
    queue.specify_category_min_resources("all", {"cpu_time": 1, "bytes_sent": 2})
    queue.specify_category_first_allocation_guess("all", {"cores": 1, "swap_memory": 5})
    queue.specify_max_resources({"bandwidth": 10, "machine_load": 4})
    queue.specify_min_resources({"total_processes": 1})
    c = queue._state.categories.get("all")
    assert c.max_allocation.get("cpu_time") == every["cpu_time"]
    assert c.max_allocation.as_dict() == {k: float(v) for k, v in every.items()}
    # the old name of total_files
    queue.specify_category_max_resources("old", {"work_dir_num_files": 7})
    assert queue._state.categories.get("old").max_allocation.get("total_files") == 7
    with pytest.raises(ValueError, match="bogus_field"):
        queue.specify_category_max_resources("bad", {"cores": 1, "bogus_field": 3})
    with pytest.raises(ValueError, match="nonsense"):
        queue.specify_max_resources({"nonsense": 1})


def test_wrapped_command_passes_every_limit_to_the_monitor():
    """As CCTools' resource_monitor_write_command: one ``-L`` per limit, in its order."""
    from work_queue.core.resources import Resources
    from work_queue.manager import monitoring

    class FakeTask:
        id, category, command = 3, "c", "true"

    box = Resources(cores=1, memory=100, disk=100, gpus=0)
    box.set("cpu_time", 2.5)
    box.set("total_files", 40)
    wrapped = monitoring.MonitorConfig().wrap(FakeTask, box)
    assert ("-L 'cpu_time: 2.500000' -L 'memory: 100' -L 'disk: 100' -L 'cores: 1.000'"
            " -L 'total_files: 40'") in wrapped, wrapped


SPIN = "python3 -c 'while True: pass'"
FORKS = "for i in 1 2 3 4 5 6; do sleep 20 & done; wait"
WRITES = ("python3 -c 'import time\nwith open(\"w.dat\", \"wb\") as f:\n"
          "    f.write(b\"x\" * (20 << 20)); f.flush()\n    time.sleep(20)'")
FILES = ("python3 -c 'import time\nfor i in range(50): open(f\"f{i}\", \"w\").close()\n"
         "time.sleep(20)'")


@pytest.mark.parametrize("category,limits,command,field", [
    ("cpu", {"cpu_time": 1}, SPIN, "cpu_time"),
    ("procs", {"total_processes": 3}, FORKS, "total_processes"),
    ("concurrent", {"max_concurrent_processes": 3}, FORKS, "max_concurrent_processes"),
    ("written", {"bytes_written": 5}, WRITES, "bytes_written"),
    ("files", {"work_dir_num_files": 10}, FILES, "total_files"),
])
def test_category_limit_on_a_measured_field_is_enforced(queue, workers, category, limits,
                                                        command, field):
    queue.enable_monitoring()
    queue.specify_category_max_resources(category, {"cores": 1, **limits})
    workers.start(queue.port, cores=1, memory=1000, disk=1000)
    t = wq.Task(command)
    t.specify_category(category)
    queue.submit(t)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, (done.result, done.output)
    assert done.limits_exceeded is not None
    assert getattr(done.limits_exceeded, field) == list(limits.values())[0]
    assert getattr(done.resources_measured, field) > getattr(done.limits_exceeded, field)
    assert done.cmd_execution_time < 15e6  # killed, not left to run


def test_categories_alike_but_for_an_extra_limit_keep_their_own(queue, workers):
    """Allocation boxes are memoised: a limit beyond cores/memory/disk/gpus is part of it."""
    queue.enable_monitoring()
    queue.specify_category_max_resources("strict", {"cores": 1, "cpu_time": 1})
    queue.specify_category_max_resources("lenient", {"cores": 1})
    workers.start(queue.port, cores=2, memory=1000, disk=1000)
    spin = "python3 -c 'import time\nt = time.time()\nwhile time.time() - t < 2.5: pass'"
    strict, lenient = wq.Task(spin), wq.Task(spin)
    strict.specify_category("strict")
    lenient.specify_category("lenient")
    queue.submit(strict)
    queue.submit(lenient)
    wait_all(queue, timeout=30)
    assert strict.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert lenient.result == wq.WORK_QUEUE_RESULT_SUCCESS, lenient.limits_exceeded
