"""``poncho_package_serverize``: turn plain Python functions into a Work Queue coprocess.

    poncho_package_serverize --src F --function NAME [--function NAME2 ...] --dest coprocess.py
                             [--version work_queue|taskvine] [--pack env.tgz]

The result is an executable script for ``work_queue_worker --coprocess coprocess.py``.
"""

from __future__ import annotations

import argparse
import sys

from work_queue.poncho import DEFAULT_NAME, ServerizeError, create_coprocess_code

PROGRAM = "poncho_package_serverize"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Turn functions of a Python file into a Work Queue serverless coprocess "
                    "(for work_queue_worker --coprocess).")
    parser.add_argument("--src", required=True,
                        help="Python file with the function(s) to serve")
    parser.add_argument("--function", action="append", metavar="NAME",
                        help="name of a top-level function of --src to serve (repeatable)")
    parser.add_argument("--dest", required=True, help="path of the coprocess script to write")
    parser.add_argument("--version", choices=["work_queue", "taskvine"], default="work_queue",
                        help="kind of serverless code to write (default: work_queue)")
    parser.add_argument("--pack", metavar="ENV_TGZ",
                        help="also pack a poncho (conda) environment for the functions "
                             "(not supported by this implementation)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.function:
        print(f"{PROGRAM}: error: give at least one --function", file=sys.stderr)
        return 1
    if args.version == "taskvine":
        print(f"{PROGRAM}: error: TaskVine libraries are not supported by this implementation; "
              "use --version work_queue", file=sys.stderr)
        return 1
    try:
        has_name = create_coprocess_code(args.src, args.function, args.dest)
    except ServerizeError as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        return 1
    if not has_name:
        print(f"No name function found, defaulting to {DEFAULT_NAME}")
    print(f"{PROGRAM}: wrote {args.dest} serving {', '.join(dict.fromkeys(args.function))}")
    if args.pack:
        print(f"{PROGRAM}: error: --pack is not supported by this implementation (it needs conda "
              f"and conda-pack); {args.dest} was written but no environment was packed into "
              f"{args.pack}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
