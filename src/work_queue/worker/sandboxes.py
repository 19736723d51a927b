"""The directories tasks run in: made ahead of time, kept for later tasks, removed.

Creating and deleting a directory costs as much as starting a short task, so a sandbox a task
left empty (and no process of it can still write into) is kept for a later task, and a few are
made while the worker waits.  What cannot be removed at once (a process the task left behind
still writes into it) is renamed out of the way and tried again later from the trash.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from ..protocol import extensions
from ..protocol.task_block import TaskSpec
from .cache import Cache
from .executor import TaskRun, read_output, remove_tree

logger = logging.getLogger(__name__)

#: Empty sandboxes made ahead of time, while the worker waits, for the next tasks.
SPARE_SANDBOXES = 4

#: At most this many empty sandboxes are kept for later tasks.
KEPT_SANDBOXES = 64


class Sandboxes:
    """The sandboxes of one session, under the worker's workspace."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        #: Empty sandboxes for the next tasks: kept from earlier tasks that left no process
        #: behind, or made ahead of time.
        self.free: list[str] = []
        #: Directories that could not be removed at once (something still wrote into them),
        #: tried again when the worker has a moment.  No task ever uses them again.
        self.trash: list[str] = []
        #: Sandboxes ``s.<n>`` made so far (the next name).
        self.made = 0

    @staticmethod
    def is_pooled(spec: TaskSpec) -> bool:
        """Whether ``spec`` may run in any empty sandbox; a task run by a coprocess needs
        ``<workspace>/t.<taskid>``, as in CCTools (coprocesses, Parsl's among them, look for
        a task's files there)."""
        return not spec.coprocess or spec.coprocess == extensions.PYTHON_WARM

    def task_path(self, spec: TaskSpec) -> str:
        return f"{self.workspace}/t.{spec.task_id}"

    def make(self, spec: TaskSpec) -> str:
        """An empty directory for the task: one kept or made ahead of time, else a new one
        (``t.<taskid>`` for a coprocess task).

        A kept sandbox is checked to be still empty (a task never sees a file it was not
        given); one that is not is removed."""
        if self.is_pooled(spec):
            while self.free:
                path = self.free.pop()
                if is_empty_dir(path):
                    return path
                self.discard(path)
            path = self.new_name()
        else:
            path = self.task_path(spec)
        try:
            os.mkdir(path)
        except OSError:
            self.discard(path)
            os.mkdir(path)
        return path

    def make_spares(self) -> None:
        """Make the next tasks' sandboxes while the worker has a moment (off their path)."""
        while len(self.free) < SPARE_SANDBOXES:
            path = self.new_name()
            try:
                os.mkdir(path)
            except OSError:
                return
            self.free.append(path)

    def new_name(self) -> str:
        """A new name ``<workspace>/s.<n>`` for a sandbox not tied to a task id."""
        self.made += 1
        return f"{self.workspace}/s.{self.made}"

    def recycle(self, sandbox: str, safe: bool) -> None:
        """Keep the empty sandbox of a finished task for a later task, if ``safe``: no
        process the task started can still be running (one that escaped its task, with
        ``setsid`` say, may still have the sandbox as its working directory and write into
        it: that sandbox is removed, and a removed directory takes no new files).  Anything
        else is removed now, files and all, so its space is free for the next task.  A kept
        one is never named ``t.<taskid>``, a name a coprocess task may need."""
        if safe and len(self.free) < KEPT_SANDBOXES and is_empty_dir(sandbox):
            if os.path.basename(sandbox).startswith("t."):
                kept = self.new_name()
                try:
                    os.rename(sandbox, kept)
                except OSError:
                    self.discard(sandbox)
                    return
                sandbox = kept
            self.free.append(sandbox)
        else:
            self.discard(sandbox)

    def discard(self, path: str) -> None:
        """Remove a used sandbox now, files and all.  What cannot be removed at once is
        renamed out of the way, so a name like ``t.<taskid>`` is free again, and tried again
        later from the trash."""
        remove_tree(path)
        if not os.path.lexists(path):
            return
        away = self.new_name() + ".old"
        try:
            os.rename(path, away)
            path = away
        except OSError:
            pass
        self.trash.append(path)

    def empty_trash(self, now: float, in_use: set[str]) -> None:
        """Delete old sandboxes, for at most a few milliseconds unless there are many."""
        deadline = now + (0.5 if len(self.trash) > 256 else 0.002)
        while self.trash:
            path = self.trash.pop()
            if path not in in_use:
                remove_tree(path)
            if time.time() > deadline:
                break

    def clear(self) -> None:
        """At the end of the session: remove every sandbox left."""
        for path in self.trash + self.free:
            remove_tree(path)
        self.trash.clear()
        self.free.clear()


def is_empty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def keep_outputs(run: TaskRun, cache: Cache) -> None:
    """Move a finished task's declared outputs from its sandbox into the cache (before the
    manager's ``get`` for them is read): the sandbox is then no longer needed."""
    for cachename, remote, _flags in run.spec.outputs:
        if remote == run.result_name:
            data = read_output(run.result_fd)
            run.result_fd = -1
            if data:
                cache.store(cachename, data)
            continue
        src = os.path.join(run.sandbox, remote)
        if os.path.lexists(src):
            dst = cache.path(cachename)
            remove_tree(dst)
            try:
                os.rename(src, dst)
            except OSError:
                try:
                    if os.path.isdir(src):
                        shutil.copytree(src, dst, symlinks=True)
                    else:
                        shutil.copy2(src, dst)
                except OSError as e:
                    logger.warning("cannot keep output %s: %s", remote, e)
