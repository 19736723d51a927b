"""``poncho_package_run`` (and the old name ``python_package_run``)."""

from __future__ import annotations

import sys

from ..poncho.package_run import main as run_main


def main(argv: list[str] | None = None) -> int:
    return int(run_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
