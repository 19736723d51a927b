"""Resource monitoring: the process-tree sampler, the CCTools summary format and the
``resource_monitor`` command, on real processes."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from work_queue.monitor import standalone
from work_queue.monitor import summary as S
from work_queue.monitor.measure import (
    RM_OVERFLOW,
    RM_SUCCESS,
    RM_TASK_ERROR,
    RM_TIME_EXPIRE,
    TreeMonitor,
    exit_code,
    parse_limit,
    parse_limits,
    parse_limits_file,
    tree_usage,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")

PY = sys.executable
LAST_RUSAGE: list = []
ALLOC_200 = ("import time\nx = bytearray(200 << 20)\n"
             "for i in range(0, len(x), 4096): x[i] = 1\ntime.sleep({sleep})\n")

# Written by CCTools 7.17.1 resource_monitor (--no-pprint -L 'memory: 10' -V 'task_id: 7').
CCTOOLS_COMPACT = (
    '{"task_id":"7","host":"vm","monitor_version":"7.17.1.","executable_type":"dynamic",'
    '"command":"python3 -c \\"x=bytearray(100*1024*1024); import time; time.sleep(2)\\"",'
    '"exit_status":143,"exit_type":"limits","limits_exceeded":{"memory":[10,"MB"]},'
    '"start":[1795285547.682002,"s"],"end":[1795285550.013267,"s"],"wall_time":[2.331265,"s"],'
    '"cpu_time":[0.15,"s"],"memory":[12,"MB"],"virtual_memory":[15,"MB"],'
    '"swap_memory":[0,"MB"],"disk":[1,"MB"],"bytes_read":[1,"MB"],"bytes_written":[0,"MB"],'
    '"bytes_received":[0,"MB"],"bytes_sent":[0,"MB"],"bandwidth":[0,"Mbps"],'
    '"gpus":[0,"gpus"],"cores":[0.001,"cores"],"cores_avg":[0.064,"cores"],'
    '"machine_cpus":[2,"cores"],"machine_load":[0,"procs"],'
    '"context_switches":[145,"switches"],"max_concurrent_processes":[39,"procs"],'
    '"total_processes":[40,"procs"],"total_files":[3,"files"],"fs_nodes":[0,"nodes"],'
    '"workers":[0,"workers"],"peak_times":{"total_files":[0.002,"s"],'
    '"max_concurrent_processes":[0.002,"s"],"context_switches":[2.23,"s"],'
    '"machine_cpus":[0.002,"s"],"cores_avg":[2.23,"s"],"cores":[2.23,"s"],'
    '"bytes_read":[2.23,"s"],"disk":[0.002,"s"],"virtual_memory":[2.23,"s"],'
    '"memory":[2.23,"s"],"cpu_time":[2.23,"s"],"wall_time":[2.331,"s"],"end":[2.331,"s"],'
    '"start":[0,"s"]}}')
# The beginning and end of a pretty-printed one (the default), same release.
CCTOOLS_PRETTY = """
{
  "host":"vm",
  "monitor_version":"7.17.1.",
  "executable_type":"dynamic",
  "command":"sleep 0.5",
  "exit_status":0,
  "exit_type":"normal",
  "start":
    [
      1795285547.174624,
      "s"
    ],
  "cores":
    [
      0.003,
      "cores"
    ],
  "peak_times":
    {
      "cores":
        [
          0.503,
          "s"
        ],
      "start":
        [
          0,
          "s"
        ]
    }
}"""


def run_tree(argv: list[str], *, limits: dict[str, float] | None = None, sandbox: str | None = None,
             every: float = 0.05, kill_after: float | None = None, enforce: bool = True,
             **kw: object) -> tuple[dict, str | None]:
    """Run ``argv`` under a TreeMonitor sampling every ``every`` s, as the worker would;
    returns (final summary, the limit that stopped it); ``LAST_RUSAGE`` holds the root's."""
    proc = subprocess.Popen(argv, cwd=sandbox, start_new_session=True)
    tree = TreeMonitor(proc.pid, sandbox, limits, start=time.time(), **kw)  # type: ignore
    broken = None
    deadline = time.time() + (kill_after or 20)
    try:
        while True:
            got, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if got:
                break
            broken = tree.sample(time.time())
            if (broken and enforce) or time.time() > deadline:
                tree.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(every)
    finally:
        proc.returncode = 0  # reaped above
    code = os.waitstatus_to_exitcode(status)
    LAST_RUSAGE[:] = [rusage]
    summary = tree.finish(time.time(), rusage=rusage, exit_status=max(code, 0),
                          signal=-code if code < 0 else 0)
    return summary, broken


# ----------------------------------------------------------------------------------------------
# summary format


def test_summary_round_trips_cctools_output_byte_for_byte():
    data = S.loads(CCTOOLS_COMPACT)
    assert data["memory"] == 12 and data["limits_exceeded"] == {"memory": 10}
    assert data["peak_times"]["wall_time"] == 2.331 and data["exit_status"] == 143
    assert S.dumps(data) == CCTOOLS_COMPACT
    with_category = CCTOOLS_COMPACT.replace('{"task_id":"7",', '{"category":"x","task_id":"7",')
    assert S.dumps(S.loads(with_category)) == with_category
    pretty = S.loads(CCTOOLS_PRETTY)
    assert S.dumps(pretty, pprint=True) == CCTOOLS_PRETTY


def test_summary_numbers_are_printed_as_cctools_prints_them():
    text = S.dumps({"command": "a\tb\"c", "exit_type": "signal", "signal": 9,
                    "exit_status": 137, "memory": 73.9, "cores": 1.0, "cpu_time": 0.1234567,
                    "bandwidth": 2.0005, "disk": -1, "start": 1795285547.1746239},
                   verbatim=[("task_id", "3"), ("category", "x")])
    assert text == ('{"task_id":"3","category":"x","command":"a\\tb\\"c","exit_status":137,'
                    '"exit_type":"signal","signal":9,"start":[1795285547.174624,"s"],'
                    '"cpu_time":[0.123457,"s"],"memory":[73,"MB"],"bandwidth":[2.001,"Mbps"],'
                    '"cores":[1,"cores"]}')


def test_summaries_file_appended_and_read_back(tmp_path):
    path = str(tmp_path / "wq-1.summaries")
    S.append_summary(path, CCTOOLS_COMPACT)
    S.append_summary(path, None, missing_task=8)
    S.append_summary(path, {"command": "true", "exit_type": "normal", "memory": 3,
                            "start": 10.0, "end": 12.0, "wall_time": 2.0, "cpu_time": 1.0})
    text = open(path).read()
    assert text.count("\n") == 4 and "# Summary for task 8 was not available.\n" in text
    summaries = S.read_summaries(path)
    assert [s["command"] for s in summaries][1] == "true"
    assert summaries[1]["cores_avg"] == 0.5 and summaries[0]["task_id"] == "7"


def test_summary_reader_converts_units_and_rejects_garbage():
    data = S.loads('{"start":[1000000,"us"],"disk":[2,"GB"],"memory":[512,"kB"],'
                   '"exit_status":0}')
    assert data["start"] == 1.0 and data["disk"] == 2048 and data["memory"] == 0.5
    with pytest.raises(ValueError, match="not a resource summary"):
        S.loads("{nope")
    with pytest.raises(ValueError, match="'memory'"):
        S.loads('{"memory":["a","MB"]}')


def test_limits_parsing(tmp_path):
    assert parse_limit(" cores : 4 ") == ("cores", 4.0)
    assert parse_limits("cores: 4, memory: 100") == {"cores": 4.0, "memory": 100.0}
    with pytest.raises(ValueError, match="missing ':'"):
        parse_limit("cores 4")
    with pytest.raises(ValueError, match="unknown resource 'ram'"):
        parse_limit("ram: 4")
    with pytest.raises(ValueError, match="invalid value 'x'"):
        parse_limit("cores: x")
    f = tmp_path / "limits"
    f.write_text("# max\nmemory: 100\ndisk: 20  # MB\n")
    assert parse_limits_file(str(f)) == {"memory": 100.0, "disk": 20.0}
    f.write_text('{"memory": [1, "GB"], "cores": 2, "command": "x"}')
    assert parse_limits_file(str(f)) == {"memory": 1024.0, "cores": 2.0}
    f.write_text("memory: lots\n")
    with pytest.raises(ValueError, match=":1: invalid value"):
        parse_limits_file(str(f))
    with pytest.raises(ValueError, match="unknown resource 'mem'"):
        TreeMonitor(os.getpid(), None, {"mem": 1})


# ----------------------------------------------------------------------------------------------
# TreeMonitor on real processes


def test_memory_of_a_task_allocating_200_mb():
    summary, broken = run_tree([PY, "-c", ALLOC_200.format(sleep=0.4)])
    assert broken is None and summary["exit_type"] == "normal" and summary["exit_status"] == 0
    assert 200 <= summary["memory"] < 400
    assert summary["virtual_memory"] >= summary["memory"]
    assert summary["max_concurrent_processes"] == 1 and summary["total_processes"] == 1
    assert 0 < summary["peak_times"]["memory"] <= summary["wall_time"]
    assert exit_code(summary) == RM_SUCCESS


def test_short_task_measured_from_rusage_without_any_sample():
    # A child's ru_maxrss starts at its parent's peak, so the monitor trusts it only above
    # its own peak: allocate more than this test process (pytest) has ever used.
    mb = max(200, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 100)
    proc = subprocess.Popen([PY, "-c", ALLOC_200.replace("200 << 20", f"{mb} << 20")
                             .format(sleep=0)])
    tree = TreeMonitor(proc.pid, None, {"memory": 100}, start=time.time())
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    summary = tree.finish(time.time(), rusage=rusage, exit_status=0)
    assert summary["memory"] >= mb and summary["cpu_time"] > 0
    # over its memory limit even though no sample saw it: reported as CCTools would
    assert summary["limits_exceeded"] == {"memory": 100} and summary["exit_type"] == "limits"
    assert exit_code(summary) == RM_OVERFLOW


def test_two_cores_spinning_in_a_shell_loop():
    # two busy processes (the backgrounded subshell and the shell itself) for about a second
    summary, _ = run_tree(["/bin/sh", "-c", "while :; do :; done & while :; do :; done"],
                          kill_after=1.0, cores_window=0.5)
    assert summary["exit_type"] == "signal" and summary["signal"] == signal.SIGKILL
    assert summary["max_concurrent_processes"] >= 2
    # both spinners counted: about twice what the shell alone used (whatever the load)
    shell_alone = LAST_RUSAGE[0].ru_utime + LAST_RUSAGE[0].ru_stime
    assert summary["cpu_time"] > 1.5 * shell_alone > 0.1
    assert summary["cores_avg"] == pytest.approx(summary["cpu_time"] / summary["wall_time"])
    assert summary["cores"] >= summary["cores_avg"] > 0.2


def test_cores_limit_breaks_only_beyond_a_quarter_core():
    summary, broken = run_tree(["/bin/sh", "-c", "while :; do :; done & while :; do :; done"],
                               limits={"cores": 0.1}, cores_window=0.3)
    assert broken == "cores"
    assert summary["limits_exceeded"] == {"cores": 0.1}
    assert summary["exit_status"] == 143 and summary["cores"] > 0.35


def test_disk_of_a_task_writing_50_mb_in_its_sandbox(tmp_path):
    (tmp_path / "input").write_bytes(b"x" * 1000)
    summary, broken = run_tree(["/bin/sh", "-c", "dd if=/dev/zero of=out bs=1M count=50 "
                                "2>/dev/null; mkdir d; touch d/a; sleep 0.2"],
                               sandbox=str(tmp_path), disk_interval=0.05)
    assert broken is None
    assert summary["disk"] == 51  # 50 MB + 1000 bytes, rounded up as CCTools
    assert summary["total_files"] == 5  # the sandbox, input, out, d, d/a
    assert summary["bytes_written"] >= 50
    assert tree_usage(str(tmp_path)) == (50 * 2**20 + 1000, 5)


def test_disk_limit_kills_the_writer(tmp_path):
    summary, broken = run_tree(["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "
                                "dd if=/dev/zero of=f$i bs=1M count=5 2>/dev/null; "
                                "sleep 0.05; done; sleep 5"],
                               limits={"disk": 20}, sandbox=str(tmp_path), disk_interval=0.05)
    assert broken == "disk" and summary["limits_exceeded"] == {"disk": 20}
    assert summary["exit_type"] == "limits" and summary["wall_time"] < 4
    assert exit_code(summary) == RM_OVERFLOW


def test_children_are_followed():
    summary, _ = run_tree(["/bin/sh", "-c", "sleep 0.5 & sleep 0.5 & sleep 0.5 & wait"])
    assert summary["max_concurrent_processes"] >= 4  # the shell and its three children
    assert summary["total_processes"] >= 4
    assert summary["exit_status"] == 0


def test_memory_limit_names_the_limit_and_wall_time_expires():
    summary, broken = run_tree([PY, "-c", ALLOC_200.format(sleep=5)], limits={"memory": 50})
    assert broken == "memory" and summary["limits_exceeded"] == {"memory": 50}
    assert summary["exit_status"] == 143 and summary["wall_time"] < 4
    summary, broken = run_tree(["sleep", "5"], limits={"wall_time": 0.3})
    assert broken == "wall_time" and exit_code(summary) == RM_TIME_EXPIRE


def test_measure_only_reports_without_the_kill_status():
    summary, broken = run_tree([PY, "-c", ALLOC_200.format(sleep=0.2)], limits={"memory": 50},
                               enforce=False, measure_only=True)
    assert broken == "memory"
    assert summary["exit_type"] == "limits" and summary["exit_status"] == 0


# ----------------------------------------------------------------------------------------------
# the resource_monitor command


@pytest.fixture(scope="module")
def monitor_exe(tmp_path_factory):
    """The command as the manager ships it: one file, run by this interpreter."""
    return standalone.build(str(tmp_path_factory.mktemp("rm") / "cctools-monitor"), PY)


def rm(exe: str, *args: str, cwd: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_as_the_manager_wraps_commands_for_cctools_workers(monitor_exe, tmp_path):
    exe = os.path.join(tmp_path, "cctools-monitor")
    os.symlink(monitor_exe, exe)
    wrapped = ("./cctools-monitor --no-pprint --with-output-files=cctools-monitor "
               "-L 'cores: 1.000' -L 'memory: 100' -L 'disk: 100' "
               "-V 'task_id: 12' -V 'category: default' --measure-only "
               "--sh \"echo hello > out.txt; exit 3\"")
    p = subprocess.run(["/bin/sh", "-c", wrapped], cwd=tmp_path, timeout=20)
    assert p.returncode == RM_TASK_ERROR
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    text = (tmp_path / "cctools-monitor.summary").read_text()
    assert text.startswith('{"task_id":"12","category":"default","host":')
    data = S.loads(text)
    assert data["command"] == "echo hello > out.txt; exit 3"
    assert data["exit_status"] == 3 and data["exit_type"] == "normal"
    assert data["executable_type"] == "dynamic" or data["executable_type"].startswith("static")
    assert set(S.RESOURCE_NAMES) <= set(data)
    # enable_monitoring_full's form: a debug log and a time series too
    full = wrapped.replace("--measure-only", "-dall -o cctools-monitor.debug --with-time-series")
    p = subprocess.run(["/bin/sh", "-c", full], cwd=tmp_path, timeout=20)
    assert p.returncode == RM_TASK_ERROR
    assert "command line: echo hello" in (tmp_path / "cctools-monitor.debug").read_text()
    assert (tmp_path / "cctools-monitor.series").read_text().startswith("# Units:\n")


def test_cli_follows_a_running_pid(monitor_exe, tmp_path):
    proc = subprocess.Popen(["sleep", "0.5"])
    p = rm(monitor_exe, "--no-pprint", "-O", "p", "--pid", str(proc.pid), cwd=str(tmp_path))
    proc.wait()
    assert p.returncode == RM_SUCCESS
    data = S.read_summary(str(tmp_path / "p.summary"))
    assert data["command"] == "# following pid with --pid" and 0 < data["wall_time"] < 5
    assert data["memory"] >= 1 and data["total_processes"] == 1


def test_cli_limit_broken_kills_and_exits_2(monitor_exe, tmp_path):
    p = rm(monitor_exe, "-O", "out/x", "-L", "memory: 50", "-i", "1", "--", PY, "-c",
           ALLOC_200.format(sleep=10), cwd=str(tmp_path))
    assert p.returncode == RM_OVERFLOW, p.stderr
    text = (tmp_path / "out" / "x.summary").read_text()
    assert text.startswith("\n{\n")  # pretty-printed by default
    data = S.loads(text)
    assert data["exit_type"] == "limits" and data["limits_exceeded"] == {"memory": 50}
    assert data["exit_status"] == 143 and data["wall_time"] < 5


def test_cli_measure_only_keeps_the_status(monitor_exe, tmp_path):
    p = rm(monitor_exe, "--no-pprint", "-O", "m", "-L", "memory: 50", "--measure-only", "--",
           PY, "-c", ALLOC_200.format(sleep=0.3), cwd=str(tmp_path))
    data = S.read_summary(str(tmp_path / "m.summary"))
    assert p.returncode == RM_OVERFLOW  # as CCTools: the limit was broken
    assert data["exit_type"] == "limits" and data["exit_status"] == 0


def test_cli_signal_time_series_and_limits_file(monitor_exe, tmp_path):
    (tmp_path / "lim").write_text("wall_time: 30\n")
    p = rm(monitor_exe, "-O", "s", "-l", "lim", "--with-time-series", "-i", "1", "--sh",
           "sleep 0.3; kill -9 $$", cwd=str(tmp_path))
    assert p.returncode == RM_TASK_ERROR
    data = S.read_summary(str(tmp_path / "s.summary"))
    assert data["exit_type"] == "signal" and data["signal"] == 9
    assert data["exit_status"] == 137
    series = (tmp_path / "s.series").read_text().splitlines()
    assert series[0] == "# Units:" and series[7].startswith("#wall_clock cpu_time cores")
    rows = [line.split() for line in series[8:]]
    assert len(rows) >= 3 and all(len(r) == 15 for r in rows)
    assert float(rows[0][0]) == pytest.approx(data["start"], abs=0.5)


def test_cli_wall_time_exits_3_and_sigterm_is_forwarded(monitor_exe, tmp_path):
    p = rm(monitor_exe, "-O", "w", "-L", "wall_time: 0.3", "--", "sleep", "10",
           cwd=str(tmp_path))
    assert p.returncode == RM_TIME_EXPIRE
    assert S.read_summary(str(tmp_path / "w.summary"))["limits_exceeded"] == {"wall_time": 0.3}
    proc = subprocess.Popen([monitor_exe, "-O", "t", "--", "sleep", "10"], cwd=tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == RM_TASK_ERROR
    data = S.read_summary(str(tmp_path / "t.summary"))
    assert data["signal"] == signal.SIGTERM and data["wall_time"] < 5


def test_cli_bad_input_is_one_clear_line(monitor_exe, tmp_path):
    cases = [
        (["-L", "cores 4", "--", "true"], 4, "missing ':'"),
        (["-L", "ram: 4", "--", "true"], 4, "unknown resource 'ram'"),
        (["-l", "nowhere", "--", "true"], 4, "cannot read limits file"),
        (["-i", "0", "--", "true"], 4, "interval"),
        (["--", "/no/such/program"], 4, "Error reading /no/such/program"),
        (["-O", "x"], 1, "give a command"),
        (["--bogus", "--", "true"], 1, "bogus"),
    ]
    for args, code, message in cases:
        p = rm(monitor_exe, *args, cwd=str(tmp_path))
        assert p.returncode == code, (args, p.stderr)
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_samples_come_quickly_while_a_task_is_young():
    tree = TreeMonitor(os.getpid(), None, {"wall_time": 3}, start=100.0)
    assert tree.next_sample(100.0, 5) == pytest.approx(100.05)
    assert tree.next_sample(100.2, 5) == pytest.approx(100.4)
    assert tree.next_sample(101.0, 5) == pytest.approx(102.0)
    assert tree.next_sample(102.5, 5) == pytest.approx(103.001)  # the wall time limit
    assert TreeMonitor(os.getpid(), start=100.0).next_sample(110.0, 5) == 115.0
