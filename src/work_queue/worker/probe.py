"""Detect this host's cores, memory (MB), disk (MB) and gpus."""

from __future__ import annotations

import os
import shutil
import subprocess

import psutil

MB = 1 << 20


def detect_cores() -> int:
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def detect_memory() -> int:
    return int(psutil.virtual_memory().total // MB)


def detect_disk(path: str) -> int:
    return int(shutil.disk_usage(path).free // MB)


def detect_gpus() -> tuple[int, str | None]:
    """Number of NVIDIA gpus and the model name (0, None without nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0, None
    try:
        out = subprocess.run([exe, "--query-gpu=count,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0, None
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        return 0, None
    count, _, name = lines[0].partition(",")
    try:
        return int(count), name.strip() or None
    except ValueError:
        return 0, None
