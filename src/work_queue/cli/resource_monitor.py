"""``resource_monitor``: run a command and measure (and limit) its resources, as CCTools'
``resource_monitor`` does (see :mod:`work_queue.monitor.main`)."""

from __future__ import annotations

import sys

from ..monitor.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
