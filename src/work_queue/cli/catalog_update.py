"""``catalog_update [options]``: advertise this host to a catalog server, as CCTools' does.

The record describes the host (``type:"node"``, the CCTools version, cpu, opsys, opsysversion,
load1/5/15, memory_total, memory_avail, cpus, uptime, owner); the fields of the JSON object in
``-f FILE`` are put on top of it.  It goes to the catalogs of ``-c`` (``host[:port]``, several
separated by commas; default ``CATALOG_HOST``, else localhost:9097) over TCP (or UDP with
``CATALOG_UPDATE_PROTOCOL=udp``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import sys
import time
from typing import Any

import psutil

from ..catalog.client import send_update
from ..version import __version__
from .common import setup_debug

#: the CCTools version whose record this is
CCTOOLS_VERSION = "7.17.1"

HELP = """Use: catalog_update [options]
where options are:
 -c,--catalog=<catalog>
 -f,--file=<json-file>
 -d,--debug=<flags>
 -o,--debug-file=<file>
 -v,--version
 -h,--help
"""


def host_record() -> dict[str, Any]:
    """The fields CCTools' catalog_update reports about this host."""
    uname = platform.uname()
    load = os.getloadavg()
    memory = psutil.virtual_memory()
    try:
        owner = getpass.getuser()
    except (KeyError, OSError):
        owner = str(os.getuid())
    return {
        "type": "node", "version": CCTOOLS_VERSION, "cpu": uname.machine.lower(),
        "opsys": uname.system.lower(), "opsysversion": uname.release.lower(),
        "load1": load[0], "load5": load[1], "load15": load[2],
        "memory_total": memory.total, "memory_avail": memory.available,
        "cpus": os.cpu_count() or 1,
        # CCTools spells this field "uptime," (with the comma); both are sent
        "uptime,": int(time.time() - psutil.boot_time()),
        "uptime": int(time.time() - psutil.boot_time()),
        "owner": owner,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="catalog_update", add_help=False)
    p.add_argument("-c", "--catalog")
    p.add_argument("-f", "--file")
    p.add_argument("-d", "--debug", action="append")
    p.add_argument("-o", "--debug-file")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        sys.stdout.write(HELP)
        return 1
    if args.help:
        sys.stdout.write(HELP)
        return 1
    if args.version:  # as CCTools: prints the version and goes on
        print(f"catalog_update version {__version__} (pure Python)")
    setup_debug(args.debug, args.debug_file, "catalog_update")
    custom: dict[str, Any] = {}
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                custom = json.load(f)
        except (OSError, ValueError):
            custom = None  # type: ignore[assignment]
        if not isinstance(custom, dict):
            print(f"catalog_update: {args.file} does not contain a valid json record!",
                  file=sys.stderr)
            return 1
    record = {**host_record(), **custom}
    try:
        sent = send_update(args.catalog, record)
    except ValueError as e:
        sent, reason = 0, str(e)
    else:
        reason = "no catalog server took it"
    if not sent:
        print(f"catalog_update: unable to send update: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
