"""``from ndcctools.work_queue_dask import DaskWQ``: CCTools' module name for the Dask scheduler.

This module holds no logic (see :mod:`work_queue.dask_executor`); importing it needs Dask.
"""

from work_queue.dask_executor import DaskOptions, DaskWQ, DaskWQExecutionError

__all__ = ["DaskWQ", "DaskOptions", "DaskWQExecutionError"]
