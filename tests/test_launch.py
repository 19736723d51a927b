"""How the worker starts a command: directly when that gives the shell's result, else sh -c."""

from __future__ import annotations

import os
import shutil

import pytest

import work_queue as wq
from tests.conftest import wait_all
from work_queue.worker.executor import launch_for

PATH = os.environ.get("PATH")
CAT = shutil.which("cat")


@pytest.mark.parametrize("command, argv, redirections", [
    ("true", ("true",), ()),
    ("cat in.1 > out.1", ("cat", "in.1"), ((">", "out.1"),)),
    ("cat in.1 >out.1", ("cat", "in.1"), ((">", "out.1"),)),
    ("wc -c < in >> log", ("wc", "-c"), (("<", "in"), (">>", "log"))),
    ("cat > out < in", ("cat",), ((">", "out"), ("<", "in"))),
])
def test_simple_commands_start_directly(command, argv, redirections):
    launch = launch_for(command, PATH)
    assert not launch.by_shell
    assert os.path.basename(launch.argv[0]) == argv[0]
    assert launch.argv[1:] == argv[1:]
    assert launch.redirections == redirections


@pytest.mark.parametrize("command", [
    "cat in 2>err",         # a file descriptor number: the shell's job
    "cat in>out",           # no space before the operator: could be read either way
    "cat in > a > b",       # the same stream redirected twice
    "cat in > a >> b",
    "cat < a < b",
    "A=1 env",              # an assignment
    "cat in | wc",          # a pipe
    "echo $HOME > out",     # an expansion
    "echo 'a b' > out",     # quoting
    "cd /tmp",              # a builtin
    "no-such-program-here > out",
    "cat in >& out",
])
def test_everything_else_goes_through_the_shell(command):
    assert launch_for(command, PATH).by_shell


def test_redirections_behave_as_in_the_shell(queue, workers):
    """Run the same commands directly and through sh (a pipe forces the shell) and compare."""
    with open("in.txt", "w") as f:
        f.write("one\ntwo\nthree\n")
    cases = {
        "copy": "cat in.txt > out.txt",
        "count": "wc -l < in.txt > out.txt",
        "append": "cat in.txt >> out.txt",
        "missing": "cat < missing.txt > out.txt",
    }
    with open("seed.txt", "w") as f:
        f.write("seed\n")
    for tag, command in cases.items():
        for how, cmd in (("direct", command), ("shell", f"true | {command}")):
            t = wq.Task(cmd)
            if tag == "append":  # appends to an existing file
                t.specify_input_file("seed.txt", "out.txt", cache=False)
            t.specify_input_file("in.txt", cache=False)
            t.specify_output_file(f"{tag}.{how}.out", "out.txt", cache=False)
            t.specify_tag(f"{tag}.{how}")
            queue.submit(t)
    workers.start(queue.port)
    done = {t.tag: t for t in wait_all(queue)}
    assert len(done) == 2 * len(cases)
    for tag in cases:
        direct, shell = done[f"{tag}.direct"], done[f"{tag}.shell"]
        assert direct.return_status == shell.return_status, tag
        if tag == "missing":
            assert direct.return_status != 0
            assert "missing.txt" in direct.output
            assert direct.result == wq.WORK_QUEUE_RESULT_OUTPUT_MISSING
            continue
        assert direct.result == wq.WORK_QUEUE_RESULT_SUCCESS, (tag, direct.output)
        with open(f"{tag}.direct.out") as a, open(f"{tag}.shell.out") as b:
            assert a.read() == b.read(), tag
    with open("append.direct.out") as f:
        assert f.read() == "seed\none\ntwo\nthree\n"
    with open("count.direct.out") as f:
        assert f.read().strip() == "3"


def test_a_program_that_vanished_is_run_by_the_shell(queue, workers, tmp_path):
    """The direct start fails (the cached path is gone): the shell reports it, exit 127."""
    prog = tmp_path / "bin" / "hello-prog"
    prog.parent.mkdir()
    prog.write_text("#!/bin/sh\necho hello\n")
    prog.chmod(0o755)
    command = f"{prog} > out.txt"
    t = wq.Task(command)
    t.specify_output_file("hello.out", "out.txt", cache=False)
    queue.submit(t)
    workers.start(queue.port)
    [first] = wait_all(queue)
    assert first.return_status == 0
    with open("hello.out") as f:
        assert f.read() == "hello\n"
    prog.unlink()
    t = wq.Task(command)
    queue.submit(t)
    [second] = wait_all(queue)
    assert second.return_status == 127
    assert "hello-prog" in second.output



@pytest.mark.parametrize("command, status, code", [
    ("exit 3", wq.WORK_QUEUE_RESULT_SUCCESS, 3),
    ("kill -TERM $$", wq.WORK_QUEUE_RESULT_SIGNAL, 15),
])
def test_a_reported_task_stays_a_zombie_until_its_group_is_ended(tmp_path, command, status,
                                                                 code):
    """The worker reports an exit before reaping, so the task's process-group id cannot be
    taken by a new process before the group is killed."""
    import select

    from work_queue.protocol.task_block import TaskSpec
    from work_queue.worker.executor import TaskRun, end_process_group, reap, start_process

    run = TaskRun(TaskSpec(1, command=command))
    run.sandbox = str(tmp_path)
    start_process(run, dict(os.environ), 0.0)
    select.select([run.pidfd], [], [], 5)
    assert reap(run, 1.0, tidy=False)
    assert (run.status, run.exit_code) == (status, code)
    # Still a zombie: its status can be read again, without reaping it.
    info = os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    assert info is not None and info.si_pid == run.pid
    end_process_group(run)
    with pytest.raises(ChildProcessError):
        os.waitpid(run.pid, os.WNOHANG)
    assert run.pidfd == -1
