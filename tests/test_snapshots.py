"""Snapshots of a monitored task's resources, triggered by files (``t.specify_snapshot_file``),
as CCTools' resource_monitor takes them (``--snapshot-events``)."""

from __future__ import annotations

import json
import os

import pytest

import work_queue as wq

from .conftest import wait_all

EVENTS = {
    "progress.log": {"events": [{"label": "half-way", "on-pattern": "^HALF", "count": 1}]},
    "done.flag": {"events": [{"label": "done", "on-create": True}]},
}

# 20 MB, a line in progress.log, 120 MB more, then a file appears; after each trigger the task
# waits for the snapshot file the monitor writes (cctools-monitor.snapshot.NN, as CCTools' does)
TASK = """\
import os, time
def wait_for(name):
    deadline = time.time() + 20
    while not os.path.exists(name) and time.time() < deadline:
        time.sleep(0.01)
a = b"a" * (20 << 20)
with open("progress.log", "a") as f:
    f.write("starting\\nHALF done\\n")
wait_for("cctools-monitor.snapshot.00")
b = b"b" * (120 << 20)
open("done.flag", "w").close()
wait_for("cctools-monitor.snapshot.01")
"""


def test_snapshots_with_our_worker(queue, workers, in_tmp):
    with open("events.json", "w") as f:
        json.dump(EVENTS, f)
    with open("task.py", "w") as f:
        f.write(TASK)
    queue.enable_monitoring("mon")
    workers.start(queue.port)
    t = wq.Task("python3 task.py")
    t.specify_input_file("task.py")
    t.specify_snapshot_file("events.json")
    queue.submit(t)
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, (done.result, done.output)
    snaps = done.resources_measured.snapshots
    assert [s.snapshot_name for s in snaps] == ["half-way(1)", "done(1)"], snaps
    first, second = snaps
    assert 15 <= first.memory < 100 and second.memory >= 120, (first.memory, second.memory)
    assert first.end <= second.start + 1e-3 and second.wall_time > 0
    with open(os.path.join("mon", f"wq-{os.getpid()}-task-{done.id}.summary")) as f:
        summary = json.load(f)
    assert [s["snapshot_name"] for s in summary["snapshots"]] == ["half-way(1)", "done(1)"]
    assert summary["snapshots"][0]["memory"][1] == "MB"


def test_watch_events_as_cctools_reads_them(tmp_path):
    from work_queue.monitor.snapshots import SnapshotWatcher, parse_events

    watcher = SnapshotWatcher(parse_events({
        "log": {"from-start": True, "events": [
            {"label": "err", "on-pattern": "ERROR"},
            {"label": "once", "on-pattern": "x", "count": 1}]},
        "flag": {"delete-if-found": True, "events": [{"label": "flag", "on-create": True}]},
        "gone": {"events": [{"label": "bye", "on-delete": True}]},
    }), str(tmp_path))
    assert watcher.poll() is None
    (tmp_path / "log").write_text("ERROR x\nfine x\nERROR\n")
    (tmp_path / "flag").write_text("")
    assert watcher.poll() == "err(2),once(1),flag(1)"
    assert not (tmp_path / "flag").exists()       # delete-if-found
    with open(tmp_path / "log", "a") as f:
        f.write("x again\n")
    assert watcher.poll() is None                  # "once" reached its count
    (tmp_path / "gone").write_text("")
    assert watcher.poll() is None                  # created: nobody asked for that
    (tmp_path / "gone").unlink()
    assert watcher.poll() == "bye(1)"


@pytest.mark.parametrize("spec,message", [
    ({"f": {"events": [{"label": "bad label", "on-create": True}]}}, "not in"),
    ({"f": {"events": [{"label": "x"}]}}, "Exactly one"),
    ({"f": {"events": [{"label": "x", "on-create": True, "on-pattern": "y"}]}}, "Exactly one"),
    ({"f": {}}, "did not define any events"),
    ({"f": []}, "Not of the form"),
])
def test_bad_watch_events_are_refused(spec, message):
    from work_queue.monitor.snapshots import parse_events

    with pytest.raises(ValueError, match=message):
        parse_events(spec)


def test_resource_monitor_snapshot_events(tmp_path):
    """``resource_monitor --snapshot-events`` (what a CCTools worker runs, wrapped by the
    manager): the snapshots in the summary and in ``<template>.snapshot.NN``."""
    import subprocess
    import sys

    (tmp_path / "ev.json").write_text(json.dumps(EVENTS))
    (tmp_path / "task.py").write_text(TASK.replace("cctools-monitor.", "out."))
    proc = subprocess.run([sys.executable, "-m", "work_queue.cli.resource_monitor",
                           "--no-pprint", "--snapshot-events", "ev.json", "-O", "out",
                           "--", sys.executable, "task.py"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0
    summary = json.loads((tmp_path / "out.summary").read_text())
    assert [s["snapshot_name"] for s in summary["snapshots"]] == ["half-way(1)", "done(1)"]
    first = json.loads((tmp_path / "out.snapshot.00").read_text())
    assert first["snapshot_name"] == "half-way(1)" and first["memory"][0] >= 15


def test_wrapped_command_names_the_events_file():
    from work_queue.core.resources import Resources
    from work_queue.manager import monitoring

    t = wq.Task("true")
    t.specify_snapshot_file("events.json")
    wrapped = monitoring.MonitorConfig().wrap(t, Resources(cores=1, memory=10, disk=10))
    assert "-V 'category: default' --snapshot-events cctools-monitorevents.json" in wrapped
