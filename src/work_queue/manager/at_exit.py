"""Close every queue that is still open when the program ends, while threads still work.

A queue left in a module global or in a reference cycle is otherwise closed by ``__del__``
while the interpreter is finalizing, when ``Thread.start()`` blocks forever: its last catalog
update used to hang the program after its last statement.  :mod:`atexit` handlers run before
finalization, so closing the queues there lets the program exit as soon as they are closed.
"""

from __future__ import annotations

import atexit
import logging
import sys
import weakref
from typing import Any

logger = logging.getLogger("work_queue")

_open: weakref.WeakSet[Any] = weakref.WeakSet()


def track(queue: Any) -> None:
    """Close ``queue`` at exit if it is still open then (it must have a ``close()``)."""
    _open.add(queue)


def forget(queue: Any) -> None:
    _open.discard(queue)


def stop_parsl_submit_processes() -> int:
    """Tell the manager processes of Parsl's ``WorkQueueExecutor`` that the program is ending.

    Parsl runs the manager in a child process that loops until its executor's ``should_stop``
    is set, and since 2024 Parsl no longer shuts its executors down at exit (it only logs a
    warning).  A program that does not call ``parsl.dfk().cleanup()`` (the Jupyter tutorial's
    Parsl cells do not) then waits at exit forever for that child, inside
    :mod:`multiprocessing`'s own exit handler.  This handler runs before that one (handlers
    run last registered first, and :mod:`multiprocessing` is imported before we are), sets the
    flag, and the child closes its queue and ends within about a second.  Returns how many
    executors were told.
    """
    dflow = sys.modules.get("parsl.dataflow.dflow")
    executors_module = sys.modules.get("parsl.executors.workqueue.executor")
    if dflow is None or executors_module is None:
        return 0
    dfk = getattr(getattr(dflow, "DataFlowKernelLoader", None), "_dfk", None)
    told = 0
    for executor in list(getattr(dfk, "executors", {}).values()):
        flag = getattr(executor, "should_stop", None)
        if isinstance(executor, executors_module.WorkQueueExecutor) and flag is not None:
            flag.value = True
            told += 1
    return told


def close_all() -> None:
    """Close the queues still open (registered with :mod:`atexit`)."""
    try:
        stop_parsl_submit_processes()
    except Exception as e:  # Parsl's internals changed: nothing worse than before
        logger.debug("could not stop Parsl's Work Queue executors: %s", e)
    for queue in list(_open):
        try:
            queue.close()
        except Exception as e:  # one broken queue must not keep the others open
            logger.debug("closing a queue at exit failed: %s", e)


atexit.register(close_all)
