"""``work_queue_status [options] [HOST [PORT]]``: managers from the catalog, or one manager's
tasks, workers, categories and resources asked of it directly.  Output as CCTools prints it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from typing import Any

from ..catalog import client, jx
from ..errors import AuthenticationError
from ..version import __version__
from .common import parse_time, setup_debug

LEFT, RIGHT = "l", "r"
PLAIN, GIGABYTES = "plain", "gb"

# (field, title, mode, align, width): a negative width is a minimum that grows with the
# terminal, as in CCTools' jx_table.
QUEUE_HEADERS = [("project", "PROJECT", PLAIN, LEFT, -18), ("name", "HOST", PLAIN, LEFT, -21),
                 ("port", "PORT", PLAIN, RIGHT, 5), ("tasks_waiting", "WAITING", PLAIN, RIGHT, 7),
                 ("tasks_running", "RUNNING", PLAIN, RIGHT, 7),
                 ("tasks_complete", "COMPLETE", PLAIN, RIGHT, 8),
                 ("workers", "WORKERS", PLAIN, RIGHT, 7)]
TASK_HEADERS = [("taskid", "ID", PLAIN, LEFT, 4), ("state", "STATE", PLAIN, LEFT, 8),
                ("priority", "PRIORITY", PLAIN, RIGHT, 8), ("host", "HOST", PLAIN, LEFT, -10),
                ("command", "COMMAND", PLAIN, LEFT, -18), ("cores", "CORES", PLAIN, LEFT, 8),
                ("memory", "MEMORY", PLAIN, LEFT, 8), ("disk", "DISK", PLAIN, LEFT, 8),
                ("gpus", "GPUS", PLAIN, LEFT, 8)]
WORKER_HEADERS = [("hostname", "HOST", PLAIN, LEFT, -10),
                  ("address_port", "ADDRESS", PLAIN, LEFT, -15),
                  ("total_tasks_complete", "COMPLETED", PLAIN, RIGHT, 9),
                  ("total_tasks_running", "RUNNING", PLAIN, LEFT, 7),
                  ("cores_inuse", "CORE_USE", PLAIN, LEFT, -6),
                  ("cores_total", "CORE_ALL", PLAIN, LEFT, -6),
                  ("memory_inuse", "MEM_USE", PLAIN, LEFT, -5),
                  ("memory_total", "MEM_ALL", PLAIN, LEFT, -5),
                  ("disk_inuse", "DISK_USE", PLAIN, LEFT, -6),
                  ("disk_total", "DISK_ALL", PLAIN, LEFT, -6),
                  ("gpus_inuse", "GPUS_USE", PLAIN, LEFT, -6),
                  ("gpus_total", "GPUS_ALL", PLAIN, LEFT, -6)]
ABLE_HEADERS = [("category", "CATEGORY", PLAIN, LEFT, -12),
                ("tasks_on_workers", "DISPATCHED", PLAIN, RIGHT, 10),
                ("tasks_waiting", "WAITING", PLAIN, RIGHT, 10),
                ("workers_able", "FIT-WORKERS", PLAIN, RIGHT, 12),
                ("max_cores", "MAX-CORES", PLAIN, RIGHT, 10),
                ("max_memory", "MAX-MEMORY", PLAIN, RIGHT, 10),
                ("max_disk", "MAX-DISK", PLAIN, RIGHT, 10)]
RESOURCE_HEADERS = [("project", "MANAGER", PLAIN, LEFT, -19),
                    ("cores_total", "CORES", PLAIN, RIGHT, 6),
                    ("cores_inuse", "INUSE", PLAIN, RIGHT, 6),
                    ("memory_total", "MEM(GB)", GIGABYTES, RIGHT, 8),
                    ("memory_inuse", "INUSE", GIGABYTES, RIGHT, 8),
                    ("gpus_total", "GPUS", PLAIN, RIGHT, 9),
                    ("gpus_inuse", "INUSE", PLAIN, RIGHT, 9)]
CAPACITY_HEADERS = [("project", "MANAGER", PLAIN, LEFT, 30),
                    ("capacity_tasks", "TASKS", PLAIN, LEFT, 10),
                    ("capacity_cores", "CORES", PLAIN, LEFT, 10),
                    ("capacity_memory", "MEMORY", PLAIN, LEFT, 15),
                    ("capacity_disk", "DISK", PLAIN, LEFT, 20)]

#: Direct query per mode: (request, table).
DIRECT = {"queue": ("queue", QUEUE_HEADERS), "tasks": ("task", TASK_HEADERS),
          "workers": ("worker", WORKER_HEADERS), "able": ("wable", ABLE_HEADERS),
          "resources": ("resources", RESOURCE_HEADERS), "capacity": ("queue", CAPACITY_HEADERS)}


class StatusError(Exception):
    """A one-line error for the user."""


# -- tables (dttools/src/jx_table.c) ----------------------------------------------------------

def _fill(text: str, width: int, align: str, left: int, extra: int) -> str | None:
    if left < 1 or width == 0:
        return None
    if width < 0:
        width = -width + extra
    if align == LEFT:
        return text[:width].ljust(width)
    return text[-width:].rjust(width) if text else " " * width


def _layout(headers: list[tuple[Any, ...]], columns: int) -> tuple[int, int]:
    total = sum(abs(h[4]) + 1 for h in headers)
    growing = sum(1 for h in headers if h[4] < 0)
    extra = max(0, columns - total) // growing if growing else 0
    if columns > 0:
        total = min(total, columns)
    return total, extra


def _value_text(record: dict, field: str, mode: str) -> str:
    if mode == GIGABYTES:
        value = _integer(record.get(field))
        text = "%.1f K" % (value / 1024.0)
        return text.split(".")[0]
    if field not in record:
        return "???"
    value = record[field]
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return "%.16g" % value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _integer(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def table_line(headers: list[tuple[Any, ...]], texts: list[str], columns: int) -> str:
    left, extra = _layout(headers, columns)
    out = []
    for i, (h, text) in enumerate(zip(headers, texts, strict=True)):
        cell = _fill(text, h[4], h[3], left, extra)
        if cell is not None:
            out.append(cell + " ")
        following = headers[i + 1][4] if i + 1 < len(headers) else 0
        left -= abs(following) + 1
    return "".join(out)


def table_header(headers: list[tuple[Any, ...]], columns: int) -> str:
    return table_line(headers, [h[1].upper() for h in headers], columns)


def _marked(record: dict) -> dict:
    """A worker away (its connection dropped; the manager keeps its tasks for it to come
    back) shows ``N away`` in the RUNNING column, the one column narrow tables keep whole;
    the record itself is left as it is."""
    if record.get("state") == "away":
        return dict(record, total_tasks_running=f"{record.get('total_tasks_running')} away")
    return record


def table_row(headers: list[tuple[Any, ...]], record: dict, columns: int) -> str:
    return table_line(headers, [_value_text(record, h[0], h[2]) for h in headers], columns)


def terminal_columns() -> int:
    text = os.environ.get("COLUMNS")
    if text is not None:
        try:
            return int(text) if int(text) >= 10 else 80
        except ValueError:
            return 80
    if sys.stdout.isatty():
        cols = shutil.get_terminal_size((80, 24)).columns
        return cols if cols >= 10 else 80
    return 80


# -- queries -------------------------------------------------------------------------------------

def catalog_rows(records: list[dict], project_regex: str | None,
                 headers: list[tuple[Any, ...]], columns: int) -> list[str]:
    """Table rows for catalog records; foremen appear under their manager as ``->name``."""
    import re

    pattern = re.compile(project_regex) if project_regex else None
    lines: list[str] = []

    def children(rec: dict, depth: int) -> None:
        if depth > 16:
            return
        try:
            ip = socket.gethostbyname(str(rec.get("name", "")))
        except (OSError, UnicodeError):
            return
        me = f"{ip}:{_integer(rec.get('port'))}"
        for child in records:
            if child.get("my_manager") == me and child is not rec:
                shown = dict(child)
                shown["project"] = "-" * (depth - 1) + ">" + str(child.get("project", ""))
                lines.append(table_row(headers, shown, columns))
                children(child, depth + 1)

    for rec in records:
        mine = rec.get("my_manager")
        if mine and mine != "127.0.0.1:-1":
            continue
        project = rec.get("project")
        if pattern is not None and not (isinstance(project, str) and pattern.fullmatch(project)):
            continue
        lines.append(table_row(headers, rec, columns))
        children(rec, 1)
    return lines


def run(args: argparse.Namespace) -> str:
    """The text to print for the parsed command line; StatusError for the user's errors."""
    columns = terminal_columns()
    timeout = args.timeout
    if args.manager:
        host = args.manager
        port = args.port
        request, headers = DIRECT[args.mode]
        password = None
        if args.password:
            try:
                with open(args.password, "rb") as f:
                    password = f.read()
            except OSError as e:
                raise StatusError(f"cannot read password file {args.password}: "
                                  f"{e.strerror}") from None
        try:
            records = client.query_manager(host, port, request, timeout=timeout, ssl=args.ssl,
                                           password=password)
        except AuthenticationError as e:
            raise StatusError(f"{host} port {port}: {e}") from None
        except OSError as e:
            raise StatusError(str(e)) from None
        if args.verbose:
            return json.dumps(records, separators=(",", ":")) + "\n"
        rows = [table_row(headers, _marked(r), columns) for r in records if isinstance(r, dict)]
        return "\n".join([table_header(headers, columns), *rows]) + "\n"
    where = "true"
    if args.where:
        where = args.where
    expr = f"({where}) and ((type==\"wq_manager\") or (type==\"wq_master\"))"
    try:
        check = jx.compile_filter(expr)
    except jx.JXSyntaxError:
        raise StatusError(f"invalid expression: {args.where}") from None
    try:
        records = client.query_catalogs(args.catalog, expr, timeout=timeout)
    except (OSError, ValueError) as e:
        catalog = args.catalog or client.format_catalogs(client.default_catalogs())
        raise StatusError(f"failed to query catalog server {catalog}: {e}") from None
    records = [r for r in records if check(r)]  # also when the server could not filter
    if args.verbose:
        return "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in records) \
            + "\n]\n"
    headers = {"resources": RESOURCE_HEADERS, "capacity": CAPACITY_HEADERS}.get(
        args.mode, QUEUE_HEADERS)
    try:
        rows = catalog_rows(records, args.project_name, headers, columns)
    except Exception as e:  # a bad -M expression
        raise StatusError(f"bad project name expression {args.project_name!r}: {e}") from None
    return "\n".join([table_header(headers, columns), *rows]) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="work_queue_status",
        description="If a manager and port are given, get data directly from that manager. "
                    "Otherwise, contact the catalog server for summary data.")
    p.add_argument("manager", nargs="?", help="manager host")
    p.add_argument("port", nargs="?", type=int, default=9123, help="manager port (9123)")
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("-Q", "--statistics", dest="mode", action="store_const", const="queue",
                       help="show queue summary statistics (default)")
    modes.add_argument("-W", "--workers", dest="mode", action="store_const", const="workers",
                       help="list workers connected to the given manager")
    modes.add_argument("-T", "--tasks", dest="mode", action="store_const", const="tasks",
                       help="list tasks of the given manager")
    modes.add_argument("-A", "--able-workers", dest="mode", action="store_const",
                       const="able", help="list categories of the given manager, size of "
                       "largest task, and workers that can run it")
    modes.add_argument("-R", "--resources", dest="mode", action="store_const",
                       const="resources", help="show aggregated resources of all managers")
    modes.add_argument("--capacity", dest="mode", action="store_const", const="capacity",
                       help="show resource capacities of all managers")
    p.add_argument("-M", "--project-name", help="filter results of -Q for managers matching "
                   "<name> (a regular expression)")
    p.add_argument("-l", "--verbose", action="store_true", help="long (JSON) output")
    p.add_argument("-C", "--catalog", help="catalog server(s), HOSTNAME:PORT[,...]")
    p.add_argument("--where", help="filter catalog results by this JX expression")
    p.add_argument("-t", "--timeout", type=parse_time, default=30.0,
                   help="give up after this long (default 30 s)")
    p.add_argument("--ssl", action="store_true", help="use TLS when asking a manager directly")
    p.add_argument("-P", "--password", help="password file of a manager that requires one")
    p.add_argument("-d", "--debug", action="append", help="enable debugging")
    p.add_argument("-o", "--debug-file", help="send debugging to this file")
    p.add_argument("-O", "--debug-rotate-max", help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true", help="show version")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"work_queue_status version {__version__} (pure Python)")
        return 0
    setup_debug(args.debug, args.debug_file, "work_queue_status")
    args.mode = args.mode or "queue"
    if args.mode in ("tasks", "workers", "able") and not args.manager:
        parser.error("options -A, -T and -W need an explicit manager to query")
    if args.project_name and args.mode != "queue":
        parser.error("option -M,--project-name can only be used together with -Q,--statistics")
    if args.timeout <= 0:
        parser.error("the timeout must be positive")
    try:
        text = run(args)
    except StatusError as e:
        print(f"work_queue_status: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
