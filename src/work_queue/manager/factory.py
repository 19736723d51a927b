"""``Factory``: run ``work_queue_factory`` from Python, as a context manager.

::

    workers = work_queue.Factory("condor", "myproject")
    workers.cores = 4
    workers.max_workers = 20
    with workers:
        while not q.empty():
            t = q.wait(5)
            workers.max_workers = 50     # takes effect while it runs

Options are the factory's command-line options with ``_`` for ``-``. Those that may change
while it runs are kept in ``<scratch>/vine-factory-*/config.json``, which the factory re-reads;
the others become command-line options when it starts.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

COMMAND_LINE_OPTIONS = (
    "amazon-config", "autosize", "batch-options", "batch-type", "capacity", "catalog",
    "condor-requirements", "config-file", "cores", "debug", "debug-file", "debug-file-size",
    "disk", "env", "extra-options", "factory-timeout", "foremen-name", "gpus", "k8s-image",
    "k8s-worker-image", "max-workers", "manager-name", "memory", "mesos-master", "mesos-path",
    "mesos-preload", "min-workers", "password", "python-env", "python-package",
    "run-factory-as-manager", "runos", "scratch-dir", "ssl", "tasks-per-worker", "timeout",
    "worker-binary", "workers-per-cycle", "wrapper", "wrapper-input",
)
#: options written to the configuration file, so they can change while the factory runs
CONFIG_FILE_OPTIONS = (
    "autosize", "capacity", "cores", "disk", "factory-timeout", "foremen-name", "manager-name",
    "max-workers", "memory", "min-workers", "tasks-per-worker", "timeout", "workers-per-cycle",
    "condor-requirements",
)


def _find_exe(path: str | None, default: str) -> str:
    out = shutil.which(default) if path is None else path
    if out is None or not os.access(out, os.F_OK):
        raise OSError(errno.ENOENT, "Command not found", out or default)
    if not os.access(out, os.X_OK):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), out)
    return os.path.abspath(out)


class Factory:
    """A ``work_queue_factory`` for ``batch_type`` serving one manager.

    Give the manager as ``manager_name`` (a project name, found via the catalog),
    ``manager_host_port`` (``"host:port"``) or ``manager`` (a :class:`WorkQueue`; with the
    ``local`` batch type its workers connect to ``localhost:<port>``). A string given as
    ``manager`` is taken as the project name, as in ``Factory("condor", "myproject")``.
    """

    _command_line_options = COMMAND_LINE_OPTIONS
    _config_file_options = CONFIG_FILE_OPTIONS

    def __init__(self, batch_type: str = "local", manager: Any = None,
                 manager_host_port: str | None = None, manager_name: str | None = None,
                 factory_binary: str | None = None, worker_binary: str | None = None,
                 log_file: str = os.devnull) -> None:
        self._config_file: str | None = None
        self._factory_proc: subprocess.Popen[bytes] | None = None
        self._log_file = log_file
        self._error_file: str | None = None
        self._scratch_dir_run: str | None = None
        self._env_file: Any = None
        self._opts: dict[str, Any] = {}
        if isinstance(manager, str) and manager_name is None:
            manager, manager_name = None, manager
        self._set_manager(batch_type, manager, manager_host_port, manager_name)
        self._opts["batch-type"] = batch_type
        self._opts["worker-binary"] = _find_exe(worker_binary, "work_queue_worker")
        self._factory_cmd = self._factory_command(factory_binary)
        self._opts["scratch-dir"] = None

    @staticmethod
    def _factory_command(factory_binary: str | None) -> list[str]:
        if factory_binary is not None:
            return [_find_exe(factory_binary, "work_queue_factory")]
        found = shutil.which("work_queue_factory")
        if found is not None:
            return [os.path.abspath(found)]
        # not on PATH (e.g. a virtualenv that is not activated): this interpreter runs it
        return [sys.executable, "-m", "work_queue.cli.factory"]

    def _set_manager(self, batch_type: str, manager: Any, manager_host_port: str | None,
                     manager_name: str | None) -> None:
        if not (manager or manager_host_port or manager_name):
            raise ValueError("Either manager, manager_host_port, or manager_name or manager "
                             "should be specified.")
        if manager_name:
            self._opts["manager-name"] = manager_name
        if manager is not None:
            if batch_type == "local":
                manager_host_port = f"localhost:{manager.port}"
            elif getattr(manager, "name", None):
                self._opts["manager-name"] = manager.name
            else:
                import socket
                manager_host_port = f"{socket.getfqdn()}:{manager.port}"
            if getattr(manager, "using_ssl", False):
                self._opts["ssl"] = True
        if manager_host_port:
            parts = [x for x in manager_host_port.split(":") if x]
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError("manager_host_port is not of the form HOST:PORT")
            self._opts["manager-host"], self._opts["manager-port"] = parts

    # -- options as attributes ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        key = name.replace("_", "-")
        if key in COMMAND_LINE_OPTIONS:
            try:
                return object.__getattribute__(self, "_opts")[key]
            except KeyError:
                raise KeyError(f"{name} is a valid factory attribute, but has not been set "
                               "yet.") from None
        raise AttributeError(f"{name} is not a supported option")

    def __setattr__(self, name: str, value: Any) -> None:
        key = name.replace("_", "-")
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        elif self._factory_proc is not None:
            if key in CONFIG_FILE_OPTIONS:
                self._opts[key] = value
                self._write_config()
            elif key in COMMAND_LINE_OPTIONS:
                raise AttributeError(f"{name} cannot be changed once the factory is running.")
            else:
                raise AttributeError(f"{name} is not a supported option")
        elif key in COMMAND_LINE_OPTIONS:
            self._opts[key] = value
        else:
            raise AttributeError(f"{name} is not a supported option")

    # -- running -----------------------------------------------------------------------------
    def _construct_command_line(self) -> list[str]:
        assert self._config_file is not None
        args = [*self._factory_cmd, "--parent-death", "--config-file", self._config_file]
        opts = dict(self._opts)
        if opts["batch-type"] == "local":
            opts["extra-options"] = (opts.get("extra-options") or "") + " --parent-death"
        for opt, value in opts.items():
            if opt not in COMMAND_LINE_OPTIONS or opt in CONFIG_FILE_OPTIONS:
                continue
            if value is None or value is False:
                continue
            if value is True:
                args.append(f"--{opt}")
            else:
                args.append(f"--{opt}={value}")
        if "manager-host" in opts:
            args += [opts["manager-host"], str(opts["manager-port"])]
        return args

    def start(self) -> Factory:
        """Start the factory process (a running one only gets its configuration rewritten)."""
        if self._factory_proc is not None:
            self._write_config()
            return self
        if not self._opts.get("scratch-dir"):
            candidate = os.getcwd()
            if candidate.startswith("/afs") and self._opts["batch-type"] == "condor":
                candidate = os.environ.get("TMPDIR", "/tmp")
            candidate = os.path.join(candidate, f"wq-factory-{os.getuid()}")
            os.makedirs(candidate, exist_ok=True)
            self._opts["scratch-dir"] = candidate
        run_dir = tempfile.mkdtemp(prefix="vine-factory-", dir=self._opts["scratch-dir"])
        self._scratch_dir_run = run_dir
        atexit.register(shutil.rmtree, run_dir, True)
        self._error_file = os.path.join(run_dir, "error.log")
        self._config_file = os.path.join(run_dir, "config.json")
        self._write_config()
        with open(self._log_file, "a") as logfd, open(self._error_file, "w") as errfd:
            self._factory_proc = subprocess.Popen(self._construct_command_line(),
                                                  stdin=subprocess.DEVNULL, stdout=logfd,
                                                  stderr=errfd)
        # give the factory time to read its configuration (and to fail early on bad options)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and self._factory_proc.poll() is None:
            time.sleep(0.05)
        status = self._factory_proc.poll()
        if status is not None:
            self._factory_proc = None
            self._config_file = None
            with open(self._error_file) as f:
                error_log = f.read()
            raise RuntimeError(f"Could not execute work_queue_factory. Exited with status: "
                               f"{status}\n{error_log}")
        return self

    def stop(self) -> None:
        """Stop the factory; it cancels every worker it submitted before it exits."""
        if self._factory_proc is None:
            raise RuntimeError("Factory not yet started")
        proc = self._factory_proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait()
        self._factory_proc = None
        self._config_file = None

    def __enter__(self) -> Factory:
        return self.start()

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            if self._factory_proc is not None:
                self.stop()
        except (TypeError, RuntimeError, AttributeError, OSError):
            pass

    def _write_config(self) -> None:
        if self._config_file is None:
            return
        subset = {k: v for k, v in self._opts.items() if k in CONFIG_FILE_OPTIONS}
        tmp = self._config_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(subset, f, indent=4)
        os.replace(tmp, self._config_file)

    def specify_environment(self, env: Any) -> None:
        """Stored only, as in CCTools."""
        self._env_file = env

    specify_package = specify_environment
