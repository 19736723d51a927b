"""How a task is started: its environment, and the warm interpreters that run Python tasks
and the calls of RemoteTasks to the worker's coprocess.

A plain command is spawned by ``executor.start_process``; a PythonTask (coprocess
``wq-py-warm``) is handed to an idle warm interpreter with its function and arguments from
memory; a RemoteTask's call goes to the coprocess through a warm interpreter too, whose answer
becomes the task's output.
"""

from __future__ import annotations

import os
from typing import Any

from ..events import ReadWatcher
from ..protocol.task_block import TaskSpec
from .executor import TaskRun, output_file
from .pyexec import WarmInterpreter, make_coprocess_request, make_request

#: Names of the variables that tell a task how many cores it has.
CORE_VARIABLES = ("CORES", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_NUM_THREADS",
                  "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class Launcher:
    """Environments and warm interpreters of one session."""

    def __init__(self, workspace: str, watcher: ReadWatcher) -> None:
        self.workspace = workspace
        self.watcher = watcher
        self.idle_interpreters: list[WarmInterpreter] = []
        self.base_env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        self.env_cache: dict[tuple[Any, ...], dict[str, str]] = {}

    def task_env(self, spec: TaskSpec, run: TaskRun) -> dict[str, str]:
        """The environment of a task (kept: tasks that look alike in the same sandbox share
        one; it is only read)."""
        key = (tuple(spec.env), run.cores, run.memory, run.disk, run.gpus, run.sandbox)
        env = self.env_cache.get(key)
        if env is not None:
            return env
        env = dict(self.base_env)
        for name, value in spec.env:
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        # As the CCTools worker does: the worker's workspace, shared by its tasks (PythonTask
        # environments are unpacked there once, for every task).  The task's own sandbox is
        # its working directory.
        env.setdefault("WORK_QUEUE_SANDBOX", self.workspace)
        if run.cores > 0:
            cores = str(int(run.cores))
            for var in CORE_VARIABLES:
                env[var] = cores
        env["MEMORY"] = str(int(run.memory))
        env["DISK"] = str(int(run.disk))
        if run.gpus > 0:
            env["GPUS"] = str(int(run.gpus))
        # Temporary files of the task stay in (and are deleted with) its sandbox.
        env["TMPDIR"] = env["TEMP"] = env["TMP"] = run.sandbox
        if len(self.env_cache) > 256:
            self.env_cache.clear()
        self.env_cache[key] = env
        return env

    def start_warm(self, run: TaskRun, env: dict[str, str], now: float) -> bool:
        """Hand a Python task to a warm interpreter; False if it must run the usual way."""
        argv = run.spec.command.split()[1:]
        if len(argv) < 4:
            return False
        request = make_request(run.sandbox, env, argv, run.memory_inputs.get(argv[1]),
                               run.memory_inputs.get(argv[2]))
        if request is None:
            return False
        run.result_name = argv[3]
        return self.run_in_interpreter(run, request, now)

    def start_coprocess_call(self, run: TaskRun, now: float) -> bool:
        """A RemoteTask: a warm interpreter calls the coprocess; the answer is the output.
        False if the call could not be started."""
        path = os.path.join(run.sandbox, "infile")
        try:
            with open(path, "rb") as f:
                payload = f.read()
        except OSError:
            payload = b"{}"
        timeout = run.spec.wall_time if run.spec.wall_time > 0 else 3600.0
        request = make_coprocess_request(run.sandbox, run.coprocess.port, run.spec.command,
                                         run.spec.task_id, payload, timeout)
        return request is not None and self.run_in_interpreter(run, request, now)

    def run_in_interpreter(self, run: TaskRun, request: bytes, now: float) -> bool:
        """Hand ``request`` to an idle (or new) warm interpreter; False if that failed."""
        interp = self.idle_interpreters.pop() if self.idle_interpreters else WarmInterpreter()
        run.output_fd = output_file()
        run.result_fd = output_file()
        try:
            interp.start(run.spec.task_id, request, run.output_fd, run.result_fd)
        except OSError:
            interp.stop()
            for fd in (run.output_fd, run.result_fd):
                os.close(fd)
            run.output_fd = run.result_fd = -1
            return False
        run.interp = interp
        run.pid = interp.pid
        run.start = now
        self.watcher.register(interp.sock, interp)
        return True

    def stop(self) -> None:
        """At the end of the session: stop the idle interpreters."""
        for interp in self.idle_interpreters:
            interp.stop()
        self.idle_interpreters.clear()
