"""The network loop of a Work Queue coprocess, embedded into the scripts that
``poncho_package_serverize`` writes.

The text between the ``BEGIN COPROCESS CODE`` and ``END COPROCESS CODE`` markers is copied
verbatim into every generated script, followed by the user's ``name()`` and the served
functions (each decorated with :func:`remote_execute`) and a ``main()`` that calls
:func:`_wq_serve`.  It therefore uses nothing but the standard library and stays valid on old
Python 3 interpreters (no annotations that are evaluated, no new syntax), because the script
runs under whatever ``python3`` the worker's machine has.

Protocol (CCTools, spec 1.11), as the worker sees it:

* The worker starts the script with ``/bin/sh -c <path>``, stdin and stdout on pipes.
* The script listens on 127.0.0.1 (any port) and writes ``<len>\\n`` plus ``len`` bytes of
  JSON ``{"name": <name()>, "port": <port>}`` to stdout.
* Each invocation is ``<function> <taskid> <len>\\n`` plus ``len`` bytes of JSON
  ``{"fn_args": [...], "fn_kwargs": {...}, ["remote_task_exec_method": ...]}`` on a TCP
  connection; the answer is ``<len>\\n`` plus JSON ``{"Result": ..., "StatusCode": 200}`` (or
  ``500`` with an error text as the result).  A connection may carry several invocations one
  after the other (the CCTools worker keeps its connection open); the coprocess serves it
  until the peer closes it, then accepts the next one.
* The function runs in the task's sandbox ``t.<taskid>`` (relative to the coprocess's
  starting directory, which is the worker's workspace) when that directory exists, else in the
  starting directory.  ``"fork"`` (the default) runs it in a child process, ``"direct"`` in
  the coprocess itself and ``"thread"`` in a thread of the coprocess.
"""

# ---- BEGIN COPROCESS CODE ----
# Work Queue coprocess network loop (work_queue.poncho.network_code).
# The plain names are imported too because CCTools' generated scripts import them at the top
# level, so served functions may use them without importing them.
import json  # noqa: F401
import json as _wq_json
import os  # noqa: F401
import os as _wq_os
import signal as _wq_signal
import socket  # noqa: F401
import socket as _wq_socket
import sys  # noqa: F401
import sys as _wq_sys
import threading as _wq_threading

#: the served functions, by name (filled by ``@remote_execute``)
_wq_functions = {}

#: pid of the child running the current "fork" invocation (0: none)
_wq_child = [0]


def remote_execute(func: "object") -> "object":
    """Serve ``func`` under its own name; the function itself is returned unchanged."""
    _wq_functions[func.__name__] = func
    return func


def _wq_answer(result, status):
    return _wq_json.dumps({"Result": result, "StatusCode": status}).encode("utf-8")


def _wq_call(func, event):
    """Call ``func`` as ``event`` says; the JSON answer (bytes)."""
    args = event.get("fn_args", [])
    kwargs = event.get("fn_kwargs", {})
    if args is None:
        args = []
    if kwargs is None:
        kwargs = {}
    if not isinstance(args, list):
        return _wq_answer("fn_args must be a list, not %s" % type(args).__name__, 500)
    if not isinstance(kwargs, dict):
        return _wq_answer("fn_kwargs must be an object, not %s" % type(kwargs).__name__, 500)
    try:
        result = func(*args, **kwargs)
    except Exception as e:
        return _wq_answer(str(e) or type(e).__name__, 500)
    except SystemExit as e:
        return _wq_answer("%s() called exit(%r)" % (func.__name__, e.code), 500)
    try:
        return _wq_answer(result, 200)
    except (TypeError, ValueError, RecursionError) as e:
        return _wq_answer("the result of %s() (%s) cannot be sent back as JSON: %s"
                          % (func.__name__, type(result).__name__, e), 500)


def _wq_call_in_thread(func, event):
    box = []

    def run():
        try:
            box.append(_wq_call(func, event))
        except BaseException as e:
            box.append(_wq_answer("%s() failed: %s" % (func.__name__, e), 500))

    thread = _wq_threading.Thread(target=run, name="wq-" + func.__name__, daemon=True)
    thread.start()
    thread.join()
    return box[0] if box else _wq_answer("%s() did not answer" % func.__name__, 500)


def _wq_call_in_dir(workdir, home, runner, func, event):
    try:
        _wq_os.chdir(workdir)
        return runner(func, event)
    finally:
        _wq_os.chdir(home)


def _wq_call_in_child(func, event, workdir):
    rfd, wfd = _wq_os.pipe()
    try:
        pid = _wq_os.fork()
    except OSError as e:
        _wq_os.close(rfd)
        _wq_os.close(wfd)
        return _wq_answer("unable to fork: %s" % e, 500)
    if pid == 0:
        code = 1
        try:
            _wq_signal.signal(_wq_signal.SIGTERM, _wq_signal.SIG_DFL)
            _wq_os.close(rfd)
            _wq_os.chdir(workdir)
            answer = _wq_call(func, event)
            with _wq_os.fdopen(wfd, "wb") as pipe:
                pipe.write(answer)
            code = 0
        finally:
            for stream in (_wq_sys.stdout, _wq_sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            _wq_os._exit(code)
    _wq_child[0] = pid
    _wq_os.close(wfd)
    try:
        with _wq_os.fdopen(rfd, "rb") as pipe:
            answer = pipe.read()
    finally:
        _, status = _wq_os.waitpid(pid, 0)
        _wq_child[0] = 0
    if _wq_os.WIFSIGNALED(status):
        how = "was killed by signal %d" % _wq_os.WTERMSIG(status)
    else:
        how = "exited with status %d" % _wq_os.WEXITSTATUS(status)
    if status != 0 or not answer:
        return _wq_answer("the process running %s() %s without answering"
                          % (func.__name__, how), 500)
    return answer


def _wq_invoke(function_name, task_id, data, home):
    """Run one invocation; the JSON answer (bytes)."""
    try:
        event = _wq_json.loads(data.decode("utf-8"))
    except ValueError as e:
        return _wq_answer("the invocation of %s is not valid JSON: %s" % (function_name, e), 500)
    if not isinstance(event, dict):
        return _wq_answer("the invocation of %s is not a JSON object" % function_name, 500)
    func = _wq_functions.get(function_name)
    if func is None:
        return _wq_answer("this coprocess has no function %r (it serves: %s)"
                          % (function_name, ", ".join(sorted(_wq_functions))), 500)
    sandbox = _wq_os.path.join(home, "t.%d" % task_id)
    workdir = sandbox if _wq_os.path.isdir(sandbox) else home
    method = event.get("remote_task_exec_method") or "fork"
    try:
        if method == "direct":
            return _wq_call_in_dir(workdir, home, _wq_call, func, event)
        if method == "thread":
            return _wq_call_in_dir(workdir, home, _wq_call_in_thread, func, event)
        return _wq_call_in_child(func, event, workdir)
    except Exception as e:
        return _wq_answer("network function encountered exception %s" % e, 500)


def _wq_serve_connection(conn, home):
    """Serve invocations on ``conn`` until the peer closes it."""
    stream = conn.makefile("rb")
    while True:
        line = stream.readline(65536)
        if not line:
            return
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 3 or not line.endswith(b"\n"):
                raise ValueError
            function_name = parts[0].decode("utf-8")
            task_id = int(parts[1])
            size = int(parts[2])
            if size < 0:
                raise ValueError
        except ValueError:
            conn.sendall(_wq_frame(_wq_answer(
                "malformed invocation header %r (expected: <function> <taskid> <length>)"
                % line[:200].decode("utf-8", "replace"), 500)))
            return
        data = stream.read(size)
        if len(data) < size:
            return
        conn.sendall(_wq_frame(_wq_invoke(function_name, task_id, data, home)))


def _wq_frame(data):
    return b"%d\n" % len(data) + data


def _wq_terminate(signum, frame):
    if _wq_child[0]:
        try:
            _wq_os.kill(_wq_child[0], _wq_signal.SIGKILL)
        except OSError:
            pass
    _wq_os._exit(128 + signum)


def _wq_serve(name):
    """Announce ``{"name", "port"}`` on stdout, then serve invocations forever."""
    listener = _wq_socket.socket(_wq_socket.AF_INET, _wq_socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
    except OSError as e:
        listener.close()
        print("coprocess: cannot listen on 127.0.0.1: %s" % e, file=_wq_sys.stderr)
        return 1
    hello = _wq_json.dumps({"name": str(name), "port": listener.getsockname()[1]})
    out = _wq_sys.stdout.buffer
    out.write(_wq_frame(hello.encode("utf-8")))
    out.flush()
    # Nobody reads stdout after the announcement: send what the functions print to stderr
    # instead, so that a full pipe cannot block the coprocess.
    try:
        _wq_os.dup2(2, 1)
    except OSError:
        pass
    _wq_signal.signal(_wq_signal.SIGTERM, _wq_terminate)
    home = _wq_os.getcwd()
    while True:
        conn, _ = listener.accept()
        try:
            _wq_serve_connection(conn, home)
        except OSError:
            pass
        finally:
            conn.close()
# ---- END COPROCESS CODE ----
