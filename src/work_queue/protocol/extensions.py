"""Extensions beyond protocol 11, negotiated so a CCTools peer never sees them.

Our worker lists each one as a ``feature <name>`` line in its handshake (a CCTools manager just
records the name).  Our manager uses an extension only with workers that announced it; where
the worker must change how it talks, the manager confirms with the same ``feature <name>``
line, which it sends only to workers that announced the feature (so never to a CCTools worker).
"""

#: The worker queues tasks until their resources free up, so the manager may send one task
#: beyond the worker's free resources; it starts as soon as a running task ends.
PREFETCH = "wq-py-prefetch"

#: Once confirmed by the manager, the worker sends each ``result`` as soon as the task ends,
#: without the ``available_results`` / ``send_results`` round trip (and without ``end``).
PUSH_RESULTS = "wq-py-push-results"

#: The worker runs Python tasks in warm, reused interpreters (worker/pyexec.py).  The manager
#: marks such a task with a ``coprocess`` line naming this feature (sent only to workers that
#: announced it).
PYTHON_WARM = "wq-py-python-warm"

#: The worker measures a task's process tree itself (worker/task_monitor.py) when the task
#: block holds a ``monitor <len>`` line with the limits as JSON; it sends the CCTools summary
#: as ``wq-py-summary <taskid> <len>`` + JSON just before the task's ``result``, and reports the
#: exit code CCTools' resource_monitor would.
MONITOR = "wq-py-monitor"

#: Once confirmed by the manager, the worker url-encodes the names in its ``file``, ``dir``
#: and ``missing`` replies (as the manager always does in ``put``, ``dir`` and ``get``), so
#: any name a file system allows crosses the wire, newlines included.  CCTools sends them as
#: they are; without this extension our worker leaves out an entry whose name holds a newline.
ENCODED_NAMES = "wq-py-encoded-names"

#: A worker whose connection drops keeps its tasks and comes back for them
#: (docs/protocol-resume.md).  The manager confirms with the same ``feature`` line followed by
#: ``wq-py-resume-token <token> <grace>``; a worker that returns within ``grace`` seconds sends
#: ``wq-py-resume`` (token, worker id, the tasks it holds) instead of the handshake.
RESUME = "wq-py-resume"

#: What our worker announces.
WORKER_EXTENSIONS = (PREFETCH, PUSH_RESULTS, PYTHON_WARM, MONITOR, ENCODED_NAMES, RESUME)
