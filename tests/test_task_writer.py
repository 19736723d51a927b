"""The fast task-block writer gives, byte for byte, what the message encoders give line by
line, for blocks with and without files, environment, category, resources, coprocess and
monitor request."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from work_queue.protocol import messages as m
from work_queue.protocol.task_writer import TaskWriter


@dataclass
class Spec:
    is_input: bool
    cachename: str
    remote_name: str
    flags: int = 0
    empty_dir: bool = False


def encoded(task_id, command, category, box, *, monitor=None, coprocess=None, end_time=0.0,
            wall_time=0.0, env=None, files=()):
    """The block as the encoders of protocol/messages.py write it, one message at a time."""
    out = [m.TaskStart(task_id).encode(), m.Cmd(len(command)).encode(), command]
    if monitor is not None:
        out += [m.Monitor(len(monitor)).encode(), monitor]
    if coprocess:
        out += [m.Coprocess(len(coprocess.encode())).encode(), coprocess.encode()]
    out.append(m.Category(category).encode())
    for name in ("cores", "gpus", "memory", "disk"):
        out.append(m.TaskResource(name, box[name]).encode())
    if end_time > 0:
        out.append(m.TaskResource("end_time", end_time).encode())
    if wall_time > 0:
        out.append(m.TaskResource("wall_time", wall_time).encode())
    for name, value in (env or {}).items():
        data = (f"{name}={value}" if value is not None else name).encode()
        out += [m.Env(len(data)).encode(), data, b"\n"]
    out += [m.Dir(f.remote_name, raw=f.remote_name).encode_in_block() for f in files
            if f.is_input and f.empty_dir]
    out += [m.TaskFile("infile", f.cachename, f.remote_name, f.flags).encode() for f in files
            if f.is_input and not f.empty_dir]
    out += [m.TaskFile("outfile", f.cachename, f.remote_name, f.flags).encode() for f in files
            if not f.is_input]
    out.append(m.End().encode())
    return b"".join(out)


FILES = (Spec(True, "file-1-abc-in.txt", "in.txt", 1), Spec(False, "out-2", "out dir/o%.txt", 0),
         Spec(True, "dir-3", "empty", 0, empty_dir=True), Spec(True, "url-4", "név.dat", 3))


@pytest.mark.parametrize("extra", [
    {},
    {"files": FILES},
    {"env": {"A": "1", "PATH": "/x:/y", "UNSET": None}},
    {"coprocess": "my-coprocess"},
    {"monitor": b'{"limits": {"memory": 100}}'},
    {"end_time": 1712345678.25, "wall_time": 30.0},
    {"files": FILES, "env": {"X": "é"}, "coprocess": "wq-py-python-warm",
     "monitor": b"{}", "end_time": 5.5, "wall_time": 1.5},
])
@pytest.mark.parametrize("box", [
    {"cores": 1, "gpus": 0, "memory": 1024, "disk": 2048},
    {"cores": 0.5, "gpus": 2, "memory": 100.7, "disk": 0},
])
def test_a_block_is_the_encoded_messages_one_by_one(extra, box):
    writer = TaskWriter()
    command = "echo 'héllo' > out.txt".encode()
    lines = writer.box_lines("analysis", box["cores"], box["gpus"], box["memory"], box["disk"])
    got = writer.block(17, command, lines, **extra)
    assert got == encoded(17, command, "analysis", box, **extra)


def test_box_lines_are_kept_and_bounded():
    writer = TaskWriter()
    first = writer.box_lines("c", 1, 0, 10, 10)
    assert writer.box_lines("c", 1, 0, 10, 10) is first
    for i in range(1200):
        writer.box_lines("c", 1, 0, 10, i)
    assert len(writer._box_lines) <= 1001
