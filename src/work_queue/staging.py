"""CCTools' ``staging_directory``: a private directory for the manager's files, removed at exit.

CCTools makes ``wq-py-staging-XXXX`` (under ``$CCTOOLS_TEMP`` when set) as the module is
imported, writes every PythonTask's pickles there, and removes it at exit (or when the
application calls ``cleanup_staging_directory()``).  Our PythonTasks need no files, so the
directory is only for applications that use it; it is made the first time
``work_queue.staging_directory`` is read, so a program that imports the package (the worker,
the tools) makes none.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

_path: str | None = None


def staging_directory() -> str:
    """The directory's path, making it on the first call (and again if it was removed)."""
    global _path
    if _path is None:
        _path = tempfile.mkdtemp(prefix="wq-py-staging-",
                                 dir=os.environ.get("CCTOOLS_TEMP") or None)
        atexit.register(cleanup_staging_directory)
    else:
        os.makedirs(_path, exist_ok=True)
    return _path


def cleanup_staging_directory() -> None:
    """Remove the staging directory and everything in it (a failure is reported on stderr,
    as in CCTools, and does not raise: this runs at exit)."""
    if _path is None or not os.path.exists(_path):
        return
    try:
        shutil.rmtree(_path)
    except OSError as e:
        sys.stderr.write(f"could not delete {_path}: {e}\n")
