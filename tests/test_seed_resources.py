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
