"""``PythonTask``: a Python function and its arguments, run at a worker.

The function and ``(args, kwargs)`` are pickled with cloudpickle when the task is created and
sent as two small input buffers with a wrapper script (:mod:`work_queue.pytask_runner`, cached
at each worker); the pickled result comes back as an output the manager keeps in memory (or in
a temporary file when it is large).  Any Work Queue worker can run it, CCTools' included:
the command is ``python3 pytask_wrapper.py function.p args.p out.p 3.11``.

Our own worker announces :data:`~work_queue.protocol.extensions.PYTHON_WARM`; to such a worker
the manager marks Python tasks so the worker runs them in warm interpreters it keeps (cloudpickle
already imported) instead of starting a new interpreter for each one.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import sys
from typing import Any

from ..constants import WORK_QUEUE_CACHE, WORK_QUEUE_FILE, WORK_QUEUE_OUTPUT
from .files import make_file_spec
from .function_pickle import dumps_function
from .task import Task

try:
    import cloudpickle
except ImportError:  # pragma: no cover - cloudpickle is a dependency
    cloudpickle = None

#: True when PythonTask can be used (cloudpickle importable), as in CCTools.
pythontask_available = cloudpickle is not None

WRAPPER_NAME = "pytask_wrapper.py"
WRAPPER_SOURCE = (pathlib.Path(__file__).resolve().parent.parent / "pytask_runner.py").read_bytes()
PYTHON_VERSION = "%d.%d" % sys.version_info[:2]
PONCHO_RUN_NAME = "poncho_package_run"
PONCHO_RUN_SOURCE = str(pathlib.Path(__file__).resolve().parent.parent / "poncho" /
                        "package_run.py")


class PythonTaskNoResult(Exception):
    """The output of a PythonTask that did not run to completion (see ``t.result``)."""


def _pickle(what: str, value: Any, dumps: Any = None) -> bytes:
    if cloudpickle is None:
        raise RuntimeError("PythonTask needs the cloudpickle module: pip install cloudpickle")
    try:
        return (dumps or cloudpickle.dumps)(value)  # type: ignore[no-any-return]
    except Exception as e:
        raise TypeError(f"PythonTask cannot serialize {what} with cloudpickle: "
                        f"{type(e).__name__}: {e}") from e


class PythonTask(Task):
    """Run ``func(*args, **kwargs)`` at a worker; ``t.output`` is what it returned or raised."""

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        if not callable(func):
            raise TypeError(f"PythonTask needs a callable, not {type(func).__name__}")
        name = getattr(func, "__qualname__", repr(func))
        function_bytes = _pickle(f"function {name}", func, dumps_function)
        args_bytes = _pickle(f"the arguments of {name}", [args, kwargs])
        super().__init__(f"python{sys.version_info[0]} {WRAPPER_NAME} function.p args.p out.p "
                         f"{PYTHON_VERSION}")
        self.is_python = True
        self._value: Any = None
        self._has_value = False
        self.specify_buffer(WRAPPER_SOURCE, WRAPPER_NAME, flags=WORK_QUEUE_CACHE)
        self.specify_buffer(function_bytes, "function.p")
        self.specify_buffer(args_bytes, "args.p")
        out = make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_OUTPUT, "out.p", "out.p", 0)
        out.memory = True
        self._add(out)

    def specify_environment(self, env_file: str) -> None:
        """Run the function inside a packed (conda-pack) environment, ``env_file``.

        The worker unpacks it once into its workspace and shares it between tasks, through
        ``poncho_package_run`` (sent along with the task, as CCTools does).
        """
        if not os.path.exists(env_file):
            raise FileNotFoundError(f"environment {env_file!r} does not exist")
        name = os.path.basename(env_file)
        self.specify_input_file(PONCHO_RUN_SOURCE, PONCHO_RUN_NAME, cache=True)
        self.specify_input_file(env_file, name, cache=True)
        self.specify_command(f'python3 ./{PONCHO_RUN_NAME} -e {name} --unpack-to '
                             f'"$WORK_QUEUE_SANDBOX"/{name}-env {self.command}')
        self.is_python = False  # runs through the environment's own interpreter

    specify_package = specify_environment

    def clone(self) -> PythonTask:
        other = super().clone()
        assert isinstance(other, PythonTask)
        other._value, other._has_value = None, False
        return other

    def _reset_results(self) -> None:
        super()._reset_results()
        self._value = None
        self._has_value = False

    @property
    def output(self) -> Any:  # type: ignore[override]
        """The function's return value, the exception it raised (with ``remote_traceback``),
        or a :class:`PythonTaskNoResult` if it did not run to completion."""
        if self._has_value:
            return self._value
        from ..constants import WORK_QUEUE_RESULT_SUCCESS

        data = self.memory_outputs.get("out.p")
        if self.result != WORK_QUEUE_RESULT_SUCCESS or data is None:
            value: Any = PythonTaskNoResult(
                f"task {self.id} did not produce a result ({self.result_str}, exit code "
                f"{self.return_status}): {self.std_output.strip()[-2000:]}")
        else:
            try:
                value = _load_value(data)
            except Exception as e:
                value = e
        self._value, self._has_value = value, True
        if "memory_outputs" in self.__dict__:
            self.memory_outputs.pop("out.p", None)
        return value

    @property
    def std_output(self) -> str:
        """What the function printed (its result's text comes last, as in CCTools)."""
        return self._output.decode("utf-8", "replace")


def _load_value(data: bytes | io.BufferedIOBase) -> Any:
    """Unpickle a result kept in memory or in a temporary file."""
    if isinstance(data, bytes):
        return pickle.loads(data)
    data.seek(0)
    return pickle.load(data)
