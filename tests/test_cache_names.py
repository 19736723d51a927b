"""Cache names of a task's files: CCTools' forms, the same for the same source every time
(the digests are memoized: a cached name must never change because it was looked up again)."""

from __future__ import annotations

import hashlib

from work_queue.constants import (
    WORK_QUEUE_BUFFER,
    WORK_QUEUE_CACHE,
    WORK_QUEUE_FILE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_OUTPUT,
)
from work_queue.manager import files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_cached_file_is_named_by_its_path_every_time():
    for _ in range(3):
        spec = files.make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_INPUT, "/data/shared.txt",
                                    "shared.txt", WORK_QUEUE_CACHE)
        assert spec.cachename == f"file-0-{md5(b'/data/shared.txt')}-shared.txt"


def test_a_cached_buffer_is_named_by_its_contents_and_an_uncached_one_is_not():
    a = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, b"one", "x", WORK_QUEUE_CACHE)
    b = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, b"two", "x", WORK_QUEUE_CACHE)
    again = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, bytearray(b"one").decode(),
                                 "x", WORK_QUEUE_CACHE)
    assert a.cachename == again.cachename == f"buffer-0-{md5(b'one')}"
    assert b.cachename == f"buffer-0-{md5(b'two')}"
    u = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, b"one", "x", 0)
    v = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, b"one", "x", 0)
    n = int(u.cachename.split("-")[1])
    assert u.cachename == f"buffer-{n}-{md5(b'buffer')}"
    assert v.cachename == f"buffer-{n + 1}-{md5(b'buffer')}"


def test_the_memo_is_bounded_and_skips_large_buffers():
    big = b"x" * (files._DIGEST_MAX_BYTES + 1)
    spec = files.make_file_spec(WORK_QUEUE_BUFFER, WORK_QUEUE_INPUT, big, "big", WORK_QUEUE_CACHE)
    assert spec.cachename == f"buffer-0-{md5(big)}" and big not in files._DIGESTS
    for i in range(files._DIGESTS_MAX + 10):
        out = files.make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_OUTPUT, f"out-{i}", f"o{i}", 0)
        assert out.cachename.endswith(f"-{md5(f'out-{i}'.encode())}-out-{i}")
    assert len(files._DIGESTS) <= files._DIGESTS_MAX
