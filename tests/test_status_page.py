"""The catalog's status page in a real headless Chromium (Debian's ``chromium``).

Chromium is driven over ``--remote-debugging-pipe`` (DevTools protocol, NUL-separated JSON on
file descriptors 3 and 4), so the test reads the live page while tasks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import work_queue as wq
from work_queue.catalog.server import CatalogServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason="Debian's chromium is not installed (apt-get install "
                                       "chromium); run-tests.sh installs it when it can")


class Browser:
    """A headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands from its fd 3 and writes replies to its fd 4
        redirect = f"exec \"$@\" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- " \
                   f"{from_chrome_w}>&-"
        self.proc = subprocess.Popen(
            ["bash", "-c", redirect, "chromium", CHROMIUM, *FLAGS,
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1100,700",
             "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self._buffer = b""
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params):
        self._next += 1
        msg: dict = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" not in self._buffer:
                assert time.time() < deadline, f"no answer from chromium to {method}"
                assert self.proc.poll() is None, "chromium exited"
                import select
                ready, _, _ = select.select([self._from_chrome], [], [], 1)
                if ready:
                    self._buffer += os.read(self._from_chrome, 1 << 20)
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                assert "error" not in reply, reply["error"]
                return reply["result"]

    def page(self, method: str, **params):
        return self.call(method, session=self.session, **params)

    def goto(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def eval(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while not self._eval_or_not_yet(expression):
            assert time.time() < deadline, f"page never satisfied: {expression}"
            time.sleep(0.1)

    def _eval_or_not_yet(self, expression: str):
        """``eval``, where the page navigating away while the expression ran (chromium
        answers "Inspected target navigated or closed", after a click on a link, say)
        means "not yet": the next try runs on the new page."""
        try:
            return self.eval(expression)
        except AssertionError as e:
            if "navigated or closed" in str(e):
                return False
            raise

    def screenshot(self, path: str) -> None:
        import base64
        data = self.page("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def browser(tmp_path):
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    b = Browser(profile)
    yield b
    b.close()


def cell(browser: Browser, project: str, column: str):
    return browser.eval(
        f"(() => {{ for (const tr of document.querySelectorAll('#managers tbody tr')) "
        f"if (tr.textContent.includes({json.dumps(project)})) "
        f"return tr.querySelector('td.{column}').textContent; return null; }})()")


def test_status_page_shows_managers_and_updates(browser, in_tmp, monkeypatch):
    monkeypatch.setenv("WORK_QUEUE_UPDATE_INTERVAL", "0.3")
    srv = CatalogServer(port=0, history_dir=None).start()
    q = wq.WorkQueue(port=0, name="page-test")
    q.specify_catalog_server("127.0.0.1", srv.port)
    other = wq.WorkQueue(port=0, name="page-other")
    other.specify_catalog_server("127.0.0.1", srv.port)
    worker = None
    try:
        for _ in range(6):
            q.submit(wq.Task("sleep 0.3"))
        other.submit(wq.Task("true"))
        q.wait(0)
        other.wait(0)
        time.sleep(0.4)
        base = f"http://127.0.0.1:{srv.port}"
        browser.goto(base + "/?refresh=0.5")
        browser.wait_for("document.body.dataset.refreshes >= 1")
        text = browser.eval("document.body.innerText")
        assert "page-test" in text and "page-other" in text
        assert cell(browser, "page-test", "waiting") == "6"
        assert cell(browser, "page-test", "complete") == "0"
        assert browser.eval("document.querySelectorAll('#managers svg.chart').length") == 2
        # tasks complete: the open page follows without being reloaded
        worker = subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--cores",
                                   "2", "--memory", "1000", "--disk", "1000", "-t", "30",
                                   "127.0.0.1", str(q.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = 0
        deadline = time.time() + 30
        while done < 3:
            assert time.time() < deadline
            if q.wait(0.1):
                done += 1
        end = time.time() + 1
        while time.time() < end:
            q.wait(0.1)
        browser.wait_for("(() => { for (const tr of document.querySelectorAll("
                         "'#managers tbody tr')) if (tr.textContent.includes('page-test')) "
                         "return parseInt(tr.querySelector('td.complete').textContent) >= 3; "
                         "})()")
        assert cell(browser, "page-test", "workers") == "1"
        while not q.empty():
            assert time.time() < deadline
            q.wait(0.1)
        end = time.time() + 1
        while time.time() < end:
            q.wait(0.1)
        browser.wait_for("(() => { for (const tr of document.querySelectorAll("
                         "'#managers tbody tr')) if (tr.textContent.includes('page-test')) "
                         "return tr.querySelector('td.complete').textContent === '6'; })()")
        assert cell(browser, "page-test", "waiting") == "0"
        # the history chart has grown: it gains a point with each update the manager sends,
        # so keep the manager working (advertising) while waiting for it
        # (page-test's own row: page-other stopped advertising after its one wait)
        chart = ("(() => { for (const tr of document.querySelectorAll('#managers tbody tr')) "
                 "if (tr.textContent.includes('page-test')) return tr.querySelector("
                 "'svg.chart polyline').getAttribute('points').split(' ').length; })()")
        grow_until = time.time() + 20
        while browser.eval(chart) < 3:
            assert time.time() < grow_until, "the history chart did not grow"
            q.wait(0.1)
        shot = os.environ.get("WQ_STATUS_PAGE_SCREENSHOT")
        if shot:
            browser.screenshot(shot)

        # the manager's own page: workers, categories and tasks asked of the manager itself
        browser.eval("document.querySelector('#managers a').click()")
        browser.wait_for("location.pathname.startsWith('/manager/')")
        browser.wait_for("document.readyState === 'complete' && "
                         "document.body.dataset.refreshes >= 1")
        page_text = browser.eval("document.body.innerText")
        assert "Manager page-" in page_text
        assert "Workers" in page_text and "Categories" in page_text and "Tasks" in page_text
        if "page-test" in page_text:
            assert browser.eval("document.querySelector('#workers table') !== null")
            assert "127.0.0.1:" in browser.eval("document.getElementById('workers').innerText")
            assert "default" in browser.eval(
                "document.getElementById('categories').innerText")
        shot = os.environ.get("WQ_STATUS_PAGE_SCREENSHOT")
        if shot:
            browser.screenshot(shot.replace(".png", "-manager.png"))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(10)
        q.close()
        other.close()
        srv.stop()


def test_page_without_javascript_and_for_an_unknown_manager(browser, in_tmp):
    srv = CatalogServer(port=0, history_dir=None).start()
    try:
        browser.goto(f"http://127.0.0.1:{srv.port}/manager/nobody")
        assert "No record" in browser.eval("document.body.innerText")
        browser.goto(f"http://127.0.0.1:{srv.port}/")
        browser.wait_for("document.body.dataset.refreshes >= 1")
        assert "No managers are advertising" in browser.eval("document.body.innerText")
    finally:
        srv.stop()
