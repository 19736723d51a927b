"""``specify_category_autolabel_resource``: which resources it takes, and what it changes.

CCTools 7.17.1 (``category_enable_auto_resource``: ``rmsummary_set`` on the category's
autolabel summary) keeps a flag for every resource of a resource summary and refuses other
names ("There is not a resource named ..."); only cores, memory, disk and gpus are ever
labelled (``labeled_resources`` in category.c).  Its Python binding passes one argument too
many and always raises TypeError, so no CCTools program depends on its -1 for a bad name: we
raise ValueError naming it."""

from __future__ import annotations

import pytest

import ndcctools.work_queue as nd
import work_queue as wq
from work_queue.core.categories import ALLOCATION_FIRST, Category
from work_queue.core.resources import Resources

#: ``resources_info`` of CCTools 7.17.1's dttools/src/rmsummary.c, in its order.
CCTOOLS_SUMMARY_RESOURCES = (
    "start", "end", "wall_time", "cpu_time", "memory", "virtual_memory", "swap_memory", "disk",
    "bytes_read", "bytes_written", "bytes_received", "bytes_sent", "bandwidth", "gpus", "cores",
    "cores_avg", "machine_cpus", "machine_load", "context_switches",
    "max_concurrent_processes", "total_processes", "total_files", "fs_nodes", "workers")


@pytest.mark.parametrize("module", [wq, nd], ids=["work_queue", "ndcctools"])
def test_every_resource_of_a_summary_is_accepted(module, in_tmp):
    q = module.WorkQueue(port=0)
    try:
        for name in CCTOOLS_SUMMARY_RESOURCES:
            assert q.specify_category_autolabel_resource("c", name, True) == 1, name
            assert q.specify_category_autolabel_resource("c", name, False) == 1, name
        with pytest.raises(ValueError, match="There is not a resource named 'ram'"):
            q.specify_category_autolabel_resource("c", "ram", True)
        with pytest.raises(ValueError, match="work_dir_num_files"):
            # an old name CCTools' limits still read, but no field of a summary
            q.specify_category_autolabel_resource("c", "work_dir_num_files", True)
    finally:
        q.close()


def measured(cores=1.0, memory=300, disk=120, gpus=0):
    r = Resources(cores=cores, memory=memory, disk=disk, gpus=gpus)
    r.wall_time = 1.0
    return r


def steady(c: Category, worker: Resources, **usage) -> None:
    for _ in range(c.steady_n_tasks + 1):
        c.accumulate(measured(**usage), True, worker)
    assert c.steady_state


def test_turning_memory_off_leaves_it_unlabelled():
    worker = Resources(cores=4, memory=4000, disk=4000, gpus=2)
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX, steady_n_tasks=5)
    c.set_autolabel("memory", False)
    steady(c, worker)
    first = c.task_max(Resources(), ALLOCATION_FIRST)
    assert (first.cores, first.memory, first.disk) == (1, -1, 250)


def test_gpus_are_labelled_only_when_asked_and_other_flags_change_nothing():
    worker = Resources(cores=4, memory=4000, disk=4000, gpus=2)
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX, steady_n_tasks=5)
    c.set_autolabel("gpus", True)
    c.set_autolabel("bytes_read", True)
    c.set_autolabel("wall_time", True)
    steady(c, worker, gpus=1)
    first = c.task_max(Resources(), ALLOCATION_FIRST)
    assert (first.cores, first.gpus, first.memory, first.disk) == (1, 1, 500, 250)
    assert first.wall_time == -1
    # a mode change sets cores, memory, disk and gpus again, as CCTools does, and no others
    c.set_mode(wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    assert c.autolabel["gpus"] is False and c.autolabel["bytes_read"] is True


def test_an_unknown_resource_is_refused_in_the_core():
    c = Category("c")
    with pytest.raises(ValueError, match="There is not a resource named 'ram'"):
        c.set_autolabel("ram", True)
    assert "ram" not in c.autolabel
