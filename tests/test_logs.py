"""The three manager logs in CCTools' exact formats (spec section 6).

The line patterns below are written from CCTools' ``write_transaction*`` and ``log_queue_stats``
and checked first against logs a real CCTools 7.17.1 manager wrote (tests/data/cctools_logs), so
a pattern that is too loose or too strict shows up there before it is used on our logs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import work_queue as wq
from work_queue.core.resources import Resources
from work_queue.core.rmsummary import RESOURCE_NAMES, ResourceSummary
from work_queue.manager import logs

from .conftest import WORKER_CMD

DATA = Path(__file__).parent / "data" / "cctools_logs"

NUM = r"-?[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"
ITEM = r'"[a-z_]+":\[' + NUM + r',"[A-Za-z]+"\]'
RES = r"\{(?:" + ITEM + r"(?:," + ITEM + r")*)?\}"
MEASURED = (r'\{"wq_output_time":\[' + NUM + r',"s"\],"wq_input_time":\[' + NUM + r',"s"\],'
            r'"wq_output_size":\[' + NUM + r',"MB"\],"wq_input_size":\[' + NUM + r',"MB"\]'
            r"(?:," + ITEM + r")*\}")
ADDR = r"[0-9.]+:[0-9]+"
RESULTS = (r"(?:SUCCESS|INPUT_MISSING|OUTPUT_MISSING|STDOUT_MISSING|SIGNAL|RESOURCE_EXHAUSTION|"
           r"TASK_TIMEOUT|UNKNOWN|FORSAKEN|MAX_RETRIES|TASK_MAX_RUN_TIME|DISK_ALLOC_FULL|"
           r"RMONITOR_ERROR|OUTPUT_TRANSFER_ERROR)")
#: One pattern per event, with CCTools' exact spacing (doubled and trailing spaces included).
EVENTS = {
    "MANAGER": r"MANAGER (?:START|END)",
    "CONNECTION": r"WORKER \S+ " + ADDR + r"  CONNECTION",
    "DISCONNECTION": (r"WORKER \S+ " + ADDR + r"  DISCONNECTION "
                      r"(?:UNKNOWN|IDLE_OUT|FAST_ABORT|FAILURE|STATUS_WORKER|EXPLICIT)"),
    "RESOURCES": r'WORKER \S+ RESOURCES \{"memory":\[\d+,"MB"\],"disk":\[\d+,"MB"\],'
                 r'"cores":\[' + NUM + r',"cores"\]\}',
    "CATEGORY": r"CATEGORY \S+ (?:MAX|MIN) " + RES,
    "CATEGORY_FIRST": (r"CATEGORY \S+ FIRST (?:FIXED|MAX|MIN_WASTE|MAX_THROUGHPUT|"
                       r"GREEDY_BUCKETING|EXHAUSTIVE_BUCKETING) " + RES),
    "WAITING": r"TASK \d+ WAITING \S+ (?:FIRST|MAX)_RESOURCES " + RES,
    "RUNNING": r"TASK \d+ RUNNING " + ADDR + r"  (?:FIRST|MAX)_RESOURCES " + RES,
    "WAITING_RETRIEVAL": r"TASK \d+ WAITING_RETRIEVAL " + ADDR + " ",
    "FINAL": r"TASK \d+ (?:RETRIEVED|DONE) " + RESULTS + r"  -?\d+  \{\} " + MEASURED,
    "EXHAUSTED": r"TASK \d+ (?:RETRIEVED|DONE) RESOURCE_EXHAUSTION  -?\d+ " + RES + " " + MEASURED,
    "CANCELED": r"TASK \d+ CANCELED",
    "TRANSFER": r"TRANSFER (?:INPUT|OUTPUT) \d+ [01] \d+\.\d{6} \d+\.\d{6} \S+",
}
LINE = re.compile(r"(\d{16}) (\d+) (.*)\n")
_COMPILED = {kind: re.compile(p) for kind, p in EVENTS.items()}


def event_kind(text: str) -> str:
    """The name of the one event pattern ``text`` matches in full (AssertionError if none)."""
    kinds = [kind for kind, p in _COMPILED.items() if p.fullmatch(text)]
    assert kinds, f"line matches no CCTools event format: {text!r}"
    return kinds[0]


def check_transactions(path: Path) -> list[tuple[int, str, str]]:
    """Check every line of a transactions log; returns (timestamp, kind, text) per event."""
    with open(path) as f:
        lines = f.readlines()
    header = logs.TXN_HEADER.splitlines(keepends=True)
    assert lines[:len(header)] == header
    events = []
    pids = set()
    last = 0
    for line in lines[len(header):]:
        if line.startswith("#"):
            continue
        m = LINE.fullmatch(line)
        assert m, f"bad line {line!r}"
        stamp = int(m.group(1))
        assert stamp >= last, f"time goes back at {line!r}"
        last = stamp
        pids.add(m.group(2))
        text = m.group(3)
        events.append((stamp, event_kind(text), text))
        check_json_order(text)
    assert len(pids) == 1
    return events


def check_json_order(text: str) -> None:
    """Resource JSON keys come in rmsummary order, integers where CCTools prints integers."""
    for blob in re.findall(r"\{[^{}]*\}", text):
        data = json.loads(blob)
        names = [k for k in data if not k.startswith("wq_")]
        assert names == [n for n in RESOURCE_NAMES if n in names], blob
        for name in names:
            if name in ("memory", "disk", "gpus", "virtual_memory", "swap_memory",
                        "total_files", "total_processes", "bytes_read", "bytes_written"):
                assert re.search(f'"{name}":\\[-?\\d+,', blob), (name, blob)
            if name == "cores":
                value = re.search(r'"cores":\[([^,]+),', blob).group(1)
                assert len(value.partition(".")[2]) <= 3, blob


# -- the patterns against real CCTools logs --------------------------------------------------------

@pytest.mark.parametrize("name", ["transactions.log", "transactions-small.log",
                                  "transactions-monitored.log"])
def test_patterns_match_every_line_cctools_wrote(name):
    events = check_transactions(DATA / name)
    kinds = {kind for _, kind, _ in events}
    assert {"MANAGER", "CONNECTION", "DISCONNECTION", "RESOURCES", "WAITING", "RUNNING",
            "WAITING_RETRIEVAL", "FINAL", "TRANSFER", "CANCELED", "CATEGORY"} <= kinds


def test_patterns_reject_wrong_spacing():
    good = "TASK 1 RUNNING 127.0.0.1:9  FIRST_RESOURCES {}"
    assert event_kind(good) == "RUNNING"
    for bad in ("TASK 1 RUNNING 127.0.0.1:9 FIRST_RESOURCES {}",
                "TASK 1 WAITING_RETRIEVAL 127.0.0.1:9",
                "TASK 1 DONE SUCCESS 0 {} {}",
                "WORKER w 127.0.0.1:9 CONNECTION",
                'WORKER w RESOURCES {"cores":[2,"cores"],"memory":[1,"MB"],"disk":[1,"MB"]}'):
        with pytest.raises(AssertionError):
            event_kind(bad)


# -- number and JSON formatting ------------------------------------------------------------------

def test_numbers_print_as_cctools_prints_them():
    # %.16g doubles, as in the CCTools fixture ("wq_output_time":[0.0009840000000000001,"s"])
    assert logs.jx_double(0.000984) == "0.0009840000000000001"
    assert logs.jx_double(9.8e-05) == "9.8e-05"
    assert logs.jx_double(1.0) == "1" and logs.jx_double(0) == "0"
    assert logs.jx_double(6.67572021484375e-06) == "6.67572021484375e-06"
    r = Resources(cores=2.0, memory=1000, disk=2000.7, gpus=0)
    assert logs.resources_json(r) == \
        '{"memory":[1000,"MB"],"disk":[2000,"MB"],"gpus":[0,"gpus"],"cores":[2,"cores"]}'
    assert logs.resources_json(Resources(cores=0.1234)) == '{"cores":[0.123,"cores"]}'
    assert logs.resources_json(Resources(cores=0.1235)) == '{"cores":[0.124,"cores"]}'
    assert logs.resources_json(Resources()) == "{}"
    assert logs.resources_json(None) == "{}"
    # rounded to 6 decimals, then printed with %.16g: CCTools' own log shows this very value
    s = ResourceSummary(wall_time=0.60957, memory=3.9, cores_avg=0.0144,
                        start=1795286726.526452)
    assert logs.resources_json(s) == ('{"start":[1795286726.526452,"s"],'
                                      '"wall_time":[0.6095699999999999,"s"],"memory":[3,"MB"],'
                                      '"cores_avg":[0.014,"cores"]}')


def test_task_lines_and_exhaustion_tail(tmp_path):
    """RETRIEVED/DONE: the limits object replaces {} for RESOURCE_EXHAUSTION; measured tail."""
    path = tmp_path / "tr.log"
    log = logs.TransactionLog(str(path))
    t = wq.Task("true")
    t.id = 7
    t.result = wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    t.return_status = 0
    measured = ResourceSummary(memory=301, wall_time=1.5, cores=1)
    measured.limits_exceeded = ResourceSummary(memory=100)
    t.resources_measured = measured
    t.time_when_commit_start, t.time_when_commit_end = 1_000_000, 1_250_000
    t.receive_output_start, t.receive_output_finish = 3_000_000, 3_000_500
    now = 1795286727.0
    log.transfer("INPUT", 7, True, 3 * (1 << 20), 0.25, "in.txt", now)
    log.task_retrieved(t, now)
    log.task_done(t, now)
    t2 = wq.Task("true")
    t2.id = 8
    t2.result = wq.WORK_QUEUE_RESULT_MAX_RETRIES
    log.task_done(t2, now)  # never retrieved from a worker: RETRIEVED is written first
    log.close()
    events = check_transactions(path)
    texts = [text for _, _, text in events]
    assert texts[0] == "TRANSFER INPUT 7 1 3.000000 0.250000 in.txt"
    tail = ('{"wq_output_time":[0.0005,"s"],"wq_input_time":[0.25,"s"],'
            '"wq_output_size":[0,"MB"],"wq_input_size":[3,"MB"],'
            '"wall_time":[1.5,"s"],"memory":[301,"MB"],"cores":[1,"cores"]}')
    assert texts[1] == 'TASK 7 RETRIEVED RESOURCE_EXHAUSTION  0 {"memory":[100,"MB"]} ' + tail
    assert texts[2] == 'TASK 7 DONE RESOURCE_EXHAUSTION  0 {"memory":[100,"MB"]} ' + tail
    assert [k for _, k, _ in events[3:]] == ["FINAL", "FINAL"]
    assert texts[3].startswith("TASK 8 RETRIEVED MAX_RETRIES  -1  {} {")
    assert texts[4].startswith("TASK 8 DONE MAX_RETRIES  -1  {} {")


# -- our manager with real workers ---------------------------------------------------------------

def _start_worker(port: int, workdir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*WORKER_CMD, "--single-shot", "--cores", "2", "--memory", "1000",
                             "--disk", "2000", "-t", "20", "-s", workdir, "localhost", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_small_program(tmp: Path) -> tuple[Path, Path, Path, list[wq.Task]]:
    """The program that wrote tests/data/cctools_logs/transactions-small.log, on our manager."""
    os.chdir(tmp)
    q = wq.WorkQueue(port=0, stats_log="stats.log", transactions_log="tr.log",
                     debug_log="debug.log")
    q.specify_category_mode("cat", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    q.specify_category_max_resources("cat", {"cores": 1, "memory": 100})
    with open("in.txt", "w") as f:
        f.write("hello world\n" * 100000)
    for i in range(4):
        t = wq.Task("sleep 0.2; exit 3" if i == 3 else "cat in.txt | wc -l > out.txt")
        t.specify_input_file("in.txt", "in.txt", cache=True)
        if i != 3:
            t.specify_output_file(f"out.{i}", "out.txt", cache=False)
        if i == 1:
            t.specify_category("cat")
        if i == 2:
            t.specify_cores(1)
            t.specify_memory(50)
            t.specify_disk(10)
        q.submit(t)
    c = wq.Task("sleep 100")
    q.submit(c)
    q.cancel_by_taskid(c.id)
    (tmp / "w").mkdir()
    worker = _start_worker(q.port, str(tmp / "w"))
    done = []
    deadline = time.time() + 30
    try:
        while not q.empty() and time.time() < deadline:
            t = q.wait(1)
            if t:
                done.append(t)
    finally:
        q.close()
        worker.wait(timeout=30)
    return tmp / "tr.log", tmp / "stats.log", tmp / "debug.log", done


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    cwd = os.getcwd()
    try:
        return _run_small_program(tmp_path_factory.mktemp("small_run"))
    finally:
        os.chdir(cwd)


def _per_task(events: list[tuple[int, str, str]]) -> dict[int, list[str]]:
    """Event kinds of each task, in order (RETRIEVED/DONE told apart)."""
    seq: dict[int, list[str]] = {}
    for _, kind, text in events:
        m = re.match(r"(?:TASK|TRANSFER (?:INPUT|OUTPUT)) (\d+) (\S+)", text)
        if not m:
            continue
        label = text.split()[0] + "_" + text.split()[1] if kind == "TRANSFER" else \
            m.group(2)
        seq.setdefault(int(m.group(1)), []).append(label)
    return seq


def test_our_transactions_log_has_cctools_lines(small_run):
    tr, _, _, done = small_run
    assert len(done) == 4
    ours = check_transactions(tr)
    theirs = check_transactions(DATA / "transactions-small.log")

    def texts(events, kind):
        return [text for _, k, text in events if k == kind]

    # What depends only on the program and the worker's size is identical, byte for byte.
    assert texts(ours, "WAITING") == texts(theirs, "WAITING")
    assert [t.split(" ", 2)[2] for t in texts(ours, "RESOURCES")] == \
        [t.split(" ", 2)[2] for t in texts(theirs, "RESOURCES")]
    assert texts(ours, "CATEGORY") + texts(ours, "CATEGORY_FIRST") == \
        texts(theirs, "CATEGORY") + texts(theirs, "CATEGORY_FIRST")

    def boxes(events):
        return sorted(re.sub(r"RUNNING \S+", "RUNNING -", t) for t in texts(events, "RUNNING"))

    assert boxes(ours) == boxes(theirs)
    # Each task goes through the same events; CCTools writes CANCELED twice (we once).
    seq_ours, seq_theirs = _per_task(ours), _per_task(theirs)
    seq_theirs[5] = seq_theirs[5][:2]
    assert seq_ours == seq_theirs
    assert seq_ours[1] == ["WAITING", "TRANSFER_INPUT", "RUNNING", "WAITING_RETRIEVAL",
                           "TRANSFER_OUTPUT", "RETRIEVED", "DONE"]

    # The measured tail: sizes are exact, times are measured.
    def finals(events):
        out = {}
        for _, kind, text in events:
            if kind == "FINAL" and " DONE " in text:
                head, _, blob = text.partition("  {} ")
                out[int(text.split()[1])] = (head, json.loads(blob))
        return out

    f_ours, f_theirs = finals(ours), finals(theirs)
    assert f_ours.keys() == f_theirs.keys() == {1, 2, 3, 4}
    for task_id, (head, blob) in f_theirs.items():
        assert f_ours[task_id][0] == head
        assert list(f_ours[task_id][1]) == list(blob)
        for key in ("wq_input_size", "wq_output_size"):
            assert f_ours[task_id][1][key] == blob[key], (task_id, key)
    def transfers(events):  # all but the measured seconds
        return sorted(tuple(t.split()[:5] + t.split()[6:]) for t in texts(events, "TRANSFER"))

    assert transfers(ours) == transfers(theirs)


def test_graph_workers_regexes_read_our_log(small_run):
    """The patterns CCTools' work_queue_graph_workers matches lines with, on our log."""
    tr = small_run[0]
    p_task = re.compile(r"(?P<time>\d+) \s+ (?P<pid>\d+) \s+ TASK \s+ (?P<taskid>\d+) \s+"
                        r"(?P<state>\S+) \s+ (?P<state_args>.+)", re.X)
    p_worker_of = re.compile(r".*RUNNING (?P<worker>\S+)")
    p_transfer = re.compile(r"(?P<time>\d+) \s+ .* TRANSFER \s+ (?P<state>\S+) \s+"
                            r"(?P<taskid>\d+)", re.X)
    p_workers = re.compile(r"(?P<time>\d+) \s+ (?P<pid>\d+) \s+ WORKER \s+ (?P<worker_id>\S+) \s+"
                           r"(?P<addr>\S+) \s+ (?P<state>CONNECTION|DISCONNECTION)", re.X)
    tasks: dict[int, dict[str, object]] = {}
    workers: dict[str, list[str]] = {}
    with open(tr) as f:
        for line in f:
            m = p_task.match(line)
            if m:
                state = m.group("state")
                task = tasks.setdefault(int(m.group("taskid")), {})
                if state == "WAITING":
                    task["category"] = m.group("state_args").split()[0]
                elif state == "RUNNING":
                    task["worker"] = p_worker_of.match(line).group("worker")
                elif state == "DONE":
                    task["info"] = m.group("state_args")
                continue
            m = p_transfer.match(line)
            if m:
                assert int(m.group("taskid")) in tasks  # its WAITING came first
                tasks[int(m.group("taskid"))].setdefault("transfers", []).append(m.group("state"))
                continue
            m = p_workers.match(line)
            if m:
                workers.setdefault(m.group("addr"), []).append(m.group("state"))
    assert {tid: t["category"] for tid, t in tasks.items()} == \
        {1: "default", 2: "cat", 3: "default", 4: "default", 5: "default"}
    for tid in (1, 2, 3, 4):
        assert re.fullmatch(r"127\.0\.0\.1:\d+", tasks[tid]["worker"])
        assert tasks[tid]["info"].startswith("SUCCESS  ")
    assert tasks[4]["info"].startswith("SUCCESS  3  {} {")
    assert tasks[1]["transfers"] == ["INPUT", "OUTPUT"]
    assert list(workers.values()) == [["CONNECTION", "DISCONNECTION"]]


def test_our_stats_log_has_cctools_columns(small_run):
    _, stats, _, _ = small_run
    with open(stats) as f:
        lines = f.readlines()
    with open(DATA / "stats-small.log") as f:
        cctools_header = f.readline()
    assert lines[0] == cctools_header == logs.STATS_HEADER
    assert len(cctools_header.split()) == 57  # "#" and 56 columns
    rows = [line.split() for line in lines[1:]]
    assert len(rows) >= 2  # forced at open and at close
    number = re.compile(r"-?\d+")
    floating = re.compile(r"-?\d+\.\d{6}")
    for row in rows:
        assert len(row) == 56
        for col, value in zip(logs.STATS_COLUMNS, row, strict=True):
            pattern = floating if col in ("bandwidth", "manager_load") else number
            assert pattern.fullmatch(value), (col, value)
    last = dict(zip(logs.STATS_COLUMNS, map(float, rows[-1]), strict=True))
    assert last["tasks_submitted"] == 5 and last["tasks_done"] == 4
    assert last["tasks_cancelled"] == 1 and last["workers_joined"] == 1
    assert last["bytes_sent"] == 1200000  # in.txt once: cached afterwards
    assert last["bytes_received"] == 3 * 7
    assert rows[0][0] <= rows[-1][0]


def test_our_debug_log_format(small_run):
    _, _, debug, _ = small_run
    with open(debug) as f:
        lines = f.readlines()
    pattern = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d\d \S*\[\d+\][a-z_]+: \S.*\n")
    for line in lines:
        assert pattern.fullmatch(line), line
    assert any(re.search(r"\]wq: rx from unknown \(127\.0\.0\.1:\d+\): workqueue 11 ", line)
               for line in lines)
    assert any(re.search(r"\]wq: tx to \S+ \(127\.0\.0\.1:\d+\): task 1$", line)
               for line in lines)


# -- debug log flags -------------------------------------------------------------------------------

def test_debug_flags_select_what_is_written(tmp_path):
    path = tmp_path / "d.log"
    d = logs.DebugLog(str(path), flags=["tcp"], program="work_queue_worker")
    d.write("listening", flag="tcp")
    d.write("manager chatter", flag="wq")
    d.write("always shown", flag="notice")
    d.close()
    text = path.read_text()
    assert re.fullmatch(r"\S+ \S+ work_queue_worker\[\d+\]tcp: listening\n"
                        r"\S+ \S+ work_queue_worker\[\d+\]notice: always shown\n", text)
    assert logs.parse_debug_flags("all") >= {"wq", "tcp", "batch"}
    assert logs.parse_debug_flags(["all", "clear", "wq"]) == {"wq"}
    assert logs.parse_debug_flags("wq,tcp") == {"wq", "tcp"}
    with pytest.raises(ValueError, match="unknown debug flag 'nope'"):
        logs.parse_debug_flags(["wq", "nope"])


def test_debug_log_rotates(tmp_path):
    path = tmp_path / "d.log"
    d = logs.DebugLog(str(path), rotate_max=400)
    for i in range(7):  # lines of about 85 bytes: the fifth one passes 400 bytes
        d.write(f"message {i} " + "x" * 40)
    d.close()
    old = (tmp_path / "d.log.old").read_text()
    assert "message 0 " in old and "message 4 " in old and "message 5 " not in old
    assert "message 5 " in path.read_text() and "message 6 " in path.read_text()


def test_formatter_for_the_tools():
    import logging

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s  ", ("you",), None)
    record.flag = "tcp"
    line = logs.DebugFormatter("work_queue_worker").format(record)
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d\d work_queue_worker\[\d+\]tcp: "
                        r"hello you", line)


def test_process_wide_debug_log(tmp_path):
    """CCTools' specify_debug_log: every manager without its own debug_log writes there."""
    path = tmp_path / "all.log"
    try:
        logs.specify_debug_log(str(path))
        q1 = wq.WorkQueue(port=0)
        q2 = wq.WorkQueue(port=0)
        q1._debug_msg("from the first")
        q2._debug_msg("from the second")
        q1.close()
        q2._debug_msg("still open")
        q2.close()
        text = path.read_text()
        assert re.search(r"\[\d+\]wq: from the first\n.*\[\d+\]wq: from the second\n"
                         r".*\[\d+\]wq: still open\n", text)
        logs.set_debug_flags("clear", "tcp")
        q3 = wq.WorkQueue(port=0)
        assert q3._debug is not None and not q3._debug.enabled("wq")
        q3.close()
        logs.set_debug_flags("clear")
        q4 = wq.WorkQueue(port=0)
        assert q4._debug is None
        q4.close()
    finally:
        logs._shared.update(flags=frozenset(), path=None, log=None)


def test_a_log_that_cannot_be_opened_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="cannot open the transactions log"):
        wq.WorkQueue(port=0, transactions_log=str(tmp_path / "no" / "such" / "dir.log"))


# -- the statistics add up ------------------------------------------------------------------------

def _check_identity(s) -> None:
    assert s.tasks_submitted == (s.tasks_waiting + s.tasks_on_workers + s.tasks_with_results
                                 + s.tasks_done + s.tasks_cancelled), s.as_dict()
    assert s.workers_joined - s.workers_removed == s.workers_connected
    assert s.workers_idle + s.workers_busy == s.workers_connected
    assert s.tasks_running <= s.tasks_on_workers
    assert s.tasks_failed <= s.tasks_done


def test_stats_add_up_through_a_scripted_run(queue, workers):
    q = queue
    ids = []
    for i in range(12):
        t = wq.Task(f"sleep 0.{i % 3 + 1}; exit {1 if i % 4 == 0 else 0}")
        t.specify_cores(1)
        ids.append(q.submit(t))
    hang = wq.Task("sleep 30")
    hang.specify_cores(1)
    q.submit(hang)
    q.cancel_by_taskid(ids[-1])  # a waiting task
    _check_identity(q.stats)
    workers.start(q.port, cores=2)
    workers.start(q.port, cores=1)
    returned = []
    running_cancelled = 0
    deadline = time.time() + 30
    while len(returned) < 10 and time.time() < deadline:
        t = q.wait(1)
        _check_identity(q.stats)
        if t:
            returned.append(t)
        if not running_cancelled and q.stats.tasks_running >= 2:
            # cancel a task while it runs on a worker
            for tid in ids[:-1]:
                if q.task_state(tid) == wq.WORK_QUEUE_TASK_RUNNING:
                    assert q.cancel_by_taskid(tid) is not None
                    running_cancelled = tid
                    break
            _check_identity(q.stats)
    q.cancel_by_taskid(hang.id)
    while True:
        t = q.wait(1)
        if t is None:
            break
        returned.append(t)
    s = q.stats
    _check_identity(s)
    assert running_cancelled
    assert s.tasks_submitted == 13
    assert s.tasks_cancelled == 3
    assert s.tasks_done == len(returned) == 10
    # a non-zero exit status is still result SUCCESS: only other results count as failed
    exit_one = {tid for i, tid in enumerate(ids) if i % 4 == 0} - {running_cancelled}
    assert {t.id for t in returned if t.return_status == 1} == exit_one
    assert s.tasks_failed == sum(1 for t in returned
                                 if t.result != wq.WORK_QUEUE_RESULT_SUCCESS) == 0
    assert s.tasks_waiting == s.tasks_on_workers == s.tasks_with_results == 0
    assert s.tasks_dispatched >= 10
    assert s.workers_joined == 2 and s.workers_connected == 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


def test_a_category_change_from_the_core_writes_category_lines(tmp_path):
    # Regression (CI, coffea example): the core's CategoryChanged instruction reached the
    # transactions log writer as the instruction, not its category (AttributeError: 'name').
    from work_queue.core.instructions import CategoryChanged

    log = tmp_path / "tr.log"
    q = wq.WorkQueue(port=0, transactions_log=str(log))
    try:
        q.specify_category_mode("proc", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        q._carry_out([CategoryChanged(q._state.categories.get_or_create("proc"))])
    finally:
        q.shutdown_workers(0)
        del q
    assert re.search(r"CATEGORY proc FIRST MAX ", log.read_text())
