"""work_queue_graph_log and work_queue_graph_workers on logs of our manager and of CCTools."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import work_queue as wq
from work_queue.manager import logs
from work_queue.tools import graph_log, graph_workers

from .conftest import wait_all

DATA = Path(__file__).parent / "data" / "cctools_logs"
PLOT_NAMES = ["workers", "workers-accum", "tasks", "tasks-capacities", "tasks-accum",
              "time-manager", "time-workers", "transfer", "times-stacked"]


@pytest.fixture(scope="module")
def our_logs(tmp_path_factory):
    """Logs of a short real run: 12 tasks in two categories, one failing, one cancelled."""
    tmp = tmp_path_factory.mktemp("our_logs")
    old = logs.StatsLog.INTERVAL
    logs.StatsLog.INTERVAL = 0.1  # a line at every pass, so a short run still has many
    procs = []
    try:
        q = wq.WorkQueue(port=0, stats_log=str(tmp / "stats.log"),
                         transactions_log=str(tmp / "tr.log"))
        (tmp / "in.dat").write_bytes(b"x" * 300_000)
        for i in range(12):
            t = wq.Task(f"sleep 0.{i % 3 + 1}; echo {i} > out; exit {1 if i == 5 else 0}")
            t.specify_input_file(str(tmp / "in.dat"), "in.dat", cache=True)
            t.specify_output_file(str(tmp / f"out.{i}"), "out", cache=False)
            t.specify_category("even" if i % 2 == 0 else "odd")
            t.specify_cores(1)
            q.submit(t)
        c = wq.Task("sleep 10")
        q.submit(c)
        q.cancel_by_taskid(c.id)
        for cores in (2, 1):
            wdir = tmp / f"w{cores}"
            wdir.mkdir()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "work_queue.cli.worker", "--cores", str(cores),
                 "--memory", "1000", "--disk", "1000", "-t", "20", "-s", str(wdir),
                 "localhost", str(q.port)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        done = wait_all(q, timeout=30)
        assert len(done) == 12
        q.close()
    finally:
        logs.StatsLog.INTERVAL = old
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    return tmp


def _run(tool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"work_queue.tools.{tool}", *args],
                          capture_output=True, text=True, timeout=120)


def _check_images(prefix: Path) -> None:
    for name in PLOT_NAMES:
        png = Path(f"{prefix}.{name}.png")
        svg = Path(f"{prefix}.{name}.svg")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert png.stat().st_size > 5000, png  # axes, labels and lines, not a blank image
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", svg
        assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 10, svg


# -- work_queue_graph_log --------------------------------------------------------------------------

def test_graph_log_draws_our_stats_log(our_logs, tmp_path, capsys):
    # in this process: drawing 18 pictures is the slow part, not starting Python again
    assert graph_log.main(["-o", str(tmp_path / "ours"), str(our_logs / "stats.log")]) == 0
    assert capsys.readouterr().out.count("Generating") == 18
    _check_images(tmp_path / "ours")


def test_graph_log_draws_a_cctools_stats_log(tmp_path):
    assert graph_log.main(["-o", str(tmp_path / "cct"), "-u", "m", "-g", "800,500",
                           str(DATA / "stats.log")]) == 0
    _check_images(tmp_path / "cct")
    root = ET.parse(f"{tmp_path}/cct.tasks.svg").getroot()
    assert (root.get("width"), root.get("height")) == ("576pt", "360pt")  # 8 x 5 inches
    assert "manager lifetime in minutes" in (tmp_path / "cct.tasks.svg").read_text()


def test_graph_log_text_output_holds_the_log_values(our_logs, tmp_path):
    r = _run("graph_log", "-T", "text", "-s", "0", "-o", str(tmp_path / "t"),
             str(our_logs / "stats.log"))
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.glob("*.png"))
    with open(our_logs / "stats.log") as f:
        _, rows = graph_log.read_log(f)
    last = rows[-1]
    lines = (tmp_path / "t.tasks-accum.txt").read_text().splitlines()
    assert lines[0].startswith("# tasks cumulative counts: time (")
    values = [float(v) for v in lines[-1].split()]
    assert values[1:] == [last[f] for f in ("tasks_submitted", "tasks_dispatched", "tasks_done",
                                            "tasks_failed", "tasks_cancelled",
                                            "tasks_exhausted_attempts")]
    assert values[1] == 13 and values[3] == 12 and values[5] == 1
    shares = (tmp_path / "t.times-stacked.txt").read_text().splitlines()[2:]
    tops = [float(line.split()[-1]) for line in shares]
    assert all(abs(top - 100) < 1e-6 or top == 0 for top in tops)
    assert any(abs(top - 100) < 1e-6 for top in tops)


def test_graph_log_reads_reopened_and_cut_logs(tmp_path):
    text = (DATA / "stats.log").read_text()
    header, *rows = text.splitlines(keepends=True)
    log = tmp_path / "s.log"
    # a manager reopened the log (second header), and a crash cut the last line short
    log.write_text(header + "".join(rows[:3]) + header + "".join(rows[3:]) + rows[0][:40])
    r = _run("graph_log", "-T", "text", "-o", str(tmp_path / "p"), str(log))
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: line \d+ has \d+ fields, not 56: ignored", r.stderr)
    assert len(list(tmp_path.glob("p.*.txt"))) == 9 and not list(tmp_path.glob("*.png"))
    with open(log) as f:
        _, parsed = graph_log.read_log(f)
    assert len(parsed) == len(rows)


def test_graph_log_sampling_keeps_one_line_per_step_and_the_last():
    rows = [{"timestamp": t * 1e6} for t in (0, 1, 2, 31, 32, 61, 62.5)]
    assert [r["timestamp"] / 1e6 for r in graph_log.sample(rows, 30)] == [0, 31, 61, 62.5]
    assert len(graph_log.sample(rows, 0)) == 7


@pytest.mark.parametrize("content,message", [
    ("hello\nworld\n", "no header line"),
    ("# timestamp foo bar\n1 2 3\n", "no column 'workers_connected'"),
    (logs.STATS_HEADER, "no statistics lines"),
])
def test_graph_log_bad_input_is_one_clear_line(tmp_path, content, message):
    log = tmp_path / "bad.log"
    log.write_text(content)
    r = _run("graph_log", str(log))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert r.stderr.startswith(f"work_queue_graph_log: {log}: ")


def test_graph_log_bad_options(tmp_path):
    r = _run("graph_log", str(tmp_path / "missing.log"))
    assert r.returncode == 1 and "No such file" in r.stderr
    r = _run("graph_log", "-T", "gif", str(DATA / "stats.log"))
    assert r.returncode == 1 and "unknown output format 'gif'" in r.stderr
    r = _run("graph_log", "-r", "5", str(DATA / "stats.log"))
    assert r.returncode == 2 and "bad range '5'" in r.stderr


# -- work_queue_graph_workers ----------------------------------------------------------------------

def _check_page(path: Path, views: int) -> str:
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # self-contained: nothing to fetch (the SVG namespace is a name, not a download)
    assert not re.search(r"<script|<link|<img|@import|url\(", page)
    assert set(re.findall(r"https?://[^\s\"']+", page)) <= {"http://www.w3.org/2000/svg"}
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) == views
    for svg in svgs:
        ET.fromstring(svg)  # each picture is well-formed XML
    return page


def test_graph_workers_page_from_our_log(our_logs, tmp_path):
    out = tmp_path / "tr.html"
    r = _run("graph_workers", "-o", str(out), str(our_logs / "tr.log"))
    assert r.returncode == 0, r.stderr
    page = _check_page(out, 3)
    run = graph_workers.parse(open(our_logs / "tr.log"))
    assert len(run.tasks) == 13 and len(run.workers) == 2
    assert sum(1 for t in run.tasks.values() if t.done is not None) == 12
    assert [t.task_id for t in run.tasks.values() if t.canceled is not None] == [13]
    assert [t.task_id for t in run.tasks.values() if t.failed] == [6]  # exit 1
    assert {t.category for t in run.tasks.values()} == {"even", "odd", "default"}
    for t in run.tasks.values():
        if t.done is not None:
            # a task sent ahead to a busy worker may be taken back for an idle one (issue 17):
            # that attempt never ran, the last one is the task's run
            *taken_back, a = t.attempts
            assert all(b.lost and b.retrieved is None for b in taken_back)
            assert t.submitted <= a.start <= a.finished <= a.retrieved <= t.done
            assert re.fullmatch(r"127\.0\.0\.1:\d+", a.worker)
            assert t.bytes_out > 0
    # the cached input went once to each worker
    assert sum(t.bytes_in for t in run.tasks.values()) == pytest.approx(2 * 0.286102, abs=1e-5)
    for w in run.workers:
        assert w.reason == "EXPLICIT" and w.resources["memory"] == 1000
    # one tooltip per task in the lifetime view, and one per attempt in the slots view
    attempts = sum(len(t.attempts) for t in run.tasks.values() if t.done is not None)
    assert len(re.findall(r"<title>task \d+ \(", page)) == 13 + attempts
    assert "result SUCCESS, exit code 1" in page


def test_graph_workers_pages_from_cctools_logs(tmp_path):
    for name, tasks, workers in (("transactions.log", 35, 3),
                                 ("transactions-monitored.log", 6, 1)):
        out = tmp_path / (name + ".html")
        r = _run("graph_workers", "-o", str(out), str(DATA / name))
        assert r.returncode == 0, r.stderr
        _check_page(out, 3)
        run = graph_workers.parse(open(DATA / name))
        assert (len(run.tasks), len(run.workers)) == (tasks, workers)
    out = tmp_path / "w.html"
    r = _run("graph_workers", "-w", "-o", str(out), str(DATA / "transactions.log"))
    assert r.returncode == 0
    page = _check_page(out, 1)
    assert "Workers lifetime" in page and "Tasks lifetime" not in page
    slots = graph_workers.bind_slots(graph_workers.parse(open(DATA / "transactions.log")))
    assert sorted(len(lanes) for lanes in slots.values()) == [1, 2, 2]  # 1, 2 and 2 cores


def test_graph_workers_shows_the_last_run_of_an_appended_log(our_logs, tmp_path):
    text = (our_logs / "tr.log").read_text()
    log = tmp_path / "two.log"
    log.write_text(text + (DATA / "transactions-small.log").read_text())
    run = graph_workers.parse(open(log))
    assert run.runs_in_file == 2 and len(run.tasks) == 5
    out = tmp_path / "two.html"
    assert _run("graph_workers", "-o", str(out), str(log)).returncode == 0
    assert "holds 2 manager runs" in out.read_text()


def test_graph_workers_bad_input(tmp_path):
    r = _run("graph_workers", str(DATA / "stats.log"))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "is this a Work Queue transactions log?" in r.stderr
    r = _run("graph_workers", str(tmp_path / "none.log"))
    assert r.returncode == 1 and "No such file" in r.stderr
    assert not list(tmp_path.glob("*.html"))
