"""Option parsing shared by the command-line tools (CCTools spellings and units)."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import re
import sys

from ..manager.logs import DebugFormatter, parse_debug_flags

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def parse_time(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1d``."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([smhdSMHD]?)\s*", str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"bad time {text!r} (use e.g. 30, 30s, 15m, 2h, 1d)")
    return float(match.group(1)) * _TIME_UNITS[(match.group(2) or "s").lower()]


def parse_size_mb(text: str) -> int:
    """Megabytes from ``4096``, ``4G``, ``512M``."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTPkmgtp]?)[Bb]?\s*", str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 4096, 512M, 4G)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "M").upper()])


def parse_metric(text: str) -> int:
    """Bytes from ``100``, ``100K``, ``2M``, ``1G`` (powers of 1024, as CCTools'
    string_metric_parse reads them)."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMGTPkmgtp]?)[Bb]?\s*", str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 100, 100K, 2M, 1G)")
    shift = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}[match.group(2).upper()]
    return int(match.group(1)) << shift


class _DebugFileHandler(logging.handlers.RotatingFileHandler):
    """A debug file that, past its size limit, is renamed ``FILE.old`` and begun again
    (CCTools' --debug-rotate-max)."""

    def rotation_filename(self, default_name: str) -> str:
        return self.baseFilename + ".old"


def setup_debug(flags: list[str] | None, debug_file: str | None, program: str,
                rotate_max: int = 0) -> None:
    """``-d all -o file``: send this program's log records to a file (or stderr); with
    ``rotate_max`` bytes, the file is rotated to ``FILE.old`` when it grows past them."""
    if flags:
        parse_debug_flags(flags)  # an unknown flag is an error, as in CCTools
    if not flags:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format=f"{program}: %(message)s")
        return
    handler: logging.Handler
    if debug_file and debug_file not in (":stderr",):
        if debug_file == ":stdout":
            handler = logging.StreamHandler(sys.stdout)
        elif rotate_max > 0:
            handler = _DebugFileHandler(debug_file, maxBytes=rotate_max, backupCount=1)
        else:
            handler = logging.FileHandler(debug_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DebugFormatter(program))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
