"""``work_queue_factory -T TYPE (-M NAME | HOST PORT) [options]``: keep workers in a batch
system for the managers that need them (CCTools ``work_queue_factory``)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys

from ..factory.batch import BATCH_TYPES, BatchError, BatchQueue, batch_queue_class
from ..factory.config import ConfigError, ConfigWatcher, FactoryConfig
from ..factory.runner import (
    FACTORY_PERIOD,
    Factory,
    ManagerSource,
    WorkerOptions,
    default_catalog,
)
from ..version import __version__
from .common import parse_time, setup_debug

PROG = "work_queue_factory"


def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, usage="%(prog)s [options] <managerhost> <port>\n"
        "   or: %(prog)s [options] -M projectname",
        description="Submit and maintain workers in a batch system for Work Queue managers.")
    p.add_argument("address", nargs="*", help="HOST PORT of the manager (direct mode)")
    g = p.add_argument_group("general options")
    g.add_argument("-T", "--batch-type", help=f"batch system: {', '.join(BATCH_TYPES)}")
    g.add_argument("-C", "--config-file", help="JSON configuration file, re-read while running")
    g.add_argument("-M", "-N", "--manager-name", "--master-name", dest="manager_name",
                   help="project name (regex) of the managers to serve, via the catalog")
    g.add_argument("-F", "--foremen-name", help="foremen to serve (regex)")
    g.add_argument("--catalog", help="catalog server(s), host:port[,host:port]")
    g.add_argument("-P", "--password", help="password file, given to the workers")
    g.add_argument("-S", "--scratch-dir", help="scratch directory (default wq-factory-<uid>)")
    g.add_argument("--run-factory-as-manager", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--parent-death", action="store_true", help="exit if the parent exits")
    g.add_argument("-d", "--debug", action="append", help="debug flags (e.g. all)")
    g.add_argument("-o", "--debug-file", help="send debugging to this file")
    g.add_argument("-O", "--debug-file-size", help="accepted and ignored")
    g.add_argument("--ssl", action="store_true", help="workers (and queries) use TLS")
    g.add_argument("--factory-name", help="name reported to the catalog and given to workers")
    g.add_argument("-v", "--version", action="store_true", help="show the version and exit")
    g.add_argument("--factory-period", type=parse_time,
                   default=os.environ.get("WORK_QUEUE_FACTORY_PERIOD", FACTORY_PERIOD),
                   help="seconds between cycles (default 30, or $WORK_QUEUE_FACTORY_PERIOD; "
                   "this implementation only)")
    c = p.add_argument_group("concurrency control options")
    c.add_argument("-w", "--min-workers", type=_int, help="minimum workers (default 5)")
    c.add_argument("-W", "--max-workers", type=_int, help="maximum workers (default 100)")
    c.add_argument("--workers-per-cycle", type=_int,
                   help="most workers waiting to connect at once (default 5)")
    c.add_argument("-t", "--timeout", type=_int, help="workers exit after this idle time (300)")
    c.add_argument("--factory-timeout", type=_int,
                   help="exit after no manager was seen for this many seconds")
    c.add_argument("--tasks-per-worker", type=_int, help="average tasks per worker")
    c.add_argument("-c", "--capacity", action="store_true",
                   help="use the capacity the managers report")
    r = p.add_argument_group("resource options")
    for res, unit in (("cores", ""), ("memory", " (MB)"), ("disk", " (MB)"), ("gpus", "")):
        r.add_argument(f"--{res}", type=_int, help=f"{res}{unit} of each worker")
    r.add_argument("--feature", action="append", default=[], help="feature given to workers")
    r.add_argument("--autosize", action="store_true", help="size workers to their slot (condor)")
    e = p.add_argument_group("worker environment options")
    e.add_argument("--env", action="append", default=[], help="VAR=VALUE for the workers")
    e.add_argument("-E", "--extra-options", help="extra options given to each worker")
    e.add_argument("--worker-binary", help="worker executable (default: work_queue_worker)")
    e.add_argument("--wrapper", action="append", default=[], help="wrap workers in a command")
    e.add_argument("--wrapper-input", action="append", default=[], help="file the wrapper needs")
    e.add_argument("--poncho-env", "--python-env", "--python-package", dest="poncho_env",
                   help="run each worker inside this poncho package (.tar.gz)")
    e.add_argument("--runos", help=argparse.SUPPRESS)
    b = p.add_argument_group("batch system options")
    b.add_argument("-B", "--batch-options", default=os.environ.get("BATCH_OPTIONS"),
                   help="options added to each submission (env BATCH_OPTIONS)")
    b.add_argument("--condor-requirements", action="append", default=[],
                   help="requirements expression for HTCondor")
    b.add_argument("--disable-afs-check", action="store_true", help="allow a scratch dir in AFS")
    for opt in ("--amazon-config", "--k8s-image", "--k8s-worker-image"):
        b.add_argument(opt, help=argparse.SUPPRESS)
    return p


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def config_from_args(args: argparse.Namespace) -> FactoryConfig:
    cfg = FactoryConfig()
    for name in ("min_workers", "max_workers", "workers_per_cycle", "timeout",
                 "tasks_per_worker", "cores", "memory", "disk", "gpus"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.factory_timeout is not None:
        cfg.factory_timeout = max(0, args.factory_timeout)
    cfg.autosize = int(args.autosize)
    cfg.capacity = int(args.capacity)
    cfg.manager_name = args.manager_name
    cfg.foremen_name = args.foremen_name
    cfg.factory_name = args.factory_name
    cfg.extra_options = args.extra_options
    if args.condor_requirements:
        req = f"({args.condor_requirements[0]})"
        for more in args.condor_requirements[1:]:
            req = f"({req} && ({more}))"
        cfg.condor_requirements = req
    return cfg


def _join_option_values(argv: list[str]) -> list[str]:
    """``-B "--partition x"``: options whose values start with a dash, as getopt takes them."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in _DASHED_VALUES and i + 1 < len(argv):
            out.append(f"{_DASHED_VALUES[a]}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


_DASHED_VALUES = {"-B": "--batch-options", "--batch-options": "--batch-options",
                  "-E": "--extra-options", "--extra-options": "--extra-options",
                  "--wrapper": "--wrapper", "--condor-requirements": "--condor-requirements"}


class _Refused(Exception):
    """A reason not to start, printed as ``work_queue_factory: <reason>`` (exit code 1)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_option_values(sys.argv[1:] if argv is None else argv))
    if args.version:
        print(f"{PROG} version {__version__} (pure Python; protocol 11)")
        return 0
    setup_debug(args.debug, args.debug_file, PROG)
    try:
        factory, watcher = _prepare(args)
    except _Refused as e:
        return _fail(str(e))

    def handle_abort(signum: int, _frame: object) -> None:
        if not factory.abort:
            os.write(1, b"received abort signal, shutting down workers...\n")
        factory.abort = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, handle_abort)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if watcher is not None:
        factory._print_config()
    factory.run()
    return 0


def _prepare(args: argparse.Namespace) -> tuple[Factory, ConfigWatcher | None]:
    """Everything the factory needs before its first cycle, checked in CCTools' order (so
    the first problem reported is the one CCTools reports); :class:`_Refused` otherwise."""
    if not args.batch_type:
        raise _Refused(f"you must specify a batch type with the -T option (one of: "
                       f"{', '.join(BATCH_TYPES)})")
    try:
        queue_class = batch_queue_class(args.batch_type)
    except BatchError as e:
        raise _Refused(str(e)) from None
    host, port = _manager_address(args)
    cfg, watcher = _configuration(args, host is not None)
    if not (host or args.config_file or args.manager_name):
        raise _Refused("You must either give a project name with the -M option or "
                       "manager-name option with a configuration file, or give the manager's "
                       "host and port.")
    if cfg.min_workers > cfg.max_workers:
        raise _Refused(f"min workers ({cfg.min_workers}) is greater than max workers "
                       f"({cfg.max_workers})")
    env = _environment(args)
    scratch = os.path.abspath(args.scratch_dir or f"wq-factory-{os.getuid()}")
    queue = queue_class(scratch, batch_options=args.batch_options, autosize=bool(cfg.autosize),
                        condor_requirements=cfg.condor_requirements, env=env)
    _prepare_scratch(args, queue, scratch)
    worker = WorkerOptions(ssl=args.ssl, features=list(args.feature))
    try:
        _stage_files(args, scratch, worker)
    except (OSError, ValueError) as e:
        raise _Refused(str(e)) from None
    password = None
    if args.password:
        with open(args.password, "rb") as f:
            password = f.read()
    source = ManagerSource(host=host, port=port, catalog=args.catalog or default_catalog(),
                           ssl=args.ssl, password=password)
    factory = Factory(queue, cfg, source, worker, watcher, period=args.factory_period,
                      parent_pid=os.getppid() if args.parent_death else None)
    return factory, watcher


def _manager_address(args: argparse.Namespace) -> tuple[str | None, int | None]:
    """The manager's HOST PORT operands, or (None, None) when it is found by name."""
    if len(args.address) not in (0, 2):
        raise _Refused("give the manager as HOST PORT (or use -M name)")
    if not args.address:
        return None, None
    try:
        return args.address[0], int(args.address[1])
    except ValueError:
        raise _Refused(f"port {args.address[1]!r} is not a number") from None


def _configuration(args: argparse.Namespace,
                   has_manager_host: bool) -> tuple[FactoryConfig, ConfigWatcher | None]:
    """The settings from the options, overridden by the configuration file if one is given
    (its watcher then rereads it while the factory runs)."""
    cfg = config_from_args(args)
    if not args.config_file:
        return cfg, None
    path = os.path.realpath(args.config_file)
    if not os.path.exists(path):
        raise _Refused(f"could not resolve configuration file path: '{args.config_file}'")
    watcher = ConfigWatcher(path)
    try:
        cfg = watcher.load(cfg, has_manager_host) or cfg
    except ConfigError as e:
        raise _Refused(f"There were errors in the configuration file: {e}") from None
    return cfg, watcher


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The ``--env NAME=VALUE`` settings the workers are started with."""
    env: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _Refused(f"could not evaluate key:value pair: {item}")
        env[name] = value
    return env


def _prepare_scratch(args: argparse.Namespace, queue: BatchQueue, scratch: str) -> None:
    """Check the batch system's commands and make the scratch directory, which Condor
    cannot write into when it is on AFS."""
    try:
        queue.check_commands()
    except BatchError as e:
        raise _Refused(str(e)) from None
    try:
        os.makedirs(scratch, exist_ok=True)
    except OSError as e:
        raise _Refused(f"couldn't create {scratch}: {e.strerror}") from None
    if args.batch_type == "condor" and os.path.realpath(scratch).startswith("/afs") \
            and not args.disable_afs_check:
        raise _Refused(f"The scratch directory is '{scratch}'. This won't work because Condor "
                       "is not able to write to files in AFS. Please use --scratch-dir to "
                       "choose a different scratch directory.")


def _stage_files(args: argparse.Namespace, scratch: str, worker: WorkerOptions) -> None:
    """Copy the worker, the password file and wrapper inputs into the scratch directory."""
    if args.worker_binary:
        src = args.worker_binary
        if not os.access(src, os.X_OK):
            raise ValueError(f"could not access specified worker binary: {src}")
    else:
        found = shutil.which("work_queue_worker")
        if found is None:
            raise ValueError("please add work_queue_worker to your PATH.")
        src = found
    worker.executable = os.path.basename(src)
    _copy(src, os.path.join(scratch, worker.executable))
    if args.password:
        if not os.path.isfile(args.password):
            raise ValueError(f"couldn't load password from {args.password}: no such file")
        _copy(args.password, os.path.join(scratch, "pwfile"))
        worker.password_file = True
    wrappers = list(args.wrapper)
    inputs = list(args.wrapper_input)
    if args.poncho_env:
        runner = shutil.which("poncho_package_run")
        if runner is None:
            raise ValueError("could not find poncho_package_run in PATH")
        inputs += [runner, args.poncho_env]
        wrappers.append(f"./{os.path.basename(runner)} -e {os.path.basename(args.poncho_env)} ")
    for path in inputs:
        try:
            _copy(path, os.path.join(scratch, os.path.basename(path)))
        except OSError as e:
            raise ValueError(f"Cannot copy wrapper input file {path} to factory scratch "
                             f"directory {scratch}: {e.strerror}") from None
    worker.extra_inputs = inputs
    wrapper = None
    for w in wrappers:  # later wrappers go outside earlier ones
        wrapper = w if wrapper is None else f"{w} {wrapper}"
    worker.wrapper = wrapper


def _copy(src: str, dst: str) -> None:
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return
    shutil.copy2(src, dst)


if __name__ == "__main__":
    sys.exit(main())
