#!/usr/bin/env python3
"""poncho_package_run: run a command inside a packed (conda-pack style) environment.

    poncho_package_run -e ENV.tar.gz [-u DIR] [-w SECS] [-d] COMMAND [ARGS...]

The tarball is unpacked once into DIR (under a lock, so tasks sharing a worker wait for the
first one instead of unpacking again), ``bin/conda-unpack`` is run if the package has it, and
COMMAND runs with the environment's ``bin`` first on ``PATH`` (and ``bin/activate`` sourced
when present).  ``-e`` may also name an already unpacked directory.

This file is sent to workers as a task input, so it uses the standard library only.
"""

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

MARKER = ".poncho-unpacked"


def log(enabled, *words):
    if enabled:
        print("poncho_package_run(%d):" % os.getpid(), *words, file=sys.stderr)


def unpack(env, target, wait, debug):
    """Unpack ``env`` into ``target`` unless a previous run did; returns the directory."""
    os.makedirs(os.path.dirname(os.path.abspath(target)) or ".", exist_ok=True)
    lock_path = target + ".lock"
    with open(lock_path, "a") as lock:
        deadline = time.time() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise SystemExit(f"poncho_package_run: waited {wait} s for the lock on "
                                     f"{target}") from None
                time.sleep(0.1)
        if os.path.exists(os.path.join(target, MARKER)):
            log(debug, "already unpacked in", target)
            return target
        log(debug, "unpacking", env, "into", target)
        partial = tempfile.mkdtemp(prefix=os.path.basename(target) + ".", dir=os.path.dirname(
            os.path.abspath(target)))
        try:
            with tarfile.open(env) as tar:
                tar.extractall(partial, filter="tar")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(partial, target)
            unpacker = os.path.join(target, "bin", "conda-unpack")
            if os.access(unpacker, os.X_OK):
                done = subprocess.run([unpacker], cwd=target)
                if done.returncode != 0:
                    raise SystemExit(f"poncho_package_run: {unpacker} failed with status "
                                     f"{done.returncode}")
            with open(os.path.join(target, MARKER), "w") as f:
                f.write("%d\n" % time.time())
        except (OSError, tarfile.TarError) as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise SystemExit(f"poncho_package_run: cannot unpack {env}: {e}") from None
    return target


def main(argv=None):
    p = argparse.ArgumentParser(prog="poncho_package_run",
                                description="Run a command inside a packed environment.")
    p.add_argument("-e", "--environment", required=True,
                   help="environment as a tar file or a directory")
    p.add_argument("-u", "--unpack-to", help="directory to unpack into (default: temporary)")
    p.add_argument("-w", "--wait-for-lock", type=float, default=300,
                   help="seconds to wait for another task unpacking the same environment")
    p.add_argument("-d", "--debug", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = args.environment
    if os.path.isdir(env):
        target = env
    elif os.path.isfile(env):
        target = args.unpack_to or tempfile.mkdtemp(prefix="poncho-env-")
        target = unpack(env, target, args.wait_for_lock, args.debug)
    else:
        p.error(f"environment {env!r} does not exist")
    if not command:
        log(args.debug, "no command given; environment ready in", target)
        return 0
    target = os.path.abspath(target)
    bin_dir = os.path.join(target, "bin")
    os.environ.pop("PYTHONPATH", None)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ["CONDA_PREFIX"] = target
    os.environ["VIRTUAL_ENV"] = target
    log(args.debug, "executing", command)
    activate = os.path.join(bin_dir, "activate")
    if os.path.isfile(activate):
        os.execv("/bin/sh", ["/bin/sh", "-c", '. "$0" >/dev/null 2>&1; exec "$@"', activate,
                             *command])
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"poncho_package_run: cannot run {command[0]!r}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
