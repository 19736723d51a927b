"""poncho_package_serverize and the coprocess scripts it writes (real processes, no mocks)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from work_queue.cli.poncho_serverize import main

SOURCE = textwrap.dedent('''
    import ndcctools.work_queue as wq   # only the functions are copied, not the imports
    import sys

    COUNT = 0

    def add(x, y):
        return x + y

    def multiply(x, y):
        return x * y

    def kw(a, b=2):
        return a * 10 + b

    def boom():
        raise Exception("I am a bad function")

    def where():
        return os.getcwd()   # os, json, sys, socket are available as in CCTools

    def counter():
        g = globals()   # module-level code (COUNT = 0 above) is not copied
        g["COUNT"] = g.get("COUNT", 0) + 1
        return g["COUNT"]

    def unserializable():
        return {1, 2}

    def die():
        os._exit(3)

    def chatty(n):
        print("x" * n)
        sys.stdout.flush()
        return n

    def nested():
        def inner():
            return 1
        return inner()

    print("module-level code is not copied")
    queue = wq.WorkQueue(port=0)
''')

FUNCTIONS = ["add", "multiply", "kw", "boom", "where", "counter", "unserializable", "die",
             "chatty"]
METHODS = ["fork", "direct", "thread"]


class Coprocess:
    """A running coprocess script, started the way the worker starts it."""

    def __init__(self, path: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(["/bin/sh", "-c", str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=cwd, start_new_session=True)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.time() + 30
        while True:
            head, sep, rest = data.partition(b"\n")
            if sep and len(rest) >= int(head):
                assert len(rest) == int(head)  # exactly the announcement, nothing more
                break
            assert select.select([fd], [], [], max(0.0, deadline - time.time()))[0], \
                "the coprocess did not announce itself"
            chunk = os.read(fd, 4096)
            assert chunk, "the coprocess exited before announcing itself"
            data += chunk
        self.hello = json.loads(rest)
        self.name: str = self.hello["name"]
        self.port: int = self.hello["port"]

    def connect(self) -> Connection:
        return Connection(self.port)

    def call(self, function: str, *args: object, task_id: int = 1, method: str | None = None,
             **kwargs: object) -> dict:
        """One invocation on a fresh connection (as this project's worker does)."""
        with self.connect() as conn:
            return conn.call(function, *args, task_id=task_id, method=method, **kwargs)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Connection:
    """A connection carrying any number of invocations (as the CCTools worker does)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.stream = self.sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.sock.close()

    def send_raw(self, data: bytes) -> dict | None:
        self.sock.sendall(data)
        line = self.stream.readline()
        if not line:
            return None
        length = int(line)
        body = self.stream.read(length)
        assert len(body) == length
        return json.loads(body)

    def call(self, function: str, *args: object, task_id: int = 1, method: str | None = None,
             **kwargs: object) -> dict:
        event: dict[str, object] = {"fn_args": list(args), "fn_kwargs": kwargs}
        if method is not None:
            event["remote_task_exec_method"] = method
        body = json.dumps(event).encode()
        answer = self.send_raw(f"{function} {task_id} {len(body)}\n".encode() + body)
        assert answer is not None, "the coprocess closed the connection without answering"
        return answer


def serverize(tmp_path: Path, source: str = SOURCE, functions: list[str] | None = None,
              *extra: str) -> Path:
    src = tmp_path / "functions.py"
    src.write_text(source)
    dest = tmp_path / "coprocess.py"
    argv = ["--src", str(src), "--dest", str(dest)]
    for fn in functions or FUNCTIONS:
        argv += ["--function", fn]
    assert main(argv + list(extra)) == 0
    return dest


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    running: list[Coprocess] = []

    def start(path: Path, cwd: Path | None = None) -> Coprocess:
        c = Coprocess(path, cwd or tmp_path)
        running.append(c)
        return c

    yield start
    for c in running:
        c.stop()


@pytest.fixture
def coprocess(tmp_path: Path, start) -> Coprocess:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return start(serverize(tmp_path), workspace)


def test_generated_script(tmp_path: Path, capsys) -> None:
    dest = serverize(tmp_path)
    assert "No name function found, defaulting to my_coprocess" in capsys.readouterr().out
    text = dest.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert 'def name():\n    return "my_coprocess"' in text
    for fn in FUNCTIONS:
        assert f"@remote_execute\ndef {fn}(" in text
    assert "def main():" in text and 'if __name__ == "__main__":' in text
    assert "ndcctools" not in text and "module-level code" not in text
    assert "def nested" not in text  # not selected


def test_announces_default_name(coprocess: Coprocess) -> None:
    assert coprocess.name == "my_coprocess"
    assert isinstance(coprocess.port, int) and coprocess.port > 0


@pytest.mark.parametrize("method", [*METHODS, None])
def test_invocations_on_one_connection(coprocess: Coprocess, method: str | None) -> None:
    with coprocess.connect() as conn:
        assert conn.call("add", 40, 50, method=method) == {"Result": 90, "StatusCode": 200}
        assert conn.call("multiply", 6, y=7, method=method) == {"Result": 42, "StatusCode": 200}
        assert conn.call("kw", a=1, b=3, method=method) == {"Result": 13, "StatusCode": 200}
        assert conn.call("kw", 4, method=method) == {"Result": 42, "StatusCode": 200}

        missing = conn.call("add", 1, method=method)
        assert missing["StatusCode"] == 500
        assert "missing 1 required positional argument: 'y'" in missing["Result"]
        extra = conn.call("kw", 1, c=5, method=method)
        assert extra["StatusCode"] == 500 and "unexpected keyword argument 'c'" in extra["Result"]

        assert conn.call("boom", method=method) == {"Result": "I am a bad function",
                                                    "StatusCode": 500}
        unknown = conn.call("nested", method=method)
        assert unknown["StatusCode"] == 500 and "no function 'nested'" in unknown["Result"]
        assert conn.call("name", method=method)["StatusCode"] == 500  # not a served function

        bad = conn.call("unserializable", method=method)
        assert bad["StatusCode"] == 500 and "JSON" in bad["Result"]

        # still serving after all the failures
        assert conn.call("add", "a", "b", method=method) == {"Result": "ab", "StatusCode": 200}


def test_sequential_connections(coprocess: Coprocess) -> None:
    for i in range(12):
        method = METHODS[i % 3]
        assert coprocess.call("add", i, 100, task_id=i, method=method) == \
            {"Result": i + 100, "StatusCode": 200}


def test_fork_isolates_the_coprocess_state(coprocess: Coprocess) -> None:
    assert [coprocess.call("counter", method="fork")["Result"] for _ in range(3)] == [1, 1, 1]
    assert [coprocess.call("counter", method="direct")["Result"] for _ in range(2)] == [1, 2]
    assert coprocess.call("counter", method="thread")["Result"] == 3
    assert coprocess.call("counter")["Result"] == 4  # default: fork


@pytest.mark.parametrize("method", METHODS)
def test_runs_in_the_task_sandbox(coprocess: Coprocess, tmp_path: Path, method: str) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "t.7").mkdir()
    assert coprocess.call("where", task_id=7, method=method)["Result"] == str(workspace / "t.7")
    # no sandbox directory: the coprocess's own directory (restored after the call)
    assert coprocess.call("where", task_id=8, method=method)["Result"] == str(workspace)


def test_child_dying_is_an_error(coprocess: Coprocess) -> None:
    answer = coprocess.call("die", method="fork")
    assert answer["StatusCode"] == 500 and "exited with status 3" in answer["Result"]
    assert coprocess.call("add", 1, 2) == {"Result": 3, "StatusCode": 200}


@pytest.mark.parametrize("method", METHODS)
def test_printing_does_not_block(coprocess: Coprocess, method: str) -> None:
    # nobody reads the coprocess's stdout after the announcement: a full pipe must not block
    for _ in range(3):
        assert coprocess.call("chatty", 200_000, method=method) == {"Result": 200_000,
                                                                    "StatusCode": 200}


def test_bad_invocations(coprocess: Coprocess) -> None:
    with coprocess.connect() as conn:
        answer = conn.send_raw(b"add 1 5\nnope!")
        assert answer is not None and answer["StatusCode"] == 500
        assert "not valid JSON" in answer["Result"]
        answer = conn.send_raw(b"add 1 2\n[]")
        assert answer is not None and answer["StatusCode"] == 500
        body = b'{"fn_args": 3, "fn_kwargs": {}}'
        answer = conn.send_raw(b"add 1 %d\n" % len(body) + body)
        assert answer is not None and answer["StatusCode"] == 500
        assert "fn_args" in answer["Result"]
        assert conn.call("add", 2, 3) == {"Result": 5, "StatusCode": 200}
    with coprocess.connect() as conn:
        answer = conn.send_raw(b"garbage\n")
        assert answer is not None and answer["StatusCode"] == 500
        assert "malformed" in answer["Result"]
        assert conn.send_raw(b"") is None  # the coprocess closed this connection
    assert coprocess.call("add", 2, 3) == {"Result": 5, "StatusCode": 200}


def test_name_from_the_source(tmp_path: Path, start, capsys) -> None:
    source = SOURCE + textwrap.dedent('''
        def name():
            return "arithmetic_coprocess"
    ''')
    dest = serverize(tmp_path, source, ["add"])
    assert "No name function found" not in capsys.readouterr().out
    c = start(dest)
    assert c.name == "arithmetic_coprocess"
    assert c.call("add", 40, 50) == {"Result": 90, "StatusCode": 200}


def test_sigterm_stops_the_coprocess(tmp_path: Path, start) -> None:
    c = start(serverize(tmp_path, SOURCE, ["add"]))
    assert c.call("add", 1, 1)["Result"] == 2
    os.killpg(c.proc.pid, signal.SIGTERM)
    assert c.proc.wait(timeout=10) != 0


def run_cli(tmp_path: Path, capsys, *argv: str) -> tuple[int, str]:
    src = tmp_path / "functions.py"
    if not src.exists():
        src.write_text(SOURCE)
    code = main(["--src", str(src), "--dest", str(tmp_path / "out.py"), *argv])
    return code, capsys.readouterr().err


def test_cli_missing_function(tmp_path: Path, capsys) -> None:
    code, err = run_cli(tmp_path, capsys, "--function", "add", "--function", "subtract")
    assert code == 1
    assert "no top-level function 'subtract'" in err
    assert not (tmp_path / "out.py").exists()


@pytest.mark.parametrize(("argv", "message"), [
    ([], "at least one --function"),
    (["--function", "inner"], "no top-level function 'inner'"),
    (["--function", "name"], "names the coprocess"),
    (["--function", "main"], "reserved"),
    (["--function", "add", "--version", "taskvine"], "TaskVine"),
])
def test_cli_errors(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    code, err = run_cli(tmp_path, capsys, *argv)
    assert code == 1 and message in err
    assert not (tmp_path / "out.py").exists()


def test_cli_bad_source(tmp_path: Path, capsys) -> None:
    code = main(["--src", str(tmp_path / "missing.py"), "--dest", str(tmp_path / "out.py"),
                 "--function", "add"])
    assert code == 1 and "cannot read" in capsys.readouterr().err
    (tmp_path / "functions.py").write_text("def add(x, y:\n    return x\n")
    code, err = run_cli(tmp_path, capsys, "--function", "add")
    assert code == 1 and "cannot parse" in err


def test_cli_async_function(tmp_path: Path, capsys) -> None:
    (tmp_path / "functions.py").write_text("async def add(x, y):\n    return x + y\n")
    code, err = run_cli(tmp_path, capsys, "--function", "add")
    assert code == 1 and "async def" in err


def test_cli_pack_is_unsupported(tmp_path: Path, capsys) -> None:
    code, err = run_cli(tmp_path, capsys, "--function", "add", "--pack", "env.tgz")
    assert code == 1 and "--pack is not supported" in err
    assert (tmp_path / "out.py").exists()  # the coprocess itself is still written


def test_cli_dest_is_source(tmp_path: Path, capsys) -> None:
    src = tmp_path / "functions.py"
    src.write_text(SOURCE)
    assert main(["--src", str(src), "--dest", str(src), "--function", "add"]) == 1
    assert "is the source file itself" in capsys.readouterr().err
    assert src.read_text() == SOURCE
