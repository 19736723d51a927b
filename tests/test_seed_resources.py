"""The code samples of the documents this project was made from (the user's manual, the 2019
tutorial slides) that touch resources, categories, monitoring and logs, run as written with
real workers, giving what the text says.  Each test names its sample; the slides' obvious typos
are mended and said so."""

from __future__ import annotations

import json

import work_queue as wq

from .conftest import wait_all

#: The slides: "produce monitoring snapshots at certain events (e.g., a regexp in a log
#: appears, or a file is created/deleted)", ``t.specify_snapshot_file('snapshot-spec.json')``.
SNAPSHOT_SPEC = {
    "log.txt": {
        "events": [
            {"label": "started", "on-create": True},
            {"label": "halfway", "on-pattern": "^half"},
            {"label": "gone", "on-delete": True},
        ]
    }
}


def test_slides_snapshot_file_sees_a_file_the_task_creates_at_once(queue, workers, in_tmp):
    """CCTools' monitor looks at the watched files before it starts the task, so a file the
    task makes in its first instant is 'created' (ours looked only after the task started)."""
    with open("snapshot-spec.json", "w") as f:
        json.dump(SNAPSHOT_SPEC, f)
    queue.enable_monitoring()
    workers.start(queue.port)
    t = wq.Task("echo start > log.txt; sleep 1.2; echo half >> log.txt; sleep 1.2; "
                "rm log.txt; sleep 1.2")
    t.specify_snapshot_file('snapshot-spec.json')
    queue.submit(t)
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, (done.result, done.output)
    names = [s.snapshot_name for s in done.resources_measured.snapshots]
    assert names == ["started(1)", "halfway(1)", "gone(1)"], names


def test_manual_automatic_resource_management_sample(queue, workers):
    """The manual, "Automatic Resource Management", as written (``q.WORK_QUEUE_...``: the
    manual reads the mode constants from the queue): tasks in 'my-category-b' never use more
    than two cores, those in 'my-category-a' may use the largest worker."""
    q = queue
    q.enable_monitoring()
    q.specify_category_max_resources('my-category-a', {})
    q.specify_category_mode('my-category-a', q.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
    q.specify_category_max_resources('my-category-b', {'cores': 2})
    q.specify_category_mode('my-category-b', q.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
    q.specify_category_min_resources('my-category-a', {'memory': 512})
    workers.start(q.port, cores=4, memory=4000, disk=4000)
    for category in ('my-category-a', 'my-category-b'):
        t = wq.Task("true")
        t.specify_category(category)
        q.submit(t)
    done = {t.category: t for t in wait_all(q)}
    a, b = done['my-category-a'], done['my-category-b']
    assert a.result == b.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert (a.resources_allocated.cores, a.resources_allocated.memory) == (4, 4000)
    assert (b.resources_allocated.cores, b.resources_allocated.memory) == (2, 2000)


def test_slides_stats_by_category(queue, workers):
    """The slides: ``s = q.stats`` and ``s = q.stats_by_category('my-category')`` (their stray
    closing parenthesis left out)."""
    q = queue
    workers.start(q.port)
    t = wq.Task("true")
    t.specify_category('my-category')
    q.submit(t)
    wait_all(q)
    s = q.stats
    assert s.workers_idle >= 0 and s.tasks_done == 1
    s = q.stats_by_category('my-category')
    assert s.tasks_done == 1 and s.tasks_waiting == 0
    assert set(q.stats_by_category()) >= {'my-category'}
