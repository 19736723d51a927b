"""``Task``: a command line with its files, resources and, once done, its results.

The ``specify_*`` methods and result properties keep the CCTools Python names so existing
programs run unchanged.  Times in result properties are microseconds since the epoch, as in
CCTools; ``specify_running_time_max/min`` take seconds, as the manual says (CCTools stores
them as microseconds by mistake; we do not copy that).
"""

from __future__ import annotations

import copy
import math
import os
import types

from ..constants import (
    WORK_QUEUE_BUFFER,
    WORK_QUEUE_CACHE,
    WORK_QUEUE_DIRECTORY,
    WORK_QUEUE_FAILURE_ONLY,
    WORK_QUEUE_FILE,
    WORK_QUEUE_FILE_PIECE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_NOCACHE,
    WORK_QUEUE_OUTPUT,
    WORK_QUEUE_REMOTECMD,
    WORK_QUEUE_RESULT_UNKNOWN,
    WORK_QUEUE_SCHEDULE_UNSET,
    WORK_QUEUE_TASK_UNKNOWN,
    WORK_QUEUE_URL,
    work_queue_result_str,
)
from ..core.resources import Resources
from ..core.rmsummary import ResourceSummary
from .files import FileSpec, make_file_spec


def _file_flags(flags: int | None, cache: bool | None, failure_only: bool | None = None) -> int:
    """CCTools ``_determine_file_flags``: start from ``flags`` or NOCACHE, then apply options."""
    value = WORK_QUEUE_NOCACHE if flags is None else int(flags)
    if cache is not None:
        value = value | WORK_QUEUE_CACHE if cache else value & ~WORK_QUEUE_CACHE
    if failure_only is not None:
        value = (value | WORK_QUEUE_FAILURE_ONLY if failure_only
                 else value & ~WORK_QUEUE_FAILURE_ONLY)
    return value


class Task:
    """A unit of work: a shell command run in a sandbox on a worker."""

    def __init__(self, command: str) -> None:
        if not isinstance(command, str):
            raise TypeError(f"Task command must be a string, not {type(command).__name__}")
        self._command = command
        self.resources_requested = Resources()

    # Defaults live on the class, so a task only stores what was set on it: a million queued
    # tasks then fit in far less memory (and cost the garbage collector less).  Assigning on
    # an instance works as usual; features and files get their own set/list on first change.
    features: frozenset[str] | set[str] = frozenset()
    files: tuple[FileSpec, ...] | list[FileSpec] = ()
    _tag: str | None = None
    _category = "default"
    _coprocess: str | None = None
    env: dict[str, str | None] = types.MappingProxyType({})  # type: ignore[assignment]
    priority = 0.0
    max_retries = 0
    algorithm = WORK_QUEUE_SCHEDULE_UNSET
    resources_min = Resources()
    end_time = 0.0  # absolute, seconds since epoch
    start_time_min = 0.0
    min_running_time = 0.0
    monitor_output_directory: str | None = None
    monitor_snapshot_file: str | None = None
    #: A PythonTask: may run in a warm interpreter on workers that offer it.
    is_python = False
    #: Called by submit() before the task is queued (a RemoteTask checks its coprocess).
    _before_submit = None
    # results
    id = 0
    state = WORK_QUEUE_TASK_UNKNOWN
    result = WORK_QUEUE_RESULT_UNKNOWN
    return_status = -1
    _output = b""
    try_count = 0
    worker_key = -1
    hostname: str | None = None
    host: str | None = None
    memory_outputs: dict[str, object] = types.MappingProxyType({})  # type: ignore[assignment]
    resources_allocated = Resources()
    resources_measured = ResourceSummary()
    limits_exceeded: Resources | None = None
    exhausted_attempts = 0
    time_when_submitted = 0.0
    #: FIRST (0) or MAX (1): the allocation label the task is tried with (categories.py).
    resource_request = 0
    #: Files the resource monitor adds to the current attempt (manager/monitoring.py).
    _monitor_files: tuple = ()
    #: How the current attempt is monitored: None, "native" (our worker) or "wrapped".
    _monitor_mode: str | None = None
    #: The summary our worker sent for the current attempt.
    _summary_text: str | None = None
    #: How many times fast abort took this task back from a slow worker.
    fast_abort_count = 0
    #: Workers whose connection died, one after another, while this task was on them.
    workers_lost_in_a_row = 0
    #: Measured resources of the last attempt (monitoring), or None.
    measured = None

    def _reset_results(self) -> None:
        """Forget the results of a previous run (back to the class defaults)."""
        for name in _RESULT_FIELDS:
            self.__dict__.pop(name, None)

    # -- command, identity --------------------------------------------------------------------

    def clone(self) -> Task:
        """A copy with the same specification, ready to be submitted again."""
        other = copy.copy(self)
        if "features" in self.__dict__:
            other.features = set(self.features)
        if "files" in self.__dict__:
            other.files = list(self.files)
        if "env" in self.__dict__:
            other.env = dict(self.env)
        other.resources_requested = self.resources_requested.copy()
        other._reset_results()
        return other

    def specify_command(self, command: str) -> int:
        self._command = command
        return 1

    def specify_coprocess(self, coprocess: str | None) -> int:
        """Run this task's command as a function of the worker coprocess named ``coprocess``.

        Only workers started with such a coprocess (feature ``wq_worker_coprocess:<name>``)
        get the task, as in CCTools.
        """
        features = self._own_features()
        if self._coprocess:
            features.discard(self._coprocess)
        self._coprocess = f"wq_worker_coprocess:{coprocess}" if coprocess else None
        if self._coprocess:
            features.add(self._coprocess)
        return 1

    def specify_algorithm(self, algorithm: int) -> int:
        self.algorithm = int(algorithm)
        return 1

    def specify_tag(self, tag: str) -> int:
        self._tag = str(tag)
        return 1

    def specify_category(self, name: str) -> int:
        self._category = str(name)
        return 1

    def specify_feature(self, name: str) -> int:
        self._own_features().add(str(name))
        return 1

    def _own_features(self) -> set[str]:
        features = self.__dict__.get("features")
        if features is None:
            features = self.features = set()
        return features  # type: ignore[no-any-return]

    def specify_priority(self, priority: float) -> int:
        self.priority = float(priority)
        return 1

    def specify_max_retries(self, max_retries: int) -> int:
        """Allow ``max_retries`` + 1 dispatches; below 1 means unlimited."""
        self.max_retries = max(0, int(max_retries))
        return 1

    def specify_environment_variable(self, name: str, value: str | None = None) -> int:
        """Set ``name`` in the task's environment (``None`` asks to unset it)."""
        if "=" in name or not name:
            raise ValueError(f"bad environment variable name {name!r}")
        if "env" not in self.__dict__:
            self.env = {}
        self.env[name] = None if value is None else str(value)
        return 1

    def specify_monitor_output(self, directory: str) -> int:
        self.monitor_output_directory = directory
        return 1

    # -- resources ----------------------------------------------------------------------------

    def _set_resource(self, name: str, value: float) -> int:
        if value is None:
            value = -1
        setattr(self.resources_requested, name, -1.0 if value < 0 else float(value))
        return 1

    def specify_cores(self, cores: float) -> int:
        return self._set_resource("cores", cores)

    def specify_memory(self, memory: float) -> int:
        return self._set_resource("memory", memory)

    def specify_disk(self, disk: float) -> int:
        return self._set_resource("disk", disk)

    def specify_gpus(self, gpus: float) -> int:
        return self._set_resource("gpus", gpus)

    def specify_end_time(self, useconds: float) -> int:
        """Absolute deadline in microseconds since the epoch (stored in seconds, rounded up)."""
        self.end_time = 0.0 if useconds <= 0 else math.ceil(useconds / 1e6)
        return 1

    def specify_start_time_min(self, useconds: float) -> int:
        self.start_time_min = 0.0 if useconds <= 0 else useconds / 1e6
        return 1

    def specify_running_time_max(self, seconds: float) -> int:
        """Kill the task after it ran ``seconds`` seconds (manual units, not microseconds)."""
        self.resources_requested.wall_time = -1 if seconds <= 0 else float(seconds)
        return 1

    def specify_running_time(self, useconds: float) -> int:
        """Deprecated CCTools spelling taking microseconds."""
        return self.specify_running_time_max(useconds / 1e6 if useconds > 0 else -1)

    def specify_running_time_min(self, seconds: float) -> int:
        self.min_running_time = max(0.0, float(seconds))
        return 1

    # -- files --------------------------------------------------------------------------------

    def _add(self, spec: FileSpec) -> int:
        for other in self.files:
            if other.remote_name == spec.remote_name and other.direction == spec.direction:
                return 0  # conflicting remote names, like CCTools
        if "files" not in self.__dict__:
            self.files = []
        self.files.append(spec)  # type: ignore[union-attr]
        return 1

    def specify_file(self, local_name: str, remote_name: str | None = None,
                     type: int | None = None, flags: int | None = None,
                     cache: bool | None = None, failure_only: bool | None = None) -> int:
        """Add an input (default) or output file; the remote name defaults to the basename."""
        local_name = os.fspath(local_name)
        if remote_name is None:
            remote_name = os.path.basename(local_name)
        direction = WORK_QUEUE_INPUT if type is None else int(type)
        if direction not in (WORK_QUEUE_INPUT, WORK_QUEUE_OUTPUT):
            raise ValueError(f"file type must be WORK_QUEUE_INPUT or WORK_QUEUE_OUTPUT, "
                             f"not {type!r}")
        return self._add(make_file_spec(WORK_QUEUE_FILE, direction, local_name, remote_name,
                                        _file_flags(flags, cache, failure_only)))

    def specify_input_file(self, local_name: str, remote_name: str | None = None,
                           flags: int | None = None, cache: bool | None = None) -> int:
        return self.specify_file(local_name, remote_name, WORK_QUEUE_INPUT, flags, cache)

    def specify_output_file(self, local_name: str, remote_name: str | None = None,
                            flags: int | None = None, cache: bool | None = None,
                            failure_only: bool | None = None) -> int:
        return self.specify_file(local_name, remote_name, WORK_QUEUE_OUTPUT, flags, cache,
                                 failure_only)

    def specify_file_piece(self, local_name: str, remote_name: str | None = None,
                           start_byte: int = 0, end_byte: int = 0, type: int | None = None,
                           flags: int | None = None, cache: bool | None = None,
                           failure_only: bool | None = None) -> int:
        """Send bytes ``start_byte..end_byte`` (inclusive) of a local file."""
        if end_byte < start_byte:
            raise ValueError(f"end_byte {end_byte} is before start_byte {start_byte}")
        if remote_name is None:
            remote_name = os.path.basename(local_name)
        direction = WORK_QUEUE_INPUT if type is None else int(type)
        if direction != WORK_QUEUE_INPUT:
            raise ValueError("file pieces can only be inputs")
        return self._add(make_file_spec(WORK_QUEUE_FILE_PIECE, direction, local_name,
                                        remote_name, _file_flags(flags, cache, failure_only),
                                        start_byte, end_byte - start_byte + 1))

    def specify_directory(self, local_name: str, remote_name: str | None = None,
                          type: int | None = None, flags: int | None = None,
                          recursive: bool = False, cache: bool | None = None,
                          failure_only: bool | None = None) -> int:
        """An input directory (``recursive=True`` sends its contents) or an output directory."""
        local_name = os.fspath(local_name)
        if remote_name is None:
            remote_name = os.path.basename(local_name.rstrip("/"))
        direction = WORK_QUEUE_INPUT if type is None else int(type)
        spec = make_file_spec(WORK_QUEUE_DIRECTORY, direction, local_name, remote_name,
                              _file_flags(flags, cache, failure_only))
        spec.empty_dir = direction == WORK_QUEUE_INPUT and not recursive
        return self._add(spec)

    def specify_buffer(self, buffer: str | bytes, remote_name: str, flags: int | None = None,
                       cache: bool | None = None) -> int:
        """An input file whose contents are ``buffer``."""
        data = buffer.encode() if isinstance(buffer, str) else bytes(buffer)
        return self._add(make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, data, remote_name,
                                        _file_flags(flags, cache)))

    def specify_url(self, url: str, remote_name: str, type: int | None = None,
                    flags: int | None = None, cache: bool | None = None,
                    failure_only: bool | None = None) -> int:
        """An input fetched by the worker from ``url``."""
        if type is not None and int(type) == WORK_QUEUE_OUTPUT:
            raise ValueError("specify_url only accepts inputs")
        return self._add(make_file_spec(WORK_QUEUE_URL, WORK_QUEUE_INPUT, url, remote_name,
                                        _file_flags(flags, cache, failure_only)))

    def specify_file_command(self, cmd: str, remote_name: str, type: int | None = None,
                             flags: int | None = None, cache: bool | None = None,
                             failure_only: bool | None = None) -> int:
        """An input produced at the worker by ``cmd``, where ``%%`` stands for the file."""
        if "%%" not in cmd:
            raise ValueError(f"file command {cmd!r} must contain %% (the output path)")
        if type is not None and int(type) == WORK_QUEUE_OUTPUT:
            raise ValueError("specify_file_command only accepts inputs")
        return self._add(make_file_spec(WORK_QUEUE_REMOTECMD, WORK_QUEUE_INPUT, cmd,
                                        remote_name, _file_flags(flags, cache, failure_only)))

    def specify_snapshot_file(self, filename: str) -> int:
        """When monitored, take snapshots of the task's resources when the files that
        ``filename`` (JSON, see ``work_queue.monitor.snapshots``) names appear, change or
        match; they are in ``t.resources_measured.snapshots``."""
        self.monitor_snapshot_file = filename
        return self.specify_input_file(filename, "cctools-monitorevents.json", cache=True)

    def cached_input_names(self) -> dict[str, int]:
        out = {}
        for f in self.files:
            if f.is_input and f.cached and f.type in (WORK_QUEUE_FILE, WORK_QUEUE_FILE_PIECE):
                try:
                    out[f.cachename] = f.length or os.stat(str(f.source)).st_size
                except OSError:
                    pass
        return out

    # -- results ------------------------------------------------------------------------------

    @property
    def command(self) -> str:
        return self._command

    @property
    def tag(self) -> str | None:
        return self._tag

    @property
    def category(self) -> str:
        return self._category

    @property
    def coprocess(self) -> str | None:
        return self._coprocess

    @property
    def output(self) -> str:
        """Standard output and error of the command, merged."""
        return self._output.decode("utf-8", "replace")

    @property
    def std_output(self) -> str:
        return self.output

    @property
    def result_str(self) -> str:
        return work_queue_result_str(self.result)

    @property
    def taskid(self) -> int:
        return self.id

    @property
    def total_submissions(self) -> int:
        return self.try_count

    @property
    def submit_time(self) -> int:
        """When the task was last submitted, in microseconds since the epoch (CCTools'
        ``submit_time``); derived, so that submit() writes one time, not two."""
        return int(self.time_when_submitted * 1e6)

    @property
    def total_bytes_transferred(self) -> int:
        return self.total_bytes_sent + self.total_bytes_received

    def __repr__(self) -> str:
        return f"<Task {self.id} {self._command[:40]!r} state={self.state}>"


#: Timing and byte counters of a finished task (microseconds / bytes), CCTools names.
_TIMING_FIELDS: tuple[str, ...] = (
    "submit_time", "finish_time", "app_delay", "send_input_start", "send_input_finish",
    "execute_cmd_start", "execute_cmd_finish", "receive_output_start", "receive_output_finish",
    "total_bytes_received", "total_bytes_sent", "total_transfer_time", "cmd_execution_time",
    "total_cmd_execution_time", "total_cmd_exhausted_execute_time", "time_when_commit_start",
    "time_when_commit_end", "time_when_done",
)


for _name in _TIMING_FIELDS:
    if _name != "submit_time":  # a property (derived from time_when_submitted)
        setattr(Task, _name, 0)

#: What a run of the task sets, and a resubmission forgets.
_RESULT_FIELDS = (*_TIMING_FIELDS, "id", "state", "result", "return_status", "_output",
                  "try_count", "worker_key", "hostname", "host", "memory_outputs",
                  "resources_allocated", "resources_measured", "limits_exceeded",
                  "exhausted_attempts", "time_when_submitted", "_pending_gets", "measured",
                  "_monitor_files", "_monitor_summary", "_monitor_mode", "_summary_text",
                  "fast_abort_count", "resource_request", "workers_lost_in_a_row")
