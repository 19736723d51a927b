"""``RemoteTask``: call a function of a coprocess already running at the workers.

The task's command is the function name; its arguments travel as the JSON buffer ``infile``
(``{"fn_args": [...], "fn_kwargs": {...}, "remote_task_exec_method": ...}``), and its output is
the coprocess's JSON answer, ``{"Result": ..., "StatusCode": 200|500}``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import WorkQueueError
from .task import Task

EXEC_METHODS = ("fork", "direct", "thread")


class RemoteTaskError(WorkQueueError):
    """A RemoteTask of ``remote_map``/``remote_pair``/``remote_tree_reduce`` that did not give
    a result: the coprocess answered an error (``StatusCode`` 500), or the task failed."""

    def __init__(self, message: str, task_id: int, status_code: int | None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status_code = status_code


class RemoteTask(Task):
    """Invoke ``fn(*args, **kwargs)`` in the worker coprocess named ``coprocess``."""

    def __init__(self, fn: str, coprocess: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(fn)
        self.specify_coprocess(coprocess)
        self._event: dict[str, Any] = {"fn_kwargs": kwargs, "fn_args": list(args)}

    def specify_fn_args(self, args: list[Any] | None = None,
                        kwargs: dict[str, Any] | None = None) -> None:
        self._event["fn_args"] = list(args or [])
        self._event["fn_kwargs"] = dict(kwargs or {})

    def specify_exec_method(self, remote_task_exec_method: str) -> None:
        """How the coprocess runs the call: ``fork`` (default), ``direct`` or ``thread``."""
        if remote_task_exec_method not in EXEC_METHODS:
            raise ValueError(f"exec method must be one of {', '.join(EXEC_METHODS)}, not "
                             f"{remote_task_exec_method!r}")
        self._event["remote_task_exec_method"] = remote_task_exec_method

    def _before_submit(self) -> None:
        try:
            event = json.dumps(self._event)
        except TypeError as e:
            raise TypeError(f"RemoteTask arguments must be JSON serializable: {e}") from None
        self.files = [f for f in self.files if f.remote_name != "infile"]
        self.specify_buffer(event, "infile")
