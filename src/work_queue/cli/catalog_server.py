"""``catalog_server [options]``: a catalog of managers, with a status web page at ``/``."""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys

from ..catalog.server import DEFAULT_PORT, CatalogServer
from ..version import __version__
from .common import parse_metric, parse_time, setup_debug


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="catalog_server",
        description="Collect the updates of Work Queue managers (UDP on PORT, TCP on PORT+1) "
                    "and answer queries and the status page over HTTP on PORT.")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT}; TCP updates on port+1)")
    p.add_argument("-Z", "--port-file", help="pick a free port and write it to this file")
    p.add_argument("-I", "--interface", default="", help="listen only on this address")
    p.add_argument("-l", "--lifetime", type=parse_time, default=1800.0,
                   help="seconds a record lives after its last update (default 1800)")
    p.add_argument("-H", "--history", default="catalog.history",
                   help="directory for the history (default catalog.history; '' for none)")
    p.add_argument("-L", "--update-log", help="append each new record to this file")
    p.add_argument("-m", "--max-jobs", type=int, default=50,
                   help="queries answered at once (default 50)")
    p.add_argument("-n", "--name", help="preferred host name of this server")
    p.add_argument("-T", "--timeout", type=parse_time, default=60.0,
                   help="longest time to answer a query (default 60 s)")
    p.add_argument("-u", "--update-host", action="append", default=[],
                   help="report this server to that catalog (default: to none)")
    p.add_argument("-U", "--update-interval", type=parse_time, default=300.0,
                   help="seconds between reports to -u catalogs (default 300)")
    p.add_argument("-B", "--pid-file", help="write the process id to this file")
    p.add_argument("-d", "--debug", action="append", help="debug flags (e.g. all)")
    p.add_argument("-o", "--debug-file", help="write debug output to this file")
    p.add_argument("-O", "--debug-rotate-max", type=parse_metric, default=10 << 20,
                   help="rotate the debug file to FILE.old past this size (default 10M, "
                   "0 disables)")
    p.add_argument("-v", "--version", action="store_true", help="show version and exit")
    p.add_argument("-P", "--ssl-port", type=int, default=0,
                   help="port for HTTPS queries (default: a free one, with -C and -K)")
    p.add_argument("-C", "--ssl-cert", help="file holding the certificate for HTTPS")
    p.add_argument("-K", "--ssl-key", help="file holding the key for HTTPS")
    p.add_argument("-Y", "--ssl-port-file",
                   help="pick a free HTTPS port and write it to this file")
    for flag in ("-M", "--server-size", "-Q", "--streaming-timeout"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    p.add_argument("-S", "--single", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-b", "--background", action="store_true", help=argparse.SUPPRESS)
    return p


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The HTTPS context of -P/-C/-K/-Y (None without them); as CCTools, -C and -K are both
    needed once any of them is given."""
    if not (args.ssl_port or args.ssl_cert or args.ssl_key or args.ssl_port_file):
        return None
    if not args.ssl_key:
        raise ValueError("--ssl-key is also required for SSL.")
    if not args.ssl_cert:
        raise ValueError("--ssl-cert is also required for SSL.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.ssl_cert, args.ssl_key)
    return context


def _write_port(path: str, port: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"catalog_server version {__version__} (pure Python)")
        return 0
    setup_debug(args.debug, args.debug_file, "catalog_server", args.debug_rotate_max)
    port = 0 if args.port_file else args.port
    try:
        context = _ssl_context(args)
        server = CatalogServer(port=port, interface=args.interface, lifetime=args.lifetime,
                               history_dir=args.history or None,
                               update_hosts=args.update_host,
                               update_interval=args.update_interval, max_jobs=args.max_jobs,
                               query_timeout=args.timeout, name=args.name,
                               update_log=args.update_log, ssl_context=context,
                               ssl_port=0 if args.ssl_port_file else args.ssl_port)
    except (OSError, ValueError) as e:
        print(f"catalog_server: {e}", file=sys.stderr)
        return 1
    if args.ssl_port_file:  # before the port file: who waits for that one finds both
        _write_port(args.ssl_port_file, server.ssl_port)
    if args.port_file:
        _write_port(args.port_file, server.port)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, stop)
    print(f"catalog_server: listening on port {server.port} (TCP updates on "
          f"{server.port + 1})", file=sys.stderr)
    if server.ssl_port:
        print(f"catalog_server: listening for HTTPS on port {server.ssl_port}",
              file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
