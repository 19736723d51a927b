"""Both import paths give the same API (the layers are checked in test_layering.py)."""

from __future__ import annotations

import pathlib

import ndcctools.work_queue as nd
import work_queue as wq

SRC = pathlib.Path(wq.__file__).parent


def test_both_import_paths_export_the_same_names():
    assert sorted(nd.__all__) == sorted(wq.__all__)
    for name in wq.__all__:
        assert getattr(nd, name) is getattr(wq, name), name


def test_cctools_constant_values():
    assert wq.WORK_QUEUE_DEFAULT_PORT == 9123
    assert wq.WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME == 56
    assert wq.WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR == 80
    assert wq.WORK_QUEUE_WATCH == 16 and wq.WORK_QUEUE_FAILURE_ONLY == 32
    assert wq.WORK_QUEUE_SUCCESS_ONLY == 64
    assert wq.WORK_QUEUE_TASK_CANCELED == 6 and wq.WORK_QUEUE_URL == 6
    assert wq.WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING == 8
    assert wq.work_queue_result_str(wq.WORK_QUEUE_RESULT_TASK_TIMEOUT) == "END_TIME"

