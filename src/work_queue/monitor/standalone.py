"""The ``resource_monitor`` command as one executable file (a Python zip application).

The monitoring package uses only the standard library and relative imports, so it runs on its
own: :func:`build` packs it with a ``#!/usr/bin/env python3`` line into a single file that can
be sent to workers as ``cctools-monitor`` (as CCTools sends its ``resource_monitor`` binary),
and that starts in tens of milliseconds because it does not import the ``work_queue`` package.

    python -m work_queue.monitor.standalone OUTPUT [--python /usr/bin/python3]
"""

from __future__ import annotations

import io
import os
import py_compile
import sys
import tempfile
import zipfile

MODULES = ("__init__.py", "summary.py", "measure.py", "snapshots.py", "main.py")
PACKAGE = "wq_resource_monitor"
MAIN = f"import sys\nfrom {PACKAGE}.main import main\nsys.exit(main())\n"


def build(output: str, interpreter: str = "/usr/bin/env python3") -> str:
    """Write the executable to ``output`` (replaced atomically); returns ``output``."""
    here = os.path.dirname(os.path.abspath(__file__))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, \
            tempfile.TemporaryDirectory() as tmp:
        z.writestr("__main__.py", MAIN)
        for name in MODULES:
            source = os.path.join(here, name)
            z.write(source, f"{PACKAGE}/{name}")
            # bytecode too, so this interpreter does not compile at every start (others,
            # with another magic number, fall back to the source)
            pyc = os.path.join(tmp, name + "c")
            py_compile.compile(source, pyc, dfile=f"{PACKAGE}/{name}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            z.write(pyc, f"{PACKAGE}/{name}c")
    tmp = f"{output}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(b"#!" + interpreter.encode() + b"\n")
        f.write(buf.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)
    return output


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    interpreter = "/usr/bin/env python3"
    if len(args) == 3 and args[1] == "--python":
        interpreter = args[2]
        args = args[:1]
    if len(args) != 1:
        print("use: python -m work_queue.monitor.standalone OUTPUT [--python INTERPRETER]",
              file=sys.stderr)
        return 1
    try:
        build(args[0], interpreter)
    except OSError as e:
        print(f"cannot write {args[0]}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
