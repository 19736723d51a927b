"""File objects of a task (inputs and outputs) and their cache names.

Cache names follow CCTools ``make_cached_name``: a global counter increments for every file
object; the id in the name is 0 for CACHE-flagged objects (so every task naming the same local
file shares one cached copy on a worker) and the counter value otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
from dataclasses import dataclass

from ..constants import (
    WORK_QUEUE_BUFFER,
    WORK_QUEUE_CACHE,
    WORK_QUEUE_DIRECTORY,
    WORK_QUEUE_FILE,
    WORK_QUEUE_FILE_PIECE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_REMOTECMD,
    WORK_QUEUE_URL,
)
from ..protocol.urlcodec import url_encode

_counter = itertools.count(1)


def _md5(text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hashlib.md5(data).hexdigest()


#: The md5 of the literal ``buffer`` (the name part of every uncached buffer).
_BUFFER_MD5 = _md5(b"buffer")

#: Digests of recent names and cached buffers: the same ones come back task after task (an
#: input file shared by thousands of tasks, every PythonTask's 4 KB wrapper, whose md5 alone
#: was a quarter of creating a PythonTask).  A bytes object caches its own hash, so looking
#: up the same buffer again costs no pass over its contents.
_DIGESTS: dict[str | bytes, str] = {}
_DIGESTS_MAX = 1024
_DIGEST_MAX_BYTES = 1 << 16


def _memo_md5(data: str | bytes) -> str:
    digest = _DIGESTS.get(data)
    if digest is None:
        digest = _md5(data)
        if len(data) <= _DIGEST_MAX_BYTES:
            if len(_DIGESTS) >= _DIGESTS_MAX:
                _DIGESTS.clear()
            _DIGESTS[data] = digest
    return digest


def check_remote_name(remote_name: str) -> str:
    """Refuse remote names that would escape the task sandbox."""
    if not isinstance(remote_name, str) or not remote_name:
        raise ValueError(f"remote name must be a non-empty string, not {remote_name!r}")
    if remote_name.startswith("/"):
        raise ValueError(f"remote name {remote_name!r} is absolute; it must be relative "
                         "to the task sandbox")
    if ".." in remote_name.split("/"):
        raise ValueError(f"remote name {remote_name!r} contains '..'; it must stay inside "
                         "the task sandbox")
    return remote_name


@dataclass(slots=True)
class FileSpec:
    """One input or output of a task."""

    type: int
    direction: int
    #: local path (FILE, DIRECTORY, FILE_PIECE), URL, command, or buffer contents
    source: str | bytes
    remote_name: str
    flags: int
    cachename: str
    offset: int = 0
    length: int = 0
    #: a non-recursive input directory: only an empty directory is created
    empty_dir: bool = False
    #: an output kept by the manager in memory (spilled to a temporary file when large)
    #: instead of being written at a local path
    memory: bool = False

    @property
    def cached(self) -> bool:
        return bool(self.flags & WORK_QUEUE_CACHE)

    @property
    def is_input(self) -> bool:
        return self.direction == WORK_QUEUE_INPUT

    def local_path(self, os_name: str = "", arch: str = "") -> str:
        """Local name with ``$OS`` and ``$ARCH`` replaced by the worker's values."""
        path = str(self.source)
        if "$OS" in path:
            path = path.replace("$OS", "Cygwin" if os_name.upper().startswith("CYGWIN")
                                else (os_name or platform.system()))
        if "$ARCH" in path:
            path = path.replace("$ARCH", arch or platform.machine())
        return path


def make_file_spec(type_: int, direction: int, source: str | bytes, remote_name: str,
                   flags: int, offset: int = 0, length: int = 0) -> FileSpec:
    """Create a file object with its CCTools cache name."""
    check_remote_name(remote_name)
    number = next(_counter)
    ident = 0 if flags & WORK_QUEUE_CACHE else number
    if type_ in (WORK_QUEUE_FILE, WORK_QUEUE_DIRECTORY):
        src = str(source)
        base = url_encode(os.path.basename(src.rstrip("/")) or src)
        name = f"file-{ident}-{_memo_md5(src)}-{base}"
    elif type_ == WORK_QUEUE_FILE_PIECE:
        src = str(source)
        base = url_encode(os.path.basename(src))
        # CCTools computes the name before offset/length are set, hence always -0-0; we add the
        # real range so two pieces of one file never collide in a worker's cache.
        name = f"piece-{ident}-{_md5(src)}-{base}-{offset}-{length}"
    elif type_ == WORK_QUEUE_REMOTECMD:
        name = f"cmd-{ident}-{_md5(str(source))}"
    elif type_ == WORK_QUEUE_URL:
        name = f"url-{ident}-{_md5(str(source))}"
    elif type_ == WORK_QUEUE_BUFFER:
        # CCTools hashes the literal "buffer", so every cached buffer collides on one name;
        # we hash the contents for cached buffers so different buffers stay different.
        if ident == 0:
            data = source if isinstance(source, bytes) else str(source).encode()
            name = f"buffer-0-{_memo_md5(data)}"
        else:
            name = f"buffer-{ident}-{_BUFFER_MD5}"
    else:
        raise ValueError(f"unknown file type {type_}")
    return FileSpec(type_, direction, source, remote_name, flags, _fit(name), offset, length)


#: The longest cache name we make.  A worker stores each object under its cache name, and
#: file systems refuse names over 255 bytes: CCTools' ``file-<id>-<md5>-<encoded basename>``
#: overflows with a 240-byte basename, or 26 CJK characters (each becomes 9 bytes encoded).
MAX_CACHE_NAME = 200


def _fit(name: str) -> str:
    """``name`` cut to :data:`MAX_CACHE_NAME` bytes, never inside a ``%XX`` escape (the md5
    before the basename keeps cut names apart).  Names are ASCII once encoded."""
    if len(name) <= MAX_CACHE_NAME:
        return name
    cut = name[:MAX_CACHE_NAME]
    escape = cut.rfind("%", len(cut) - 2)
    return cut[:escape] if escape >= 0 else cut
