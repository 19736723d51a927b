"""``work_queue_worker [options] HOST PORT``: serve a Work Queue manager."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from typing import Any

from ..version import __version__
from ..worker.coprocess import CoprocessError
from ..worker.worker import Worker, WorkerConfig
from .common import parse_metric, parse_size_mb, parse_time, setup_debug


def _resource(parse):  # type: ignore[no-untyped-def]
    def convert(text: str) -> int | None:
        return None if text == "all" else parse(text)
    return convert


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="work_queue_worker",
                                description="Run tasks for a Work Queue manager.")
    p.add_argument("address", nargs="*", help="HOST PORT, or HOST:PORT")
    p.add_argument("-v", "--version", action="store_true", help="show version and exit")
    p.add_argument("-M", "--manager-name", "--master-name", "-N", dest="manager_name",
                   help="regular expression of the managers' project name, found through "
                   "the catalog")
    p.add_argument("-C", "--catalog", help="catalog server(s) host:port[,host:port] "
                   "(default: CATALOG_HOST, else localhost:9097)")
    p.add_argument("-d", "--debug", action="append", help="debug flags (e.g. all)")
    p.add_argument("-o", "--debug-file", help="write debug output to this file")
    p.add_argument("--debug-rotate-max", type=parse_metric, default=10 << 20,
                   help="rotate the debug file to FILE.old past this size (default 10M, "
                   "0 disables)")
    p.add_argument("-P", "--password", help="file holding the manager's password")
    p.add_argument("-t", "--timeout", type=parse_time, help="idle and connect timeout")
    p.add_argument("--idle-timeout", type=parse_time, default=900.0)
    p.add_argument("--connect-timeout", type=parse_time, default=900.0)
    p.add_argument("-i", "--min-backoff", type=parse_time, default=1.0)
    p.add_argument("-b", "--max-backoff", type=parse_time, default=60.0)
    p.add_argument("-s", "--workdir", help="directory for the workspace")
    p.add_argument("--cores", type=_resource(int))
    p.add_argument("--memory", type=_resource(parse_size_mb))
    p.add_argument("--disk", type=_resource(parse_size_mb))
    p.add_argument("--gpus", type=_resource(int))
    p.add_argument("--wall-time", type=parse_time, default=0.0)
    p.add_argument("--single-shot", action="store_true", help="exit after one connection")
    p.add_argument("--feature", action="append", default=[], help="announce a feature")
    p.add_argument("-A", "--arch", help="architecture to report")
    p.add_argument("-O", "--os", help="operating system to report")
    p.add_argument("--ssl", action="store_true", help="encrypt the connection with TLS")
    p.add_argument("--connection-mode", choices=("by_ip", "by_hostname", "by_apparent_ip"),
                   help="with -M: how to reach the manager (default: as it prefers)")
    p.add_argument("--parent-death", action="store_true", help="exit when the parent exits")
    p.add_argument("--coprocess", help="start this program as a coprocess for RemoteTasks")
    p.add_argument("--coprocesses-total", "--num_coprocesses", "--num-coprocesses",
                   dest="coprocesses_total", type=int, default=0,
                   help="coprocess instances (default: one per core)")
    for res in ("cores", "memory", "disk", "gpus"):
        p.add_argument(f"--coprocess-{res}", f"--coprocess_{res}", dest=f"coprocess_{res}",
                       type=int, default=-1, help=f"{res} reserved for each coprocess")
    p.add_argument("--from-factory", default=None, metavar="NAME",
                   help="the work_queue_factory that started this worker (the manager keeps "
                        "that factory's workers within its --max-workers)")
    p.add_argument("--disable-warm-python", action="store_true",
                   help="run Python tasks in a new interpreter each, as CCTools does")
    p.add_argument("--disable-symlinks", action="store_true",
                   help="give each sandbox its own copy of the cached inputs, not links")
    p.add_argument("--bandwidth", metavar="BPS",
                   help="most bytes per second the worker's transfers take (e.g. 100M)")
    p.add_argument("-w", "--tcp-window-size", type=parse_metric, default=0, metavar="SIZE",
                   help="TCP window size (SO_SNDBUF and SO_RCVBUF of the connection)")
    p.add_argument("--volatility", type=float, default=0.0, metavar="CHANCE",
                   help="chance (0 to 1) per minute that the worker disconnects (simulates "
                   "worker failures, for testing only)")
    p.add_argument("--volatility-interval", type=parse_time, default=60.0,
                   help=argparse.SUPPRESS)  # seconds between volatility checks (tests)
    # Accepted and ignored, like CCTools (deprecated there)
    for flag in ("-a", "--advertise", "-c", "--measure-capacity"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in ("-z", "--disk-threshold", "--memory-threshold", "--task-wrapper", "-p"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    # Foreman mode (worker/foreman.py): a manager to workers of its own
    p.add_argument("--foreman", action="store_true",
                   help="run as a foreman: a worker to the manager, a manager to its own "
                   "workers")
    p.add_argument("-f", "--foreman-name", metavar="NAME",
                   help="run as a foreman, and advertise to the catalog server as NAME")
    p.add_argument("--foreman-port", metavar="PORT[:HIGHPORT]",
                   help="run as a foreman listening on PORT (or the first free port of "
                   "PORT:HIGHPORT)")
    p.add_argument("-Z", "--foreman-port-file", metavar="FILE",
                   help="run as a foreman on any free port, and write the port to FILE")
    p.add_argument("-F", "--fast-abort", type=float, default=-1.0, metavar="MULT",
                   help="fast abort multiplier of the foreman (default: off)")
    p.add_argument("--specify-log", metavar="FILE",
                   help="write the foreman's statistics to FILE")
    # Refused, with the reason (see REFUSED)
    p.add_argument("--disk-allocation", action="append_const", const="--disk-allocation",
                   dest="refused", help=argparse.SUPPRESS)
    p.add_argument("--tlq", action=_Refused, dest="refused", help=argparse.SUPPRESS)
    return p


#: CCTools flags this worker refuses, and why.
REFUSED = {
    "--disk-allocation": "--disk-allocation is not supported: it needs root access to make "
                         "loop devices for the sandboxes",
    "--tlq": "--tlq is not supported: TLQ (the Transaction Log Query service) is not part "
             "of this worker",
}


class _Refused(argparse.Action):
    """A flag with a value that is refused (see REFUSED)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        namespace.refused = [*items, option_string]


def parse_address(words: list[str]) -> tuple[str, int]:
    if len(words) == 2:
        host, port = words
    elif len(words) == 1 and ":" in words[0]:
        host, port = words[0].split(";")[0].rsplit(":", 1)
    else:
        raise ValueError("give the manager as HOST PORT (or HOST:PORT)")
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"port {port!r} is not a number") from None


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    if args.manager_name:  # issue 5: find the manager through the catalog
        if args.address:
            raise ValueError("give either -M NAME or HOST PORT, not both")
        from ..catalog.finder import ManagerFinder

        ManagerFinder(args.manager_name, args.catalog, args.connection_mode)  # checks them
        cfg = WorkerConfig(manager_name=args.manager_name, catalogs=args.catalog,
                           connection_mode=args.connection_mode)
    else:
        host, port = parse_address(args.address)
        cfg = WorkerConfig(host=host, port=port)
    env = os.environ
    cfg.cores = args.cores if args.cores is not None else _env_int(env.get("CORES"))
    cfg.memory = args.memory if args.memory is not None else _env_int(env.get("MEMORY"))
    cfg.disk = args.disk if args.disk is not None else _env_int(env.get("DISK"))
    cfg.gpus = args.gpus if args.gpus is not None else _env_int(env.get("GPUS"))
    cfg.idle_timeout = args.idle_timeout
    cfg.connect_timeout = args.connect_timeout
    if args.timeout is not None:
        cfg.idle_timeout = cfg.connect_timeout = args.timeout
    if args.min_backoff > args.max_backoff:
        raise ValueError("--max-backoff must be at least --min-backoff")
    cfg.min_backoff, cfg.max_backoff = args.min_backoff, args.max_backoff
    cfg.single_shot = args.single_shot
    cfg.workdir = args.workdir
    cfg.wall_time = args.wall_time
    cfg.features = list(args.feature)
    cfg.factory_name = args.from_factory
    cfg.ssl = args.ssl
    cfg.warm_python = not args.disable_warm_python
    cfg.copy_inputs = args.disable_symlinks
    cfg.bandwidth = parse_metric(args.bandwidth) if args.bandwidth else 0
    cfg.tcp_window = args.tcp_window_size
    if not 0.0 <= args.volatility <= 1.0:
        raise ValueError("--volatility is a chance between 0 and 1")
    cfg.volatility, cfg.volatility_interval = args.volatility, args.volatility_interval
    if args.coprocess:
        exe = shutil.which(args.coprocess) or os.path.abspath(args.coprocess)
        if not os.access(exe, os.X_OK):
            raise ValueError(f"coprocess {args.coprocess!r} is not an executable file")
        cfg.coprocess = exe
    cfg.coprocesses_total = args.coprocesses_total
    for res in ("cores", "memory", "disk", "gpus"):
        setattr(cfg, f"coprocess_{res}", getattr(args, f"coprocess_{res}"))
    if args.password:
        with open(args.password, "rb") as f:
            cfg.password = f.read()
    if args.arch:
        cfg.arch = args.arch
    if args.os:
        cfg.os_name = args.os
    return cfg


def foreman_config(args: argparse.Namespace) -> Any:
    """The foreman's settings when a foreman flag asks for one (as CCTools: --foreman, -f,
    --foreman-port or -Z), else None."""
    if not (args.foreman or args.foreman_name or args.foreman_port or args.foreman_port_file):
        for flag, value in (("-F", args.fast_abort >= 0), ("--specify-log", args.specify_log)):
            if value:
                print(f"work_queue_worker: {flag} only matters with --foreman; ignored",
                      file=sys.stderr)
        return None
    if args.foreman_name and args.manager_name == args.foreman_name:
        raise ValueError(f"the foreman ({args.foreman_name}) and the manager "
                         f"({args.manager_name}) share a name; make them different")
    from ..worker.foreman import ForemanConfig  # loads the manager: only for a foreman

    cfg = ForemanConfig(name=args.foreman_name, fast_abort=args.fast_abort,
                        port_file=args.foreman_port_file, catalog=args.catalog)
    if args.specify_log:
        cfg.stats_log = os.path.abspath(args.specify_log)
    if args.foreman_port:
        low, sep, high = args.foreman_port.partition(":")
        try:
            cfg.port = (int(low), int(high)) if sep else int(low)
        except ValueError:
            raise ValueError(f"--foreman-port {args.foreman_port!r} is not PORT or "
                             "PORT:HIGHPORT") from None
    return cfg


def _env_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"work_queue_worker version {__version__} (pure Python; protocol 11)")
        return 0
    if args.refused:
        parser.error(REFUSED[args.refused[0]])
    setup_debug(args.debug, args.debug_file, "work_queue_worker", args.debug_rotate_max)
    try:
        cfg = config_from_args(args)
        fcfg = foreman_config(args)
        if cfg.workdir:
            os.makedirs(cfg.workdir, exist_ok=True)
    except (ValueError, OSError, argparse.ArgumentTypeError) as e:
        parser.error(str(e))
    for var in ("CORES", "MEMORY", "DISK", "GPUS"):
        os.environ.pop(var, None)
    if args.bandwidth:  # as CCTools: its tasks (and their foremen) see the setting
        os.environ["WORK_QUEUE_BANDWIDTH"] = args.bandwidth

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, stop)
    try:
        if fcfg is None:
            worker = Worker(cfg)
        else:
            from ..worker.foreman import Foreman

            worker = Foreman(cfg, fcfg)
    except CoprocessError as e:
        print(f"work_queue_worker: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the foreman's port
        print(f"work_queue_worker-foreman: {e}", file=sys.stderr)
        return 1
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
