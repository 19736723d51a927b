"""``condor_submit_workers``, ``slurm_submit_workers``, ``uge_submit_workers`` (and
``sge_``), ``pbs_submit_workers``, ``torque_submit_workers``: submit N workers at once.

Use: ``X_submit_workers [worker options] [batch options] HOST PORT N``
  or ``X_submit_workers [worker options] -M NAME [batch options] N``

Each writes the same job files and runs the same commands as the CCTools shell scripts
(``work_queue_submit_common`` and friends), from a submit directory (``$USER-workers`` under the
current one, ``/tmp/$USER-workers`` for HTCondor, or ``--scratch-dir DIR``) holding a copy of
``work_queue_worker`` and of the password file.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

# worker option -> how it is forwarded (CCTools work_queue_submit_common)
_WITH_VALUE = {"-C": "-C", "--catalog": "-C", "-t": "-t", "--timeout": "-t", "-d": "-d",
               "--debug": "-d", "-w": "-w", "--tcp-window-size": "-w", "-i": "-i",
               "--min-backoff": "-i", "-b": "-b", "--max-backoff": "-b", "-z": "-z",
               "--disk-threshold": "-z", "-A": "-A", "--arch": "-A", "-O": "-O", "--os": "-O",
               "-s": "-s", "--workdir": "-s"}
_BATCH_HELP = {
    "condor": ["  -r,--requirements <reqs>  Condor requirements expression.",
               "  --class-ad <ad>           Extra condor class ad. May be specified multiple "
               "times.",
               "  --spool                   Spool required input files.",
               "  --autosize                Condor will automatically size the worker to the "
               "slot.",
               "  --docker-universe <image> Run worker inside <image> using condor's docker "
               "universe"],
    "slurm": ["  -j                       Use job array to submit workers.",
              "  -p <parameters>          SLURM sbatch parameters."],
    "uge": ["  -j                       Use job array to submit workers.",
            "  -p <parameters>          UGE qsub parameters."],
    "pbs": ["  -j               Use job array to submit workers.",
            "  -p <parameters>  PBS qsub parameters."],
    "torque": ["  -j               Use job array to submit workers.",
               "  -p <parameters>  Torque qsub parameters."],
}
_BATCH_HELP["sge"] = _BATCH_HELP["uge"]


class UsageError(Exception):
    pass


@dataclass
class Request:
    """The parsed command line of a submit script."""

    system: str
    arguments: str = ""
    use_manager_name: bool = False
    pwfile: str = ""
    submit_dir: str = ""
    cores: str = ""
    memory: str = ""
    disk: str = ""
    specified_resources: bool = False
    host: str = ""
    port: str = ""
    count: int = 1
    # batch specific
    parameters: str = ""
    jobarray: bool = False
    requirements: str = ""
    class_ads: list[str] = field(default_factory=list)
    spool: bool = False
    autosize: bool = False
    docker_universe: str = ""


class _Arguments:
    """The arguments being read, and where; an option's handler takes its value from here."""

    def __init__(self, args: list[str], user: str) -> None:
        self.args = args
        self.i = 0
        self.user = user

    def value(self) -> str:
        """The argument after the current option (which then counts as read)."""
        self.i += 1
        if self.i >= len(self.args):
            raise UsageError(f"option {self.args[self.i - 1]} needs a value")
        return self.args[self.i]


_Handler = Callable[[Request, _Arguments], None]


def _advertise(r: Request, args: _Arguments) -> None:
    r.arguments += " -a"
    r.use_manager_name = True


def _manager_name(r: Request, args: _Arguments) -> None:
    r.arguments += f" -M {args.value()}"
    r.use_manager_name = True


def _scratch_dir(r: Request, args: _Arguments) -> None:
    r.submit_dir = f"{args.value()}/{args.user}-workers"


def _password(r: Request, args: _Arguments) -> None:
    r.pwfile = args.value()
    r.arguments += f" -P {r.pwfile}"


def _resource(r: Request, args: _Arguments) -> None:
    option = args.args[args.i]
    v = args.value()
    r.arguments += f" {option} {v}"
    setattr(r, option[2:], v)
    r.specified_resources = True


def _help(r: Request, args: _Arguments) -> None:
    raise UsageError("help")


def _to_worker(flag: str) -> _Handler:
    """A handler passing the option's value on to every worker as ``flag``."""
    def handler(r: Request, args: _Arguments) -> None:
        r.arguments += f" {flag} {args.value()}"
    return handler


def _append(field_name: str, before: str = " ") -> _Handler:
    """A handler adding the option's value to a text (or list) field of the request."""
    def handler(r: Request, args: _Arguments) -> None:
        current = getattr(r, field_name)
        if isinstance(current, list):
            current.append(args.value())
        else:
            setattr(r, field_name, current + before + args.value())
    return handler


def _flag(field_name: str) -> _Handler:
    """A handler turning a yes/no setting of the request on."""
    return lambda r, args: setattr(r, field_name, True)


#: Options every submit script takes (``-a``/``-M`` switch to a manager found by name).
_COMMON_OPTIONS: dict[str, _Handler] = {
    "-a": _advertise, "--advertise": _advertise,
    **dict.fromkeys(("-M", "--manager-name", "--master-name", "-N", "--name"), _manager_name),
    **{option: _to_worker(flag) for option, flag in _WITH_VALUE.items()},
    "--scratch-dir": _scratch_dir,
    "-P": _password, "--password": _password,
    "--ssl": lambda r, args: setattr(r, "arguments", r.arguments + " --ssl"),
    "--cores": _resource, "--memory": _resource, "--disk": _resource,
    "-E": _append("arguments"), "--worker-options": _append("arguments"),
    "-h": _help, "--help": _help,
}
#: Options only condor_submit_workers takes.
_CONDOR_OPTIONS: dict[str, _Handler] = {
    "-r": _append("requirements"), "--requirements": _append("requirements"),
    "--class-ad": _append("class_ads"),
    "--autosize": _flag("autosize"),
    "--spool": _flag("spool"),
    "--docker-universe": lambda r, args: setattr(r, "docker_universe", args.value()),
}
#: Options only the other batch systems' scripts take.
_BATCH_OPTIONS: dict[str, _Handler] = {
    "-j": _flag("jobarray"),
    "-p": _append("parameters"),
}


def parse(system: str, argv: list[str]) -> Request:
    """Parse a submit script's arguments; :class:`UsageError` with the CCTools message."""
    user = os.environ.get("USER") or getpass.getuser()
    r = Request(system, submit_dir=(f"/tmp/{user}-workers" if system == "condor"
                                    else f"{user}-workers"))
    args = list(argv)
    cursor = _Arguments(args, user)
    own = _CONDOR_OPTIONS if system == "condor" else _BATCH_OPTIONS
    while cursor.i < len(args):
        a = args[cursor.i]
        handler = _COMMON_OPTIONS.get(a) or own.get(a)
        if handler is None:
            if a.startswith("-") and len(a) > 1 and not a[1:].isdigit():
                raise UsageError(f"unknown option {a}")
            break  # the operands start here
        handler(r, cursor)
        cursor.i += 1
    i = cursor.i
    rest = args[i:]
    if not r.use_manager_name:
        if len(rest) != 3:
            raise UsageError(f'3 arguments (<servername> <port> <num-workers>), but found '
                             f'{len(rest)}: "{" ".join(rest)}".')
        r.host, r.port, count = rest
    else:
        if len(rest) != 1:
            raise UsageError(f'1 argument (<num-workers>) is expected, but found {len(rest)}: '
                             f'"{" ".join(rest)}".')
        count = rest[0]
    try:
        r.count = int(count)
    except ValueError:
        raise UsageError(f"the number of workers must be a whole number, not {count!r}") from None
    if r.count < 1:
        raise UsageError(f"the number of workers must be at least 1, not {r.count}")
    return r


@dataclass
class Submission:
    """Files written in the submit directory and the commands run there, in order."""

    files: dict[str, str]
    commands: list[tuple[list[str], str | None]]   # (argv, stdin text)


def describe(r: Request) -> Submission:
    """Exactly what the CCTools script writes and runs for this request (no I/O)."""
    worker_line = f"{r.arguments} {r.host} {r.port}"
    if r.system == "condor":
        return _describe_condor(r)
    if r.system == "slurm":
        params = (" --exclusive" if r.cores in ("", "0") else f" --cpus-per-task {r.cores}")
        params += r.parameters
        script = f"#!/bin/sh\nwork_queue_worker {worker_line}\n"
        argv = ["sbatch", "--job-name", "wqWorker", "--ntasks=1", "--nodes=1", *params.split()]
        return Submission({}, [(argv, script)] * r.count)
    cores = r.cores if r.cores not in ("", "0") else "1"
    if r.system in ("uge", "sge"):
        custom = os.environ.get("WORK_QUEUE_UGE_PARAMETER", "")
        custom = (custom.replace("$cores", cores).replace("$memory", r.memory)
                  .replace("$disk", r.disk))
        head = f"#$ {custom}\n" if custom else ""
        script = f"#!/bin/sh\n{head}./work_queue_worker {worker_line}\n"
        if r.jobarray:
            cmds = [["qsub", "-t", f"1-{r.count}:1", "-cwd", *r.parameters.split(), "worker.sh"]]
        else:
            cmds = [["qsub", "-cwd", *r.parameters.split(), "worker.sh"]] * r.count
    else:
        cwd = os.path.abspath(r.submit_dir)
        if r.system == "pbs":
            script = (f"#!/bin/sh\n#PBS -l nodes=1:ppn={cores}\n\ncd {cwd}\n"
                      f"./work_queue_worker {worker_line}\n")
            flag = "-J"
        else:
            script = (f"#!/bin/sh\n#PBS -l nodes=1:ppn={cores}\n\ncd {cwd}\n\n"
                      f"./work_queue_worker {worker_line}\n")
            flag = "-t"
        if r.jobarray:
            cmds = [["qsub", flag, f"1-{r.count}:1", *r.parameters.split(), "worker.sh"]]
        else:
            cmds = [["qsub", *r.parameters.split(), "worker.sh"]] * r.count
    return Submission({"worker.sh": script}, [(c, None) for c in cmds])


def _describe_condor(r: Request) -> Submission:
    cores = r.cores or "1"
    memory = r.memory or "512"
    disk = str(int(r.disk or "1024") * 1024)
    if r.autosize:
        cores = f"ifThenElse({cores} > TotalSlotCpus, {cores}, TotalSlotCpus)"
        memory = f"ifThenElse({memory} > TotalSlotMemory, {memory}, TotalSlotMemory)"
        disk = f"ifThenElse({disk} > TotalSlotDisk, {disk}, TotalSlotDisk)"
    transfer = "work_queue_worker" + (f", {r.pwfile}" if r.pwfile else "")
    arguments = ("--cores $$([TARGET.Cpus]) --memory $$([TARGET.Memory]) "
                 f"--disk $$([TARGET.Disk/1024]) {r.arguments}")
    head = (f"universe = docker\ndocker_image = {r.docker_universe}\n" if r.docker_universe
            else "universe = vanilla\n")
    ads = "".join("\n" + ad for ad in r.class_ads)
    text = (head
            + "executable = work_queue_worker\n"
            f"arguments = {arguments} {r.host} {r.port}\n"
            f"transfer_input_files = {transfer}\n"
            "should_transfer_files = yes\n"
            "when_to_transfer_output = on_exit\n"
            "output = worker.$(PROCESS).output\n"
            "error = worker.$(PROCESS).error\n"
            "log = workers.log\n"
            "+JobMaxSuspendTime = 0\n"
            "\n"
            f"{ads}\n"
            "\n"
            "# Some programs assume some variables are set, like HOME, so we export the\n"
            "# environment variables with the job.  Comment the next line if you do not want\n"
            "# the environment exported.\n"
            "getenv = true\n")
    if r.requirements:
        text += f"requirements = {r.requirements}\n"
    text += (f"request_cpus = {cores}\nrequest_memory = {memory}\nrequest_disk = {disk}\n"
             f"queue {r.count}\n")
    argv = ["condor_submit", *(["--spool"] if r.spool else []), "condor_submit_file"]
    return Submission({"condor_submit_file": text}, [(argv, None)])


_SUBMIT_COMMAND = {"condor": "condor_submit", "slurm": "sbatch", "uge": "qsub", "sge": "qsub",
                   "pbs": "qsub", "torque": "qsub"}


def run(system: str, argv: list[str]) -> int:
    prog = f"{system}_submit_workers"
    try:
        r = parse(system, argv)
    except UsageError as e:
        if str(e) == "help":
            _help(prog, system)
            return 0
        print(f"{prog}: {e}", file=sys.stderr)
        print(f"To view the help message, type: {prog} -h", file=sys.stderr)
        return 1
    if system == "condor" and r.host == "localhost":
        print("Using localhost with condor workers may lead to unintended consequences, please "
              "specify the IP address instead", file=sys.stderr)
        return 1
    tool = _SUBMIT_COMMAND[system]
    if shutil.which(tool) is None:
        print(f"{prog}: please add '{tool}' to your PATH.", file=sys.stderr)
        return 1
    worker = shutil.which("work_queue_worker")
    if worker is None:
        print(f"{prog}: please add 'work_queue_worker' to your PATH.", file=sys.stderr)
        return 1
    if r.pwfile and not os.path.isfile(r.pwfile):
        print(f"{prog} password file {r.pwfile} not found", file=sys.stderr)
        return 1
    print(f"Creating worker submit scripts in {r.submit_dir}...")
    os.makedirs(r.submit_dir, exist_ok=True)
    shutil.copy2(worker, os.path.join(r.submit_dir, "work_queue_worker"))
    if r.pwfile:
        shutil.copy2(r.pwfile, r.submit_dir)
    sub = describe(r)
    for name, text in sub.files.items():
        path = os.path.join(r.submit_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    sys.stdout.flush()
    status = 0
    for cmd, stdin in sub.commands:
        proc = subprocess.run(cmd, cwd=r.submit_dir, input=stdin or "", text=True)
        if proc.returncode != 0:
            print(f"{prog}: {cmd[0]} failed with exit status {proc.returncode}",
                  file=sys.stderr)
            status = proc.returncode
            break
    return status


def _help(prog: str, system: str) -> None:
    print(f"Use: {prog} [worker options] [batch specific options] <servername> <port> "
          "<num-workers>\n         or\n"
          f"     {prog} [worker options] --manager-name <name> [batch specific options] "
          "<num-workers>\n"
          "worker options:\n"
          "  -M,--manager-name <name>  Name of the preferred manager for worker.\n"
          "  -N,--name <name>          Same as -M (backwards compatibility).\n"
          "  -C,--catalog <catalog>    Set catalog server to <catalog>. Format: HOSTNAME:PORT.\n"
          "  -t,--timeout <time>       Abort after this amount of idle time. (default=900s).\n"
          "  -d,--debug <subsystem>    Enable debugging on worker for this subsystem.\n"
          "  -w,--tcp-window-size <size>  Set TCP window size.\n"
          "  -i,--min-backoff <time>   Initial backoff when a worker fails to connect.\n"
          "  -b,--max-backoff <time>   Maximum backoff when a worker fails to connect.\n"
          "  -z,--disk-threshold <size> Available disk space threshold (MB).\n"
          "  -A,--arch <arch>          Architecture string to report.\n"
          "  -O,--os <os>              Operating system string to report.\n"
          "  -s,--workdir <path>       Where workers create their working directory.\n"
          "  -P,--password <pwfile>    Password file to authenticate workers to manager.\n"
          "  --ssl                     Use ssl to communicate with manager.\n"
          "  --cores <num>             Cores each worker should use (0=auto). (default=1)\n"
          "  --memory <size>           Memory (MB) reported by each worker.\n"
          "  --disk <size>             Disk (MB) reported by each worker.\n"
          "  --scratch-dir             Where the submit directory is created.\n"
          "  -E,--worker-options <str> Extra options passed to work_queue_worker\n"
          "  -h,--help                 Show this help message.\n\n"
          "batch specific options:\n" + "\n".join(_BATCH_HELP[system]))


def condor_main() -> int:
    return run("condor", sys.argv[1:])


def slurm_main() -> int:
    return run("slurm", sys.argv[1:])


def uge_main() -> int:
    return run("uge", sys.argv[1:])


def sge_main() -> int:
    return run("sge", sys.argv[1:])


def pbs_main() -> int:
    return run("pbs", sys.argv[1:])


def torque_main() -> int:
    return run("torque", sys.argv[1:])
