"""The worker factory: scaling rule, batch-system backends, configuration file, main loop.

``work_queue_factory`` (:mod:`work_queue.cli.factory`) and the Python ``Factory`` class
(:mod:`work_queue.manager.factory`) are built on it.
"""

from __future__ import annotations

from .batch import (
    BATCH_TYPES,
    BatchError,
    BatchQueue,
    JobDescription,
    JobSpec,
    batch_queue_class,
    make_batch_queue,
)
from .config import ConfigError, ConfigWatcher, FactoryConfig, read_config_file
from .runner import Factory, ManagerSource, WorkerOptions
from .scaling import Plan, WorkerSize, manager_need, plan, workers_needed

__all__ = [
    "BATCH_TYPES", "BatchError", "BatchQueue", "JobDescription", "JobSpec", "batch_queue_class",
    "make_batch_queue", "ConfigError", "ConfigWatcher", "FactoryConfig", "read_config_file",
    "Factory", "ManagerSource", "WorkerOptions", "Plan", "WorkerSize", "manager_need", "plan",
    "workers_needed",
]
