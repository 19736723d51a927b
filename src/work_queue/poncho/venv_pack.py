"""Build a packed environment from a poncho JSON specification without conda.

Used by ``poncho_package_create`` when neither conda nor mamba is installed: the environment
is a standard-library ``venv`` of the Python running the tool, the packages are installed
with pip from PyPI, and the tarball holds the venv's tree with a ``bin/conda-unpack`` that
rewrites the build location in ``bin/`` (script shebangs, activation scripts) to wherever it
is unpacked, as conda-pack's does.  ``poncho_package_run`` runs that script once after
unpacking, then puts ``bin`` first on ``PATH`` and sources ``bin/activate``.

Unlike a conda-pack tarball, the interpreter itself is not inside: ``bin/python`` points to
the base Python this tool ran with, which must exist at the same path where the environment
is used (the same host, or hosts sharing that installation).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv

#: Conda packages with no PyPI counterpart that a venv does not need (tools of conda itself).
CONDA_ONLY_TOOLS = {"conda", "conda-pack", "mamba", "micromamba", "conda-build"}

UNPACK_SCRIPT = '''#!/bin/sh
"exec" "${0%/*}/python3" "$0" "$@"
"""Rewrite the old location of this environment to the new one in bin/ (made by
poncho_package_create without conda; run once after unpacking, like conda-pack's)."""
import os
import sys

bin_dir = os.path.dirname(os.path.abspath(__file__))
prefix = os.path.dirname(bin_dir)
record = os.path.join(prefix, ".poncho-venv-prefix")
with open(record) as f:
    old = f.read().strip()
if old != prefix:
    paths = [os.path.join(bin_dir, n) for n in os.listdir(bin_dir)]
    paths.append(os.path.join(prefix, "pyvenv.cfg"))
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if old.encode() in data and b"\\0" not in data:
            with open(path, "wb") as f:
                f.write(data.replace(old.encode(), prefix.encode()))
    with open(record, "w") as f:
        f.write(prefix + "\\n")
'''


class SpecError(ValueError):
    """The specification cannot be built into a venv."""


def _conda_to_pip(dep: str) -> tuple[str, str]:
    """``(name, pip requirement)`` for a conda match spec such as ``conda-forge::numpy=1.26``."""
    dep = dep.split("::", 1)[-1].strip()
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep)
    if not m:
        raise SpecError(f"cannot read the conda dependency {dep!r}")
    name, version = m.group(1), m.group(2).strip()
    if not version:
        return name, name
    if version[0].isdigit():  # "numpy 1.26" or "numpy 1.26.*"
        version = "=" + version
    if version.startswith("=") and not version.startswith("=="):
        v = version[1:].split("=")[0]  # "=1.26=build" -> "1.26"
        version = "==" + v if v.endswith("*") or v.count(".") >= 2 else f"=={v}.*"
        version = version.replace(".*.*", ".*")
    return name, name + version


def _version_ok(requirement: str) -> bool:
    """Whether the running Python satisfies ``requirement`` (``==3.11.*``, ``>=3.9``...)."""
    have = sys.version_info[:3]
    for clause in requirement.split(","):
        m = re.fullmatch(r"\s*(==|!=|>=|<=|>|<|~=)\s*([0-9.]+)(\.\*)?\s*", clause)
        if not m:
            raise SpecError(f"cannot read the Python version {requirement!r}")
        op, text, star = m.groups()
        want = tuple(int(x) for x in text.split("."))
        mine = have[:len(want)] if (star or op in ("==", "!=")) else have
        ok = {"==": mine == want, "!=": mine != want, ">=": mine >= want, "<=": mine <= want,
              ">": mine > want, "<": mine < want, "~=": mine >= want}[op]
        if not ok:
            return False
    return True


def requirements(spec: dict) -> tuple[list[str], list[str]]:
    """``(pip requirements from the conda part, pip requirements of the pip part)``.

    Raises :class:`SpecError` if the spec pins a Python other than the running one.
    """
    if not isinstance(spec, dict):
        raise SpecError("the specification must be a JSON object")
    conda = spec.get("conda", {})
    if isinstance(conda, list):  # the oldest format: a plain list of conda packages
        conda = {"dependencies": conda}
    deps = conda.get("dependencies") or conda.get("packages") or []
    pip = list(spec.get("pip", []))
    from_conda = []
    for dep in deps:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
            continue
        name, req = _conda_to_pip(str(dep))
        if name.lower() == "python":
            if req != name and not _version_ok(req[len(name):]):
                mine = "%d.%d.%d" % sys.version_info[:3]
                raise SpecError(f"the specification asks for {dep!r} but, without conda, the "
                                f"environment can only use the running Python {mine}")
        elif name.lower() not in CONDA_ONLY_TOOLS:
            from_conda.append(req)
    return from_conda, pip


def _host_pip() -> bool:
    """Whether this Python's own pip can install into another environment (pip >= 22.3)."""
    try:
        import pip
    except ImportError:
        return False
    m = re.match(r"(\d+)\.(\d+)", pip.__version__)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (22, 3)


def _pip(python: str) -> list[str]:
    """The pip command that installs into the environment whose interpreter is ``python``."""
    if _host_pip():
        return [sys.executable, "-m", "pip", "--python", python]
    return [python, "-m", "pip"]


def _not_on_pypi(pip: list[str], reqs: list[str]) -> list[str]:
    """Those of ``reqs`` pip cannot find an installable distribution for."""
    missing = []
    for req in reqs:
        done = subprocess.run([*pip, "install", "--dry-run", "--no-deps", "--quiet",
                               "--disable-pip-version-check", req], capture_output=True)
        if done.returncode != 0:
            missing.append(req)
    return missing


def build(spec: dict, output: str, log=print) -> None:
    """Build the environment ``spec`` describes into the tarball ``output``.

    Raises :class:`SpecError` for a spec this cannot honour, ``RuntimeError`` if pip fails.
    """
    from_conda, pip_reqs = requirements(spec)
    tmp = tempfile.mkdtemp(prefix="poncho-venv-")
    try:
        prefix = os.path.join(tmp, "env")
        with_pip = "pip" in [r.lower() for r in from_conda]
        from_conda = [r for r in from_conda if r.lower() != "pip"]
        if not _host_pip():
            with_pip = True  # the environment's own pip installs the packages
        log(f"creating a venv of Python {sys.version.split()[0]} (no conda found)")
        venv.EnvBuilder(with_pip=with_pip, symlinks=True).create(prefix)
        python = os.path.join(prefix, "bin", "python3")
        pip = _pip(python)
        wanted = from_conda + pip_reqs
        if wanted:
            log("installing with pip: " + " ".join(wanted))
            done = subprocess.run([*pip, "install", "--disable-pip-version-check", "--quiet",
                                   *wanted], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            if done.returncode != 0:
                missing = _not_on_pypi(pip, from_conda)
                if missing:
                    raise SpecError("these conda dependencies cannot be installed from PyPI "
                                    "(install conda to build this environment): "
                                    + ", ".join(missing))
                last = [x for x in done.stdout.splitlines() if x.strip()][-3:]
                raise RuntimeError("pip install failed: " + " | ".join(last))
        unpack = os.path.join(prefix, "bin", "conda-unpack")
        with open(unpack, "w") as f:
            f.write(UNPACK_SCRIPT)
        os.chmod(unpack, 0o755)
        with open(os.path.join(prefix, ".poncho-venv-prefix"), "w") as f:
            f.write(prefix + "\n")
        partial = output + ".partial"
        try:
            with tarfile.open(partial, "w:gz") as tar:
                for entry in sorted(os.listdir(prefix)):
                    tar.add(os.path.join(prefix, entry), arcname=entry)
            os.replace(partial, output)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
        log(f"wrote {output} ({os.path.getsize(output)} bytes)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
