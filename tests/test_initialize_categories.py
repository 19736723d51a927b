"""``q.initialize_categories(filename, rm)``: first allocations learnt from a file of resource
summaries (CCTools' ``categories_initialize``), and ``q.estimate_capacity()``."""

from __future__ import annotations

import json

import pytest

import work_queue as wq


def _summaries(path, rows):
    # CCTools' rmsummary_parse_file_multiple reads JSON objects one after another.
    with open(path, "w") as f:
        for category, cores, memory, disk in rows:
            f.write(json.dumps({"category": category, "cores": [cores, "cores"],
                                "memory": [memory, "MB"], "disk": [disk, "MB"],
                                "wall_time": [2.5, "s"]}, indent=1))
            f.write("\n")


def test_first_allocation_comes_from_the_summaries(tmp_path):
    path = tmp_path / "summaries.json"
    _summaries(path, [("big", 2, 1500, 100)] * 3 + [("big", 1, 900, 300)]
               + [("small", 1, 80, 10)] * 2)
    q = wq.WorkQueue(port=0)
    try:
        q.specify_category_mode("big", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        q.specify_category_mode("small", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        q.initialize_categories(str(path), {})
        big = q._state.categories["big"].first_allocation
        small = q._state.categories["small"].first_allocation
        # MAX mode: the largest seen plus a third of a bucket, rounded up to the histograms'
        # buckets (CCTools: 1 core, 250 MB): 1500 + 83 -> 1750, 300 + 83 -> 500.
        assert (big.cores, big.memory, big.disk) == (2, 1750, 500)
        assert (small.cores, small.memory, small.disk) == (1, 250, 250)
        # the histograms are cleared afterwards: the learnt values are a starting point
        assert all(not h.buckets for h in q._state.categories["big"].histograms.values())
    finally:
        q.close()


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path):
    q = wq.WorkQueue(port=0)
    try:
        with pytest.raises(OSError):
            q.initialize_categories(str(tmp_path / "nope.json"), {})
        bad = tmp_path / "bad.json"
        bad.write_text('{"category": "x", "memory": [1, "MB"]} {not json')
        with pytest.raises(ValueError, match="bad.json"):
            q.initialize_categories(str(bad), {})
    finally:
        q.close()


def test_estimate_capacity_is_accepted_and_capacity_is_reported():
    q = wq.WorkQueue(port=0)
    try:
        assert q.estimate_capacity() is None  # CCTools: always on
        assert q.stats.capacity_tasks >= 0
    finally:
        q.close()
