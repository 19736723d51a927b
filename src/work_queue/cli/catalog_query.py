"""``catalog_query [options]``: print the records of a catalog server, as CCTools' does.

Without ``-p`` the records are printed as a JX list (CCTools' pretty printing); each ``-p EXPR``
makes a table instead: a header of the expressions, then one line per record with their values,
each followed by a tab.  ``-w EXPR`` keeps the records for which the JX expression is true.
``-c`` names the catalog (``host[:port]``, several separated by commas, tried in order; default
``CATALOG_HOST``, else localhost:9097); ``https://host:port`` asks a catalog server's HTTPS port
(``--ssl-port``) instead.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from ..catalog import jx
from ..catalog.client import CatalogError, parse_catalogs, parse_hostport, query_catalog
from ..version import __version__
from .common import parse_metric, parse_time, setup_debug

HELP = """catalog_query [options]
where options are:
 -w,--where=<expr>              Filter results by this expression.
 -p,--output=<expr>             Output this expression for each record.
 -c,--catalog=<host>            Query the catalog on this host (https://host:port for HTTPS).
 -d,--debug=<flag>              Enable debugging for this sybsystem
 -o,--debug-file=<file>         Send debugging to this file. (can also be :stderr, or :stdout)
 -O,--debug-rotate-max=<bytes>  Rotate file once it reaches this size. (default 10M, 0 disables)
 -t,--timeout=<time>            Timeout.
 -h,--help                      This message.
"""

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() or ord(ch) > 127:
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _double(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return format(value, ".16g")


def jx_text(value: Any) -> str:
    """``value`` as CCTools' jx_print writes it (compact, ``%.16g`` for doubles)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ",".join(jx_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{jx_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, jx.JXError):
        return f"error({_string(value.message)})"
    return _string(str(value))


def jx_pretty(value: Any, level: int = 0) -> str:
    """``value`` as CCTools' jx_pretty_print writes it (objects and lists on their own lines,
    two spaces a level)."""
    pad = "  " * level
    if isinstance(value, dict):
        inner = "  " * (level + 1)
        items = [f"{inner}{_string(str(k))}:{jx_pretty(v, level + 2)}" for k, v in value.items()]
        return f"\n{pad}{{\n" + ",\n".join(items) + ("\n" if items else "") + f"{pad}}}"
    if isinstance(value, list):
        inner = "  " * (level + 1)
        items = [f"{inner}{jx_pretty(v, level + 1)}" for v in value]
        return f"\n{pad}[\n" + ",\n".join(items) + ("\n" if items else "") + f"{pad}]"
    return jx_text(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="catalog_query", add_help=False)
    p.add_argument("-w", "--where")
    p.add_argument("-p", "--output", action="append", default=[])
    p.add_argument("-c", "--catalog")
    p.add_argument("-d", "--debug", action="append")
    p.add_argument("-o", "--debug-file")
    p.add_argument("-O", "--debug-rotate-max", type=parse_metric, default=10 << 20)
    p.add_argument("-t", "--timeout", type=parse_time, default=60.0)
    p.add_argument("-l", "--verbose", action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("extra", nargs="*")
    return p


def catalogs(spec: str | None) -> list[tuple[str, int, bool]]:
    """(host, port, over HTTPS) of each catalog of ``-c``, in order."""
    if spec is None:
        return [(h, p, False) for h, p in parse_catalogs(None)]
    out = []
    for word in spec.split(","):
        word = word.strip()
        tls = word.startswith("https://")
        word = word.removeprefix("https://").removeprefix("http://").rstrip("/")
        if word:
            out.append((*parse_hostport(word), tls))
    return out


def fetch(spec: str | None, where: str | None, timeout: float) -> list[dict]:
    """The records of the first catalog that answers; CatalogError naming every failure."""
    deadline = time.monotonic() + timeout
    errors = []
    for host, port, tls in catalogs(spec):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            return query_catalog(host, port, where, left, tls)
        except CatalogError as e:
            errors.append(str(e))
    raise CatalogError("; ".join(errors) or "no catalog server given")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        sys.stdout.write(HELP)
        return 1
    if args.version:
        print(f"catalog_query version {__version__} (pure Python)")
        return 1  # as CCTools
    if args.help or args.extra:
        sys.stdout.write(HELP)
        return 1
    setup_debug(args.debug, args.debug_file, "catalog_query", args.debug_rotate_max)
    try:
        outputs = [(text, jx.parse(text)) for text in args.output]
    except jx.JXSyntaxError:
        bad = next(t for t in args.output if not _parses(t))
        print(f"couldn't parse output expression: {bad}", file=sys.stderr)
        return 1
    if args.where is not None and not _parses(args.where):
        print(f"invalid expression: {args.where}", file=sys.stderr)
        return 1
    try:
        records = fetch(args.catalog, args.where, args.timeout)
    except (CatalogError, ValueError) as e:
        print(f"couldn't query catalog: {e}", file=sys.stderr)
        return 1
    if not outputs:
        sys.stdout.write("[\n" + ",\n".join(jx_pretty(r) for r in records) + "\n]\n")
        return 0
    lines = ["".join(f"{text.strip()}\t" for text, _ in outputs)]
    for record in records:
        lines.append("".join(f"{jx_text(_value(tree, record))}\t" for _, tree in outputs))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _parses(text: str) -> bool:
    try:
        jx.parse(text)
    except jx.JXSyntaxError:
        return False
    return True


def _value(tree: Any, record: dict) -> Any:
    try:
        return jx.evaluate(tree, record)
    except (RecursionError, OverflowError, TypeError, ValueError) as e:
        return jx.JXError(str(e))


if __name__ == "__main__":
    sys.exit(main())
