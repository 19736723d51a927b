"""Run one PythonTask: load the function and its arguments, call it, save the result.

This file is shipped to workers as the task's wrapper script and run there as
``python3 pytask_wrapper.py function.p args.p out.p [major.minor]``, so it must stay standalone
(standard library and cloudpickle only).  Our worker also imports :func:`run` and calls it in a
freshly forked child, which saves starting an interpreter for every task.

The result file holds the function's return value, or the exception it raised with the remote
traceback text in its ``remote_traceback`` attribute.
"""

import sys
import traceback


def _load(path):
    import cloudpickle

    with open(path, "rb") as f:
        return cloudpickle.load(f)


def run(function_path, args_path, out_path):
    """Call the pickled function on the pickled ``(args, kwargs)``; pickle what happened."""
    import cloudpickle

    func = _load(function_path)
    args, kwargs = _load(args_path)
    try:
        result = func(*args, **kwargs)
    except Exception as e:
        e.remote_traceback = traceback.format_exc()
        result = e
    try:
        with open(out_path, "wb") as f:
            cloudpickle.dump(result, f)
    except Exception as e:  # an unpicklable result becomes an error the manager can read
        error = RuntimeError(f"the result of the function could not be pickled: {e!r}")
        error.remote_traceback = traceback.format_exc()
        with open(out_path, "wb") as f:
            cloudpickle.dump(error, f)
    text = repr(result) if isinstance(result, Exception) else str(result)
    print(text[:4096])


def main(argv):
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
    run(argv[1], argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
