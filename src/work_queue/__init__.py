"""A pure-Python Work Queue, wire-compatible with CCTools Work Queue (protocol 11).

``import work_queue as wq`` and ``import ndcctools.work_queue as wq`` give the same API::

    q = wq.WorkQueue(port=0)
    t = wq.Task("gzip < my-file > my-file.gz")
    t.specify_input_file("my-file")
    t.specify_output_file("my-file.gz")
    q.submit(t)
    while not q.empty():
        t = q.wait(5)
"""

from __future__ import annotations

import os as _os

from .constants import *  # noqa: F403
from .constants import __all__ as _constant_names
from .core.resources import Resources
from .errors import (
    AuthenticationError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    WorkQueueError,
)
from .staging import cleanup_staging_directory
from .version import __version__

#: The manager's classes load on first use, so programs that need only part of the package
#: (the worker, work_queue_status, resource_monitor) start without importing the manager.
_LAZY = {
    "WorkQueue": ".manager.queue",
    "Task": ".manager.task",
    "PythonTask": ".manager.python_task",
    "PythonTaskNoResult": ".manager.python_task",
    "pythontask_available": ".manager.python_task",
    "RemoteTask": ".manager.remote_task",
    "RemoteTaskError": ".manager.remote_task",
    "Factory": ".manager.factory",
    # CCTools' module imports it from work_queue_display (ndcctools.work_queue_display here)
    "JupyterDisplay": ".manager.display",
}
#: Loaded on first use too, but left out of ``__all__``: ``from work_queue import *`` (which
#: ``ndcctools.work_queue`` does) must not import Dask, an optional dependency.
_LAZY_OPTIONAL = {
    "DaskWQ": ".dask_executor",
}


#: CCTools' ``$CCTOOLS_TEMP``, read at import as CCTools does: where ``staging_directory`` goes.
cctools_tmpdir = _os.getenv("CCTOOLS_TEMP", None)


def __getattr__(name: str) -> object:
    if name == "staging_directory":  # made on first use; left out of __all__ for that reason
        from .staging import staging_directory

        return staging_directory()
    module = _LAZY.get(name) or _LAZY_OPTIONAL.get(name)
    if module is None:
        raise AttributeError(f"module 'work_queue' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_OPTIONAL) | {"staging_directory"})


def specify_port_range(low_port: int, high_port: int) -> None:
    """Make port 0 pick from ``[low_port, high_port]`` (sets TCP_LOW_PORT / TCP_HIGH_PORT)."""
    if low_port > high_port:
        raise TypeError(f"low_port {low_port} should be smaller than high_port {high_port}")
    _os.environ["TCP_LOW_PORT"] = str(low_port)
    _os.environ["TCP_HIGH_PORT"] = str(high_port)


def set_debug_flag(*flags: str) -> None:
    """Turn on CCTools debug flags (``"all"``, ``"wq"``, ...) for managers made afterwards."""
    from .manager import logs

    logs.set_debug_flags(*flags)


def specify_debug_log(logfile: str) -> None:
    """Write the debug log of managers made afterwards to ``logfile`` (flag ``all``)."""
    from .manager import logs

    logs.specify_debug_log(logfile)


__all__ = [
    *_constant_names,
    *_LAZY,
    "Resources",
    "WorkQueueError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "AuthenticationError",
    "specify_port_range",
    "set_debug_flag",
    "specify_debug_log",
    "cleanup_staging_directory",
    "cctools_tmpdir",
    "__version__",
]
