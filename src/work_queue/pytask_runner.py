"""Run one PythonTask: load the function and its arguments, call it, save the result.

This file is shipped to workers as the task's wrapper script and run there as
``python3 pytask_wrapper.py function.p args.p out.p [major.minor]``, so it must stay standalone
(standard library and cloudpickle only).  Our worker also imports :func:`run` and calls it in a
freshly forked child, which saves starting an interpreter for every task.

The result file holds the function's return value, or the exception it raised with the remote
traceback text in its ``remote_traceback`` attribute.
"""

import io
import sys
import traceback


def _load(source):
    """Unpickle from bytes, or from the file at a path."""
    import cloudpickle

    if isinstance(source, bytes):
        return cloudpickle.loads(source)
    with open(source, "rb") as f:
        return cloudpickle.load(f)


def _load_function(source):
    """Unpickle the function, then the source lines the manager appended after it, if any.

    The lines (``{filename: {line number: text}}``) go into :mod:`linecache`, so that the
    traceback of an exception shows the user's source lines although their file is not here.
    """
    import pickle

    import cloudpickle

    if not isinstance(source, bytes):
        with open(source, "rb") as f:
            source = f.read()
    stream = io.BytesIO(source)
    func = cloudpickle.load(stream)
    if stream.tell() < len(source):
        _remember_lines(pickle.load(stream))
    return func


def _remember_lines(sources):
    """Put the manager's copy of each file's lines where :mod:`traceback` looks for them."""
    import linecache

    for filename, numbered in sources.items():
        lines = ["\n"] * max(numbered, default=0)
        for number, text in numbered.items():
            lines[number - 1] = text
        # No modification time: linecache.checkcache leaves such entries alone.
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


def run(function, arguments, out):
    """Call the pickled function on the pickled ``(args, kwargs)``; pickle what happened.

    ``function`` and ``arguments`` are pickles (bytes) or paths to them; ``out`` is a path or
    a binary file object to write the result pickle to.
    """
    import cloudpickle

    func = _load_function(function)
    args, kwargs = _load(arguments)
    try:
        result = func(*args, **kwargs)
    except Exception as e:
        e.remote_traceback = traceback.format_exc()
        result = e
    try:
        data = cloudpickle.dumps(result)
    except Exception as e:  # an unpicklable result becomes an error the manager can read
        error = RuntimeError(f"the result of the function could not be pickled: {e!r}")
        error.remote_traceback = traceback.format_exc()
        data = cloudpickle.dumps(error)
    if isinstance(out, str):
        with open(out, "wb") as f:
            f.write(data)
    else:
        out.write(data)
        out.flush()
    text = repr(result) if isinstance(result, Exception) else str(result)
    print(text[:4096])


def main(argv, function=None, arguments=None, out=None):
    """``argv`` as the wrapper gets it; the keyword arguments override its file names."""
    if len(argv) >= 5:
        want = argv[4]
        have = "%d.%d" % sys.version_info[:2]
        if want != have:
            print(f"PythonTask error: the manager runs Python {want} but this worker runs "
                  f"Python {have}; pickled functions need the same version.")
            return 3
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        print("PythonTask error: the Python module 'cloudpickle' is not installed on this "
              f"worker ({sys.executable}); install it to run Python tasks.")
        return 2
    run(argv[1] if function is None else function, argv[2] if arguments is None else arguments,
        argv[3] if out is None else out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
