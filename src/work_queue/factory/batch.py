"""Batch systems the factory submits workers to, one class each.

Every backend turns a :class:`JobSpec` (the worker command line, the files it needs, the worker
size) into a :class:`JobDescription` — the exact files it writes in the scratch directory, the
exact command line it runs and the environment it adds — with :meth:`BatchQueue.describe`, which
does no I/O, so tests can compare it to what CCTools' ``batch_queue_*.c`` produce. ``submit``
writes those files, runs the command and parses the job id; ``poll`` reports jobs that ended;
``remove`` cancels one.

* ``local``: ``/bin/sh -c command`` as a child process in its own session (job id = pid).
* ``condor``: ``condor.sh`` + ``condor.submit``, ``condor_submit``, the job log
  ``condor.logfile`` for state, ``condor_rm``.
* ``slurm``, ``uge``/``sge``, ``pbs``, ``torque``: a ``<name>.wrapper`` script that runs
  ``$BATCH_JOB_COMMAND`` and writes ``<name>.status.<jobid>`` (start / alive / stop lines) for
  state; ``sbatch``/``qsub`` to submit, ``scancel``/``qdel`` to cancel.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

logger = logging.getLogger("work_queue.factory")

#: Batch types this factory can drive (``sge`` is the old name of ``uge``).
BATCH_TYPES = ("local", "condor", "slurm", "uge", "sge", "pbs", "torque")

#: Types CCTools knows that this factory does not drive, for a precise error message.
UNSUPPORTED_TYPES = ("vine", "wq", "lsf", "moab", "amazon", "k8s", "flux", "dryrun", "mesos",
                     "cluster")

HEARTBEAT_RATE = 30   # s between "alive" lines in a cluster job's status file
HEARTBEAT_MAX = 120   # s without one before a started cluster job counts as gone


class BatchError(Exception):
    """A batch system is missing or refused a request; the message says which and why."""


@dataclass
class JobSpec:
    """What to run: a shell command line, files it needs from the scratch directory, and the
    worker size (``-1`` = not specified)."""

    command: str
    input_files: list[str] = field(default_factory=list)
    cores: int = -1
    memory: int = -1
    disk: int = -1
    gpus: int = -1
    blocked_hosts: list[str] = field(default_factory=list)


@dataclass
class JobDescription:
    """Exactly what a submission writes and runs (files are relative to the scratch dir)."""

    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    executable_files: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


@dataclass
class Job:
    id: str
    submitted: float
    started: float = 0.0
    finished: float = 0.0
    heartbeat: float = 0.0
    exit_code: int | None = None
    log_pos: int = 0
    removed: bool = False


class BatchQueue:
    """Common bookkeeping: the jobs this queue submitted and have not been seen to end."""

    type: str = ""
    #: executables that must be in PATH (the first one submits)
    commands: tuple[str, ...] = ()

    def __init__(self, scratch_dir: str, batch_options: str | None = None,
                 autosize: bool = False, condor_requirements: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.scratch_dir = os.path.abspath(scratch_dir)
        self.batch_options = batch_options or ""
        self.autosize = autosize
        self.condor_requirements = condor_requirements
        self.env = dict(env or {})
        self.jobs: dict[str, Job] = {}

    # -- checks ---------------------------------------------------------------------------
    def check_commands(self) -> None:
        """Raise :class:`BatchError` naming the first command of this system not in PATH."""
        for cmd in self.commands:
            if shutil.which(cmd) is None:
                raise BatchError(f"{cmd} not found in PATH (needed for batch type "
                                 f"'{self.type}')")

    # -- the parts each backend provides -----------------------------------------------------
    def describe(self, spec: JobSpec) -> JobDescription:
        raise NotImplementedError

    def _parse_job_id(self, output: str) -> str | None:
        raise NotImplementedError

    def _update(self) -> None:
        """Refresh ``started``/``finished`` of the jobs from the batch system's records."""

    def _remove_argv(self, job: Job) -> list[str]:
        raise NotImplementedError

    # -- operations -------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        """Submit one job; its id. :class:`BatchError` if the batch system refuses it."""
        desc = self.describe(spec)
        self._write_files(desc)
        env = dict(os.environ)
        env.update(self.env)
        env.update(desc.env)
        try:
            proc = subprocess.run(desc.argv, cwd=self.scratch_dir, env=env, input=desc.stdin or "",
                                  capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise BatchError(f"{desc.argv[0]} not found in PATH (needed for batch type "
                             f"'{self.type}')") from None
        except subprocess.TimeoutExpired:
            raise BatchError(f"{desc.argv[0]} did not answer within 120 s") from None
        job_id = self._parse_job_id(proc.stdout) if proc.returncode == 0 else None
        if job_id is None:
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            reason = said[-1] if said else f"no output, exit status {proc.returncode}"
            raise BatchError(f"{desc.argv[0]} refused the job: {reason}")
        self.jobs[job_id] = Job(job_id, time.time())
        logger.debug("job %s submitted: %s", job_id, shlex.join(desc.argv))
        return job_id

    def _write_files(self, desc: JobDescription) -> None:
        for name, text in desc.files.items():
            path = os.path.join(self.scratch_dir, name)
            with open(path, "w") as f:
                f.write(text)
            if name in desc.executable_files:
                os.chmod(path, 0o755)

    def poll(self) -> list[Job]:
        """Jobs seen to end since the last call (removed ones included), forgotten after."""
        self._update()
        now = time.time()
        done = []
        for job in list(self.jobs.values()):
            if (not job.finished and job.started and job.heartbeat
                    and self._uses_heartbeat() and now - job.heartbeat > HEARTBEAT_MAX):
                logger.warning("job %s does not appear to be running anymore", job.id)
                job.finished = now
            if job.finished:
                done.append(self.jobs.pop(job.id))
        return done

    def _uses_heartbeat(self) -> bool:
        return False

    def started(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        return bool(job and job.started)

    def remove(self, job_id: str, kill: bool = False) -> None:
        """Cancel a job (``kill``: the hard way where the system has one)."""
        job = self.jobs.get(job_id)
        if job is None:
            return
        argv = self._remove_argv(job)
        try:
            proc = subprocess.run(argv, cwd=self.scratch_dir, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=60)
            if proc.returncode != 0:
                logger.warning("%s failed: %s", shlex.join(argv),
                               (proc.stderr or proc.stdout).strip())
        except (OSError, subprocess.TimeoutExpired) as e:
            logger.warning("%s failed: %s", shlex.join(argv), e)
        job.removed = True
        job.finished = job.finished or time.time()

    def close(self) -> None:
        """Release what the queue holds (local: child process handles)."""


# ---------------------------------------------------------------------------------------------
class LocalQueue(BatchQueue):
    """Workers as child processes of the factory (the demo and quick-test batch type)."""

    type = "local"
    commands = ("/bin/sh",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._groups: set[int] = set()   # process groups of removed jobs, until empty

    def describe(self, spec: JobSpec) -> JobDescription:
        return JobDescription(argv=["/bin/sh", "-c", spec.command])

    def submit(self, spec: JobSpec) -> str:
        desc = self.describe(spec)
        env = dict(os.environ)
        env.update(self.env)
        try:
            proc = subprocess.Popen(desc.argv, cwd=self.scratch_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise BatchError(f"could not start a local worker: {e}") from None
        job_id = str(proc.pid)
        self._procs[job_id] = proc
        self.jobs[job_id] = Job(job_id, time.time(), started=time.time())
        logger.debug("local job %s: %s", job_id, spec.command)
        return job_id

    def _update(self) -> None:
        for job_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                job = self.jobs.get(job_id)
                if job is not None:
                    job.finished = job.finished or time.time()
                    job.exit_code = code
                del self._procs[job_id]

    def remove(self, job_id: str, kill: bool = False) -> None:
        proc = self._procs.get(job_id)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGQUIT)
            self._groups.add(proc.pid)
        except ProcessLookupError:
            pass
        job = self.jobs.get(job_id)
        if job is not None:
            job.removed = True

    def running(self) -> int:
        """Jobs with any process left (the shell or what it started, all in one group)."""
        self._update()
        alive = set(self._procs)
        for pgid in list(self._groups):
            try:
                os.killpg(pgid, 0)
                alive.add(str(pgid))
            except ProcessLookupError:
                self._groups.discard(pgid)
            except PermissionError:
                alive.add(str(pgid))
        return len(alive)

    def kill_all(self) -> None:
        """SIGKILL every process group this queue started that still has processes."""
        for pgid in {*self._groups, *(p.pid for p in self._procs.values())}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._update()

    def close(self) -> None:
        for proc in self._procs.values():
            try:
                proc.wait(timeout=0)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------------------------------------
def condor_escape(command: str) -> str:
    """``string_escape_condor``: the new-syntax ``arguments`` value (``"`` doubled, ``'``
    tripled so the shell in ``condor.sh`` sees it, a trailing space inside the quotes)."""
    out = []
    for ch in command:
        if ch == '"':
            out.append('"')
        if ch == "'":
            out.append("''")
        out.append(ch)
    return '"' + "".join(out) + ' "'


class CondorQueue(BatchQueue):
    type = "condor"
    commands = ("condor_submit", "condor_rm")
    logfile = "condor.logfile"

    def describe(self, spec: JobSpec) -> JobDescription:
        lines = ["universe = vanilla", "executable = condor.sh",
                 f"arguments = {condor_escape(spec.command)}"]
        if spec.input_files:
            lines.append("transfer_input_files = "
                         + "".join(f"{name}, " for name in spec.input_files))
        lines += ["should_transfer_files = yes", "when_to_transfer_output = on_exit",
                  "notification = never", "transfer_executable = true", "keep_claim_idle = 30",
                  f"log = {self.logfile}", "+JobMaxSuspendTime = 0"]
        blocked = " && ".join(f'(machine != "{h}")' for h in spec.blocked_hosts)
        if self.condor_requirements and blocked:
            lines.append(f"requirements = ({self.condor_requirements}) && ({blocked})")
        elif self.condor_requirements:
            lines.append(f"requirements = ({self.condor_requirements})")
        elif blocked:
            lines.append(f"requirements = ({blocked})")
        lines.append("getenv = true")
        cores = spec.cores if spec.cores > -1 else 1
        memory = spec.memory if spec.memory > -1 else 1024
        disk = (spec.disk if spec.disk > -1 else 1024) * 1024
        gpus = spec.gpus if spec.gpus > -1 else 0
        if self.autosize:
            lines += [f"request_cpus   = ifThenElse({cores} > TotalSlotCpus, {cores}, "
                      "TotalSlotCpus)",
                      f"request_memory = ifThenElse({memory} > TotalSlotMemory, {memory}, "
                      "TotalSlotMemory)",
                      f"request_disk   = ifThenElse(({disk}) > TotalSlotDisk, ({disk}), "
                      "TotalSlotDisk)"]
            if gpus > 0:
                lines.append(f"request_gpus   = ifThenElse(({gpus}) > TotalSlotGpus, ({gpus}), "
                             "TotalSlotGpus)")
        else:
            lines += [f"request_cpus = {cores}", f"request_memory = {memory}",
                      f"request_disk = {disk}"]
            if gpus > 0:
                lines.append(f"request_gpus = {gpus}")
        if self.batch_options:
            lines.append(self.batch_options.encode().decode("unicode_escape"))
        lines.append("queue")
        return JobDescription(
            argv=["condor_submit", "condor.submit"],
            files={"condor.sh": '#!/bin/sh\neval "$@"\nexit $?\n',
                   "condor.submit": "\n".join(lines) + "\n"},
            executable_files=("condor.sh",))

    def _parse_job_id(self, output: str) -> str | None:
        match = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)", output)
        return match.group(2) if match else None

    def _update(self) -> None:
        path = os.path.join(self.scratch_dir, self.logfile)
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return
        pattern = re.compile(r"^(\d{3}) \((\d+)\.\d+\.\d+\)")
        for i, line in enumerate(lines):
            match = pattern.match(line)
            if not match:
                continue
            code, job_id = int(match.group(1)), match.group(2)
            job = self.jobs.get(job_id)
            if job is None:
                continue
            if code == 1:
                job.started = job.started or time.time()
            elif code in (5, 9):
                job.finished = job.finished or time.time()
                if code == 5 and i + 1 < len(lines):
                    ret = re.search(r"return value (\d+)", lines[i + 1])
                    job.exit_code = int(ret.group(1)) if ret else None

    def _remove_argv(self, job: Job) -> list[str]:
        return ["condor_rm", job.id]


# ---------------------------------------------------------------------------------------------
class ClusterQueue(BatchQueue):
    """The PBS-like systems of CCTools ``batch_queue_cluster.c``."""

    name = ""            # file prefix: <name>.wrapper, <name>.status.<jobid>
    submit_cmd = ""
    remove_cmd = ""
    options = ""
    jobname_var = ""
    job_id_var = "PBS_JOBID"
    cd_in_wrapper = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._submit_id = 0

    def wrapper_text(self) -> str:
        lines = ["#!/bin/sh", "#$ -S /bin/sh",
                 f'[ -n "${{{self.job_id_var}}}" ] && JOB_ID=`echo ${{{self.job_id_var}}} '
                 "| cut -d . -f 1`"]
        if self.cd_in_wrapper:
            lines.append(f"cd {self.scratch_dir}")
        lines += [f'logfile="${{PWD}}/{self.name}.status.${{JOB_ID}}"',
                  "starttime=`date +%s`",
                  "echo start $starttime > $logfile",
                  f"(while true; do sleep {HEARTBEAT_RATE}; echo alive $(date +%s) >> $logfile; "
                  "done) &",
                  "pid_heartbeat=$!",
                  'eval "$BATCH_JOB_COMMAND"',
                  "",
                  "status=$?",
                  "kill $pid_heartbeat",
                  "stoptime=`date +%s`",
                  "echo stop $status $stoptime >> $logfile",
                  "exit 0"]
        return "\n".join(lines) + "\n"

    def resource_string(self, spec: JobSpec) -> str:
        raise NotImplementedError

    def describe(self, spec: JobSpec) -> JobDescription:
        jobname = f"makeflow{self._submit_id % 65536}"
        command = (f"{self.submit_cmd} {self.resource_string(spec)} {self.options} -o /dev/null "
                   f"{self.jobname_var} {jobname} {self.batch_options} ./{self.name}.wrapper")
        return JobDescription(argv=shlex.split(command),
                              files={f"{self.name}.wrapper": self.wrapper_text()},
                              executable_files=(f"{self.name}.wrapper",),
                              env={"BATCH_JOB_COMMAND": spec.command})

    def submit(self, spec: JobSpec) -> str:
        try:
            return super().submit(spec)
        finally:
            self._submit_id += 1

    def _parse_job_id(self, output: str) -> str | None:
        for line in output.splitlines():
            match = (re.match(r"Your job (\d+)", line)
                     or re.match(r"Submitted batch job (\d+)", line)
                     or re.match(r"Job <(\d+)> is submitted", line)
                     or re.match(r"\s*(\d+)", line))
            if match:
                return match.group(1)
        return None

    def _uses_heartbeat(self) -> bool:
        return True

    def _update(self) -> None:
        for job in self.jobs.values():
            path = os.path.join(self.scratch_dir, f"{self.name}.status.{job.id}")
            try:
                with open(path) as f:
                    f.seek(job.log_pos)
                    text = f.read()
                    job.log_pos = f.tell()
            except OSError:
                continue
            for line in text.splitlines():
                words = line.split()
                if len(words) == 2 and words[0] == "start":
                    job.started = float(words[1])
                    job.heartbeat = job.heartbeat or job.started
                elif len(words) == 2 and words[0] == "alive":
                    job.heartbeat = float(words[1])
                elif len(words) == 3 and words[0] == "stop":
                    job.started = job.started or float(words[2])
                    job.finished = float(words[2])
                    job.exit_code = int(words[1])
            if job.finished:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def _remove_argv(self, job: Job) -> list[str]:
        return [self.remove_cmd, job.id]


def _round_up(value: float) -> int:
    return int(math.ceil(value))


class SlurmQueue(ClusterQueue):
    type = name = "slurm"
    commands = ("sbatch", "scancel")
    submit_cmd, remove_cmd = "sbatch", "scancel"
    options = "-D . -e /dev/null --export=ALL"
    jobname_var = "-J"
    job_id_var = "SLURM_JOB_ID"

    def resource_string(self, spec: JobSpec) -> str:
        out = ""
        if spec.memory > 0:
            out += f" --mem={_round_up(spec.memory)}M"
        cores = _round_up(spec.cores) if spec.cores > 0 else 1
        return out + f" -N 1 -n 1 -c {cores} "


class UgeQueue(ClusterQueue):
    type = name = "uge"
    commands = ("qsub", "qdel")
    submit_cmd, remove_cmd = "qsub", "qdel"
    options = "-cwd -j y -V"
    jobname_var = "-N"

    def resource_string(self, spec: JobSpec) -> str:
        out = ""
        if spec.memory > 0:
            out += f" -l h_vmem={spec.memory}M"
        cores = _round_up(spec.cores) if spec.cores > 0 else 1
        return out + f" -pe smp {cores} "


class SgeQueue(UgeQueue):
    """``-T sge``: the old name of ``uge``; same files (``uge.wrapper``) and commands."""

    type = "sge"


class PbsQueue(ClusterQueue):
    type = name = "pbs"
    commands = ("qsub", "qdel")
    submit_cmd, remove_cmd = "qsub", "qdel"
    options = "-j oe -V"
    jobname_var = "-N"
    cd_in_wrapper = True

    def resource_string(self, spec: JobSpec) -> str:
        out = f" -l nodes=1:ppn={max(1, _round_up(spec.cores))}"
        if spec.memory > 0:
            out += f",mem={_round_up(spec.memory)}mb"
        if spec.disk > 0:
            out += f",file={_round_up(spec.disk)}mb"
        return out + " "


class TorqueQueue(PbsQueue):
    type = name = "torque"


QUEUE_CLASSES: dict[str, type[BatchQueue]] = {
    "local": LocalQueue, "condor": CondorQueue, "slurm": SlurmQueue, "uge": UgeQueue,
    "sge": SgeQueue, "pbs": PbsQueue, "torque": TorqueQueue,
}


def batch_queue_class(batch_type: str) -> type[BatchQueue]:
    """The backend for a ``-T`` name; :class:`BatchError` naming the valid ones if unknown."""
    cls = QUEUE_CLASSES.get(batch_type)
    if cls is None:
        if batch_type in UNSUPPORTED_TYPES:
            raise BatchError(f"batch type '{batch_type}' is not supported by this factory "
                             f"(use one of: {', '.join(BATCH_TYPES)})")
        raise BatchError(f"unknown batch type '{batch_type}' (use one of: "
                         f"{', '.join(BATCH_TYPES)})")
    return cls


def make_batch_queue(batch_type: str, scratch_dir: str, **options: object) -> BatchQueue:
    """A backend for ``batch_type`` working in ``scratch_dir``."""
    return batch_queue_class(batch_type)(scratch_dir, **options)  # type: ignore[arg-type]
