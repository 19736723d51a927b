"""The notebook status display (issue 18 item 2): ``WorkQueue(status_display_interval=N)``.

In a real Jupyter kernel (ipykernel, run by nbclient) with a real worker, the tables of CCTools'
``work_queue_display`` show under the cell that made the queue and are redrawn in place (the
same display id) while ``wait()`` runs.  In a plain Python process, and a terminal IPython,
nothing is printed and no display is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from typing import Any

import pytest

import work_queue as wq
from work_queue.manager.display import JupyterDisplay, StatusDisplay, start_display

from .conftest import wait_all

KERNEL = "wq-display-test"


class _Tables(HTMLParser):
    """Every ``<table>`` of an HTML text as rows of cell texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.over: list[str] = []  # texts of the cells marked class="over"
        self._over = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
            self._over = ("class", "over") in attrs

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            self.tables[-1][-1].append(text)
            if self._over:
                self.over.append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _pairs(tables: list[list[list[str]]], label: str) -> dict[str, str]:
    """The rows of the pair table headed ``label`` as a dict."""
    for t in tables:
        if t and t[0] == [label]:
            return {row[0]: row[1] for row in t[1:]}
    raise AssertionError(f"no {label!r} table in {tables}")


def _resource_rows(tables: list[list[list[str]]], header: str) -> dict[str, list[str]]:
    """Rows (label -> cores, gpus, memory, disk) of the resource table whose header row
    starts with ``header``."""
    for t in tables:
        for i, row in enumerate(t):
            if row == [header, "cores", "gpus", "memory", "disk"]:
                out = {}
                for r in t[i + 1:]:
                    if r[1:] == ["cores", "gpus", "memory", "disk"]:
                        break  # the next category's header
                    out[r[0]] = r[1:]
                return out
    raise AssertionError(f"no table headed {header!r} in {tables}")


# -- in a real Jupyter kernel -----------------------------------------------------------------

NOTEBOOK_CELLS = [
    # 0: the queue (its display shows under this cell) and a real worker
    """
    import subprocess, sys
    import work_queue as wq

    class App(wq.WorkQueue):
        def application_info(self):
            return {"application_info": {"values": {"current_chunksize": 65536,
                                                    "size_max_output": 1500},
                                         "units": {"size_max_output": "MB"}}}

    q = App(port=0, status_display_interval=1)
    worker = subprocess.Popen(
        [sys.executable, "-m", "work_queue.cli.worker", "--cores", "1", "--memory", "500",
         "--disk", "700", "-t", "20", "-b", "1", "--single-shot", "-s", WORKDIR,
         "localhost", str(q.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    """,
    # 1: one wait() that lasts while a task runs for 2.5 s: the display changes during it
    """
    t = wq.Task("sleep 2.5")
    q.submit(t)
    done = q.wait(30)
    print("first", done.result, done.return_status)
    """,
    # 2: three quick tasks in another category, until the queue is empty
    """
    for i in range(3):
        t = wq.Task(f"echo {i}")
        t.specify_category("quick")
        t.specify_cores(1)
        q.submit(t)
    while not q.empty():
        q.wait(5)
    print("empty")
    """,
    # 3: close (the last figures, with the worker still connected)
    """
    q.close()
    worker.wait(20)
    print("closed", worker.returncode)
    """,
]


def _kernel_spec(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel spec running this interpreter (so the kernel imports this checkout), found
    first through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "work_queue display test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


@pytest.fixture
def notebook_run(tmp_path, monkeypatch):
    """Runs NOTEBOOK_CELLS in a real kernel; gives (notebook, iopub messages)."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed")
    _kernel_spec(tmp_path, monkeypatch)
    workdir = tmp_path / "worker"
    workdir.mkdir()
    cells = [textwrap.dedent(c).strip() for c in NOTEBOOK_CELLS]
    cells[0] = f"WORKDIR = {str(workdir)!r}\n" + cells[0]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    messages: list[tuple[int, str, dict[str, Any]]] = []

    class Recorder(nbclient.NotebookClient):
        """Keeps every iopub message (nbclient folds display updates into the outputs)."""

        def process_message(self, msg, cell, cell_index):  # type: ignore[no-untyped-def]
            messages.append((cell_index, msg["msg_type"], msg["content"]))
            return super().process_message(msg, cell, cell_index)

    client = Recorder(nb, timeout=60, kernel_name=KERNEL,
                      resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb, messages


def test_the_tables_show_in_a_notebook_and_are_redrawn_in_place(notebook_run):
    nb, messages = notebook_run
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    assert "first 0 0" in texts[1]
    assert "empty" in texts[2]
    assert "closed" in texts[3]
    assert not any("status display error" in t or "Error reading" in t for t in texts), texts

    # one display, made by the cell that made the queue; every redraw names its id
    shown = [(i, c) for i, kind, c in messages if kind == "display_data"]
    assert len(shown) == 1 and shown[0][0] == 0, shown
    display_id = shown[0][1]["transient"]["display_id"]
    updates = [(i, c) for i, kind, c in messages if kind == "update_display_data"]
    assert updates and all(c["transient"]["display_id"] == display_id for _, c in updates)
    # redrawn when made and during the wait()s (close() redraws only if a figure changed)
    assert {i for i, _ in updates} >= {0, 1, 2}

    # during the one wait() of cell 1 (2.5 s at an interval of 1 s) the tables changed
    # while the task ran: wait() redraws them, not only between calls
    during = [_Tables(c["data"]["text/html"]).tables for i, c in updates if i == 1]
    assert len(during) >= 2, during
    running = [_pairs(t, "queue stats") for t in during]
    assert any(p["tasks running"] == "1" and p["workers busy"] == "1" for p in running), running

    # the output the notebook keeps is the last redraw (at close)
    (output,) = nb.cells[0].outputs
    assert output["output_type"] == "display_data"
    assert output["data"]["text/html"] == updates[-1][1]["data"]["text/html"]
    tables = _Tables(output["data"]["text/html"]).tables
    stats = _pairs(tables, "queue stats")
    port = json.loads(json.dumps(stats))["port"]
    assert port.isdigit() and int(port) > 0
    assert stats["tasks done"] == "4"
    assert stats["tasks waiting"] == "0" and stats["tasks running"] == "0"
    assert stats["tasks exhausted attempts"] == "0"
    assert stats["workers connected"] == "1" and stats["workers busy"] == "0"
    for key in ("sent", "received", "total send time", "total receive time",
                "total good task time", "total task time", "runtime"):
        assert key in stats
    assert stats["sent"].endswith(" MB") and stats["runtime"].startswith("0:00:")
    assert stats["total good task time"] in ("0:00:03", "0:00:04")  # the sleep 2.5 and echos

    app = _pairs(tables, "application info")
    assert app == {"current chunksize": "65536", "size max output": "1.50 GB"}

    workers = _resource_rows(tables, "application resources")
    assert workers["largest worker"] == ["1.0", "0.0", "500.00 MB", "700.00 MB"]
    assert workers["allocated"][0] == "0.0"
    assert workers["total"] == ["1.0", "0.0", "500.00 MB", "700.00 MB"]

    for category in ("default", "quick"):
        rows = _resource_rows(tables, category)
        assert "current allocation" in rows and "maximum allocation" in rows, rows
        assert "current workers are too small!" not in rows
    assert _resource_rows(tables, "quick")["current allocation"][0] == "1.0"

    plain = output["data"]["text/plain"]
    assert "queue stats" in plain and "largest worker" in plain and "quick" in plain


# -- outside a kernel --------------------------------------------------------------------------

PLAIN_PROGRAM = """
import subprocess, sys
{before}
import work_queue as wq

q = wq.WorkQueue(port=0, status_display_interval=1)
worker = subprocess.Popen(
    [sys.executable, "-m", "work_queue.cli.worker", "--cores", "1", "--memory", "200",
     "--disk", "200", "-t", "20", "-b", "1", "--single-shot", "-s", {workdir!r},
     "localhost", str(q.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for i in range(2):
    q.submit(wq.Task("true"))
while not q.empty():
    q.wait(5)
assert q._display is None
q.close()
worker.wait(20)
sys.stderr.write("IPython loaded: %s\\n" % ("IPython" in sys.modules))
"""


@pytest.mark.parametrize("before", ["", "import IPython"])
def test_a_plain_python_process_prints_nothing(tmp_path, before):
    """No kernel, no display: nothing on stdout or stderr, and IPython is never imported by
    the package (unless the program imported it)."""
    if before:
        pytest.importorskip("IPython", reason="IPython is not installed")
    program = PLAIN_PROGRAM.format(before=before, workdir=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert out.stderr == f"IPython loaded: {bool(before)}\n"


def test_a_terminal_ipython_prints_nothing_more(tmp_path):
    """A terminal IPython is no kernel: the program's own output only."""
    pytest.importorskip("IPython", reason="IPython is not installed")
    program = PLAIN_PROGRAM.format(before="print('own output')", workdir=str(tmp_path))
    script = tmp_path / "program.py"
    script.write_text(program)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    out = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner",
                          "--colors=nocolor", str(script)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "own output"
    assert "IPython loaded: True" in out.stderr and "status" not in out.stderr


def test_ndcctools_name_and_no_ipython_import():
    program = ("import sys\nfrom ndcctools.work_queue_display import JupyterDisplay\n"
               "from work_queue.manager import display\n"
               "assert JupyterDisplay is display.JupyterDisplay\n"
               "d = JupyterDisplay(interval=3)\n"
               "assert d.interval == 3 and not d.active()\n"
               "print('IPython' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "False\n"


def test_interval_none_under_one_or_not_a_number(in_tmp):
    for interval in (None, 0, 0.5, -3):
        q = wq.WorkQueue(port=0, status_display_interval=interval)
        assert q._display is None
        q.close()
    with pytest.raises(TypeError, match="status_display_interval must be a number"):
        wq.WorkQueue(port=0, status_display_interval="5")
    q = wq.WorkQueue(port=0)  # the port of the refused queue was given back
    q.close()
    assert start_display(None, 0) is None


# -- the tables themselves, from a real queue (no kernel needed) ----------------------------


class _Recording(JupyterDisplay):
    """A JupyterDisplay that keeps what it would draw (active without a kernel)."""

    def __init__(self, interval: float = 10) -> None:
        super().__init__(interval)
        self.drawn: list[dict[str, str]] = []

    def active(self) -> bool:
        return True

    def update_display(self, *tables: Any) -> None:
        super().update_display(*tables)
        self.drawn.append(self._bundle())


def test_a_category_larger_than_every_worker_is_marked(queue, workers):
    queue.specify_category_max_resources("big", {"cores": 4, "memory": 2000})
    workers.start(queue.port, cores=1, memory=500, disk=500)
    small = wq.Task("true")
    queue.submit(small)
    wait_all(queue)
    big = wq.Task("true")
    big.specify_category("big")
    queue.submit(big)
    queue.wait(0.2)  # the worker of the big category's check is connected
    shown = _Recording()
    shown.update(queue, force=True)
    tables = _Tables(shown.drawn[-1]["text/html"])
    rows = _resource_rows(tables.tables, "big")
    assert rows["current workers are too small!"] == [
        "1.0 is too small", "ok", "500.00 MB is too small", "ok"]
    assert rows["maximum allocation"][:1] == ["4.0"]
    assert "current workers are too small!" in tables.over
    assert "current workers are too small!" not in _resource_rows(tables.tables, "default")
    assert _pairs(tables.tables, "queue stats")["tasks waiting"] == "1"
    queue.cancel_by_taskid(big.id)


def test_rate_limit_force_and_errors(queue, capsys):
    shown = _Recording(interval=3600)
    shown.update(queue)
    shown.update(queue)  # within the interval: not redrawn
    assert len(shown.drawn) == 1
    shown.update(queue, force=True)
    assert len(shown.drawn) == 2

    class Broken:
        def status(self, request: str) -> Any:
            raise OSError("no status")

        def application_info(self) -> Any:
            raise RuntimeError("no info")

    shown.refresh(Broken(), force=True)  # never raises into wait(); says why on stderr
    err = capsys.readouterr().err
    assert "Error reading work queue status: no status" in err
    assert "Error reading application information status: no info" in err


def test_wait_and_close_redraw(queue, workers):
    """wait() redraws at once when it returns the last task, and close() draws the last
    figures, with the workers still connected (as CCTools does)."""
    shown = _Recording(interval=3600)
    shown.update(queue)
    queue._display = shown  # what start_display gives inside a kernel
    workers.start(queue.port)
    for _ in range(2):
        queue.submit(wq.Task("true"))
    wait_all(queue)
    last = _pairs(_Tables(shown.drawn[-1]["text/html"]).tables, "queue stats")
    assert last["tasks done"] == "2" and last["tasks waiting"] == "0"
    assert len(shown.drawn) == 2  # the interval is an hour: only the forced redraw
    queue.close()
    assert len(shown.drawn) == 3
    last = _pairs(_Tables(shown.drawn[-1]["text/html"]).tables, "queue stats")
    assert last["workers connected"] == "1"


def test_units_and_rows_as_cctools_draws_them():
    s = StatusDisplay()
    assert s.with_units("cores", 2, "na") == "2.0"
    assert s.with_units("memory", 999, "na") == "999.00 MB"
    assert s.with_units("disk", 1500, "na") == "1.50 GB"
    assert s.with_units("disk", 2.5e6, "na") == "2.50 TB"
    assert s.with_units("memory", -1, "whole worker") == "whole worker"
    assert s.with_units("memory", None, "na") == "na"
    assert s.with_units("cores", "8", "na") == "8"
    assert s.resources_to_row({"cores": 1, "memory": 10}, "x") == ["x", "1.0", "na",
                                                                   "10.00 MB", "na"]
    assert s.resources_check_limits({"cores": 1}, {"cores": 2}) is None
    assert s.resources_check_limits({"cores": 1}, None) is None
    assert s.generate_app_table({"application_info": {"values": {"a_b": 1}}}) == [("a b", "1")]
    assert s.generate_app_table({"other": 1}) is None
    d = JupyterDisplay()
    assert d.make_row(["a", 1]) == "<tr> <td> a </td> <td> 1 </td> </tr>"
    assert 'class="over"' in d.make_row(["too small!", 1])
    assert d.table_of_pairs([("port", "9123")], "queue stats").count("<th colspan=\"2\">") == 1
