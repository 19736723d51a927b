"""The worker's per-manager cache directory: objects stored under their cache names.

Also materialises lazy objects (``puturl`` downloads and ``putcmd`` commands) on first use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass

from ..protocol.names import escapes
from .executor import link_or_copy, remove_tree


@dataclass
class LazyObject:
    kind: str  # "url" or "cmd"
    source: str
    mode: int


class Cache:
    """Objects received from one manager, by cache name."""

    #: Objects up to this size are kept in memory instead of on disk (creating and deleting
    #: small files costs more than the rest of a short task).
    SMALL_LIMIT = 64 << 10

    def __init__(self, root: str, copy: bool = False) -> None:
        self.root = root
        #: sandboxes get copies of the objects, not hard links (--disable-symlinks)
        self.copy = copy
        os.makedirs(root, exist_ok=True)
        self.lazy: dict[str, LazyObject] = {}
        #: cache name -> (contents, mode) of small objects kept in memory
        self.small: dict[str, tuple[bytes, int]] = {}

    def path(self, name: str) -> str:
        """Filesystem path of a cache name; refuses names that would leave the cache."""
        if escapes(name):
            raise ValueError(f"bad cache name {name!r}")
        return os.path.join(self.root, name)

    def exists(self, name: str) -> bool:
        return name in self.small or os.path.lexists(self.path(name))

    def remove(self, name: str) -> None:
        self.lazy.pop(name, None)
        if self.small.pop(name, None) is None:
            remove_tree(self.path(name))

    def store(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Keep an object: in memory when small, else as a file."""
        if len(data) <= self.SMALL_LIMIT:
            remove_tree(self.path(name))
            self.small[name] = (data, mode)
            return
        self.small.pop(name, None)
        path = self.path(name)
        remove_tree(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, (mode | 0o600) & 0o777)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def place(self, name: str, dst: str) -> None:
        """Put object ``name`` at path ``dst`` (a task's sandbox)."""
        small = self.small.get(name)
        if small is None:
            link_or_copy(self.path(name), dst, self.copy)
            return
        data, mode = small
        parent = os.path.dirname(dst)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, (mode | 0o600) & 0o777)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def materialize(self, name: str, timeout: float = 3600) -> tuple[int, int, str | None]:
        """Create a lazy object.  Returns (size, microseconds, error text or None)."""
        obj = self.lazy.get(name)
        if obj is None:
            return 0, 0, "no such object"
        path = self.path(name)
        t0 = time.time()
        error: str | None = None
        try:
            if obj.kind == "url":
                with urllib.request.urlopen(obj.source, timeout=60) as resp, \
                        open(path, "wb") as f:
                    shutil.copyfileobj(resp, f, 1 << 20)
            else:
                cmd = obj.source.replace("%%", _shell_quote(path))
                done = subprocess.run(["/bin/sh", "-c", cmd], cwd=self.root,
                                      stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=timeout)
                if done.returncode != 0 or not os.path.exists(path):
                    error = (f"command exited with status {done.returncode}: "
                             + done.stdout.decode("utf-8", "replace")
                             + done.stderr.decode("utf-8", "replace"))
        except Exception as e:  # any failure becomes cache-invalid, never a crash
            error = f"{type(e).__name__}: {e}"
        elapsed = int((time.time() - t0) * 1e6)
        if error is not None:
            remove_tree(path)
            return 0, elapsed, error
        os.chmod(path, (obj.mode | 0o600) & 0o777)
        del self.lazy[name]
        return os.path.getsize(path), elapsed, None

    def clear(self) -> None:
        self.lazy.clear()
        self.small.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)


def _shell_quote(path: str) -> str:
    return "'" + path.replace("'", "'\"'\"'") + "'"
