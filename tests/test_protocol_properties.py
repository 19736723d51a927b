"""Property-based tests: no input makes the protocol readers fail in any other way."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from work_queue.errors import RemoteProtocolError
from work_queue.protocol import messages as m
from work_queue.protocol.reader import NEED_DATA, Chunk, MessageReader, manager_stream_reader
from work_queue.protocol.task_block import TaskSpec
from work_queue.protocol.urlcodec import url_decode, url_encode

VERBS = [b"result", b"file", b"dir", b"missing", b"update", b"info", b"resource", b"feature",
         b"workqueue", b"cache-update", b"cache-invalid", b"put", b"task", b"cmd", b"env",
         b"infile", b"outfile", b"get", b"unlink", b"kill", b"puturl", b"putcmd", b"symlink",
         b"end", b"alive", b"send_results", b"GET", b"auth", b"coprocess", b"cores"]

# Lines that look like the protocol: a verb, then numbers and words, sometimes broken.
field = st.one_of(st.integers(-10**12, 10**12).map(lambda i: str(i).encode()),
                  st.binary(max_size=12), st.sampled_from([b"", b"-1", b"1e309", b"nan"]))
line = st.builds(lambda v, fs: b" ".join([v, *fs]) + b"\n", st.sampled_from(VERBS),
                 st.lists(field, max_size=6))
stream = st.lists(st.one_of(line, st.binary(max_size=64)), max_size=20).map(b"".join)


def drain(reader: MessageReader, data: bytes, split: int) -> int:
    """Feed ``data`` in pieces of ``split`` bytes; count events.  Only protocol errors."""
    events = 0
    for i in range(0, len(data), max(1, split)):
        reader.feed(data[i:i + max(1, split)])
        while (ev := reader.next_event()) is not NEED_DATA:
            events += 1
            assert isinstance(ev, (m.Message, Chunk))
            if isinstance(ev, Chunk):
                assert len(ev.data) <= 1 << 20
    return events


@settings(max_examples=300, deadline=None)
@given(stream, st.integers(1, 64))
def test_worker_stream_parser_only_raises_protocol_errors(data, split):
    try:
        drain(MessageReader(m.parse_from_worker), data, split)
    except RemoteProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(stream, st.integers(1, 64))
def test_manager_stream_parser_only_raises_protocol_errors(data, split):
    try:
        drain(MessageReader(m.parse_from_manager), data, split)
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_url_encoding_round_trips_and_has_no_spaces(raw):
    text = raw.decode("utf-8", "surrogateescape")
    encoded = url_encode(text)
    assert " " not in encoded and "\n" not in encoded and "%" not in encoded.replace("%", "")
    assert url_decode(encoded) == text


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 5000), st.binary(min_size=0, max_size=3000))
def test_long_lines_are_refused_without_growing_forever(extra, junk):
    reader = MessageReader(m.parse_from_worker)
    junk = junk.replace(b"\n", b"x")
    try:
        reader.feed(b"x" * (4097 + extra) + junk)
        reader.next_event()
        raise AssertionError("a line over 4096 bytes was accepted")
    except RemoteProtocolError:
        pass


def drain_blocks(data: bytes, split: int) -> list[TaskSpec]:
    """Read ``data`` with a block-reading manager-stream reader fed in ``split``-byte pieces:
    every block comes out as one TaskSpec, however it was cut (no line of it comes alone)."""
    reader = manager_stream_reader(blocks=True)
    specs: list[TaskSpec] = []
    for i in range(0, len(data), max(1, split)):
        reader.feed(data[i:i + max(1, split)])
        while (ev := reader.next_event()) is not NEED_DATA:
            assert not isinstance(ev, m.TaskStart)
            if isinstance(ev, TaskSpec):
                specs.append(ev)
    return specs


@settings(max_examples=300, deadline=None)
@given(stream, st.integers(1, 64))
def test_block_reading_parser_only_raises_protocol_errors(data, split):
    try:
        drain_blocks(data, split)
    except RemoteProtocolError:
        pass


name = st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1,
               max_size=12).filter(lambda s: s not in (".", ".."))
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@st.composite
def task_blocks(draw) -> bytes:
    """A valid task block as a manager writes it, in a random order of its lines."""
    task_id = draw(st.integers(1, 10**9))
    # Commands that look like the end of a block, or hold carriage returns, take the
    # line-by-line path inside the block reader.
    cmd = draw(st.one_of(text, st.sampled_from(["x\nend\n", "end\n", "a\r\nb", "\nend\nend\n",
                                                "\nend"]))).encode()
    lines = [m.Category(draw(st.sampled_from(["default", "a-b", "x"]))).encode()]
    for res in draw(st.lists(st.sampled_from(["cores", "memory", "disk", "gpus", "wall_time"]),
                             unique=True)):
        lines.append(m.TaskResource(res, draw(st.integers(0, 10**6))).encode())
    for _ in range(draw(st.integers(0, 3))):
        entry = f"{draw(st.sampled_from(['A', 'B_1']))}={draw(text)}".encode()
        lines.append(m.Env(len(entry)).encode() + entry + b"\n")
    for direction in draw(st.lists(st.sampled_from(["infile", "outfile"]), max_size=4)):
        lines.append(m.TaskFile(direction, f"file-{draw(st.integers(0, 99))}", draw(name),
                                draw(st.integers(0, 7))).encode())
    order = draw(st.permutations(lines))
    return (f"task {task_id}\n".encode() + m.Cmd(len(cmd)).encode() + cmd + b"".join(order)
            + b"end\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(task_blocks(), min_size=1, max_size=4), st.integers(1, 200))
def test_a_block_read_whole_equals_the_block_read_line_by_line(blocks, split):
    data = b"kill 3\n".join(blocks)
    whole = drain_blocks(data, len(data))
    assert len(whole) == len(blocks)
    pieces = drain_blocks(data, split)
    assert pieces == whole
    line_by_line = MessageReader(m.parse_from_manager)  # never blocks: one path only
    line_by_line.feed(data)
    assert all(not isinstance(ev, TaskSpec)
               for ev in iter(line_by_line.next_event, NEED_DATA))


def test_the_usual_block_is_read_in_one_go():
    from work_queue.protocol.task_block import _read_plain_block

    block = (b"task 7\ncmd 4\ntruecategory default\ncores 1.000\ngpus 0\nmemory 1000\n"
             b"disk 1000\nend\nkill 7\n")
    spec, end = _read_plain_block(bytearray(block), 0, 4096)
    assert block[end:] == b"kill 7\n"
    assert (spec.task_id, spec.command, spec.category) == (7, "true", "default")
    assert (spec.cores, spec.gpus, spec.memory, spec.disk) == (1, 0, 1000, 1000)
    # Files too (a PythonTask's block: its coprocess line and four files).
    spec, _ = _read_plain_block(bytearray(block.replace(
        b"truecategory", b"truecoprocess 10\nwq-py-warmcategory").replace(
        b"end\n", b"infile buffer-0-x wrapper.py 1\ninfile buffer-3-y a%20b 0\n"
                  b"outfile file-4-z out.p 0\nend\n", 1)), 0, 4096)
    assert (spec.command, spec.coprocess) == ("true", "wq-py-warm")
    assert spec.inputs == [("buffer-0-x", "wrapper.py", 1), ("buffer-3-y", "a b", 0)]
    assert spec.outputs == [("file-4-z", "out.p", 0)]
    # Anything else in a block (here an environment variable) is left to the line-by-line
    # reading.
    assert _read_plain_block(bytearray(block.replace(b"end\n", b"env 3\nA=1\nend\n", 1)),
                             0, 4096) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**6), st.sampled_from(["default", "a-b", "é", "x" * 5000]),
       st.lists(st.one_of(st.integers(-5, 10**6).map(str),
                          st.sampled_from(["1.000", "1e3", "nan", "-0", " 1", "x", ""])),
                min_size=4, max_size=4))
def test_the_usual_block_reads_as_its_lines_do(task_id, category, values):
    """Blocks shaped exactly as our manager writes them, with odd values too: read whole,
    they give what reading them line by line gives (or the same refusal)."""
    cores, gpus, memory, disk = values
    block = (f"task {task_id}\ncmd 4\ntruecategory {category}\ncores {cores}\ngpus {gpus}\n"
             f"memory {memory}\ndisk {disk}\nend\n").encode()

    def read(split: int) -> list[TaskSpec] | str:
        try:
            return drain_blocks(block, split)
        except RemoteProtocolError:
            return "refused"

    assert repr(read(len(block))) == repr(read(1))  # repr: nan == nan


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**6), st.one_of(st.just(""), text),
       st.lists(st.tuples(st.sampled_from(["infile", "outfile"]),
                          st.sampled_from(["file-1-a", "buffer-0-b", "é", "x y"]),
                          st.one_of(name, st.sampled_from(["../up", "/abs", "a/../../b", "%2E%2E",
                                                           "a%20b", "%ZZ", "dir/x"])),
                          st.sampled_from(["0", "1", "7", "1.0", "1e2", "x", "-1", ""])),
                max_size=5))
def test_a_block_with_files_reads_as_its_lines_do(task_id, coprocess, files):
    """Blocks as our manager writes them for PythonTasks and tasks with files, with odd
    names, flags and coprocess names too: read whole, they give what reading them line by
    line gives (or the same refusal)."""
    cop = coprocess.encode()
    block = (f"task {task_id}\ncmd 4\ntrue".encode()
             + (b"coprocess %d\n" % len(cop) + cop if cop else b"")
             + b"category default\ncores 1.000\ngpus 0\nmemory 10\ndisk 10\n"
             + b"".join(f"{d} {c} {r} {f}\n".encode() if r.startswith(("/", "..", "a/", "%"))
                        or " " not in r else f"{d} {c} {r.replace(' ', '%20')} {f}\n".encode()
                        for d, c, r, f in files)
             + b"end\n")

    def read(split: int) -> list[TaskSpec] | str:
        try:
            return drain_blocks(block, split)
        except RemoteProtocolError:
            return "refused"

    assert repr(read(len(block))) == repr(read(1))
