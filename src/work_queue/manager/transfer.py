"""Sending task inputs to a worker: ``put``, ``dir``, ``puturl``, ``putcmd``.

Each function writes through ``out`` (an object with ``write(bytes)`` that buffers control
lines and ``send_file(fileobj, offset, count)`` for bulk data) and returns the number of
payload bytes sent.  A local input that does not exist raises :class:`InputMissing`.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Protocol

from ..constants import (
    WORK_QUEUE_BUFFER,
    WORK_QUEUE_DIRECTORY,
    WORK_QUEUE_FILE,
    WORK_QUEUE_FILE_PIECE,
    WORK_QUEUE_REMOTECMD,
    WORK_QUEUE_URL,
)
from ..protocol.messages import Dir, End, Put, PutCmd, PutUrl, Symlink
from .files import FileSpec


class InputMissing(Exception):
    """A local input file or directory could not be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"input {path!r} cannot be sent: {reason}")
        self.path = path


class Output(Protocol):
    def write(self, data: bytes) -> None: ...

    def send_file(self, fileobj: object, offset: int, count: int) -> None: ...


def send_input(out: Output, spec: FileSpec, worker_os: str, worker_arch: str) -> int:
    """Send one input object into the worker's cache under ``spec.cachename``."""
    t = spec.type
    if t == WORK_QUEUE_BUFFER:
        data = spec.source if isinstance(spec.source, bytes) else str(spec.source).encode()
        out.write(Put(spec.cachename, len(data), 0o777, leading_zero=False).encode())
        out.send_file(io.BytesIO(data), 0, len(data))  # ends a TLS record: see send_file
        return len(data)
    if t == WORK_QUEUE_URL:
        out.write(PutUrl(str(spec.source), spec.cachename).encode())
        return 0
    if t == WORK_QUEUE_REMOTECMD:
        out.write(PutCmd(str(spec.source), spec.cachename).encode())
        return 0
    path = spec.local_path(worker_os, worker_arch)
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputMissing(path, e.strerror or str(e)) from None
    if stat.S_ISDIR(st.st_mode):
        if t not in (WORK_QUEUE_DIRECTORY, WORK_QUEUE_FILE):
            raise InputMissing(path, "is a directory")
        out.write(Dir(spec.cachename).encode())
        sent = _send_dir_contents(out, path)
        out.write(End().encode())
        return sent
    if t == WORK_QUEUE_FILE_PIECE:
        offset, count = spec.offset, spec.length
        if offset + count > st.st_size:
            count = max(0, st.st_size - offset)
    elif t in (WORK_QUEUE_FILE, WORK_QUEUE_DIRECTORY):
        offset, count = 0, st.st_size
    else:
        raise InputMissing(path, f"unknown file type {t}")
    return _send_file(out, spec.cachename, path, st.st_mode, offset, count)


def _send_file(out: Output, name: str, path: str, mode: int, offset: int, count: int) -> int:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputMissing(path, e.strerror or str(e)) from None
    with f:
        out.write(Put(name, count, mode & 0o777).encode())
        out.send_file(f, offset, count)
    return count


def _send_dir_contents(out: Output, path: str) -> int:
    """Entries of a directory: files as ``put``, symlinks as ``symlink``, subdirectories nested."""
    sent = 0
    try:
        entries = list(os.scandir(path))
    except OSError as e:
        raise InputMissing(path, e.strerror or str(e)) from None
    for entry in entries:
        full = os.path.join(path, entry.name)
        if entry.is_symlink():
            target = os.readlink(full).encode("utf-8", "surrogateescape")
            out.write(Symlink(entry.name, len(target)).encode())
            out.send_file(io.BytesIO(target), 0, len(target))
        elif entry.is_dir():
            out.write(Dir(entry.name).encode())
            sent += _send_dir_contents(out, full)
            out.write(End().encode())
        elif entry.is_file():
            st = entry.stat()
            sent += _send_file(out, entry.name, full, st.st_mode, 0, st.st_size)
    return sent
