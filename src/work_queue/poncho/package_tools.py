"""``poncho_package_analyze`` and ``poncho_package_create`` (and the ``python_package_*`` names).

``analyze`` reads Python sources and writes the JSON environment specification of the
packages they import, as installed in the running environment::

    {"conda": {"channels": ["conda-forge"], "dependencies": ["python=3.11", "pip"]},
     "pip": ["cloudpickle==3.1.2", ...]}

``create`` builds a relocatable tarball from such a specification (or from an existing conda
environment) with ``conda``/``mamba`` and ``conda-pack``.  Without conda on ``PATH`` it builds
a ``venv`` of the running Python from a specification file instead, with pip (``venv_pack``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile


def imports_of(source: str, toplevel: bool = False, function: str | None = None) -> set[str]:
    """Top-level module names imported by ``source`` (optionally only at top level or in one
    function)."""
    tree = ast.parse(source)
    nodes: list[ast.AST]
    if function:
        nodes = [n for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function]
        if not nodes:
            raise ValueError(f"no function {function!r} in the source")
    elif toplevel:
        nodes = list(tree.body)
    else:
        nodes = [tree]
    names: set[str] = set()
    for root in nodes:
        for n in ([root] if toplevel and not function else ast.walk(root)):
            if isinstance(n, ast.Import):
                names.update(a.name.split(".")[0] for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                names.add(n.module.split(".")[0])
    return names


def specification(modules: set[str], mapping: dict[str, str], extra: list[str]) -> dict:
    """The environment spec for ``modules``; raises ImportError for unknown third-party ones."""
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    dists = importlib.metadata.packages_distributions()
    pip = set()
    for module in sorted(modules):
        if module in stdlib:
            continue
        names = [mapping[module]] if module in mapping else dists.get(module, [])
        if not names:
            raise ImportError(f"module {module!r} is not provided by any installed package; "
                              f"name its package with --pkg-mapping {module}=NAME")
        for name in names:
            pip.add(f"{name}=={importlib.metadata.version(name)}")
    for name in extra:
        try:
            pip.add(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pip.add(name)
    version = "%d.%d" % sys.version_info[:2]
    return {"conda": {"channels": ["conda-forge"], "dependencies": [f"python={version}", "pip"]},
            "pip": sorted(pip)}


def analyze_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="poncho_package_analyze",
                                description="Determine the packages Python code needs.")
    p.add_argument("source", nargs="+", help="Python sources, or - for stdin")
    p.add_argument("out", help="where to write the JSON specification, or - for stdout")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--toplevel", action="store_true")
    group.add_argument("--function")
    p.add_argument("--pkg-mapping", action="append", default=[], metavar="IMPORT=NAME")
    p.add_argument("--extra-pkg", action="append", default=[], metavar="PKG")
    args = p.parse_args(argv)
    mapping = dict(m.split("=", 1) for m in args.pkg_mapping)
    modules: set[str] = set()
    try:
        for path in args.source:
            text = sys.stdin.read() if path == "-" else open(path).read()
            modules |= imports_of(text, args.toplevel, args.function)
        spec = specification(modules, mapping, args.extra_pkg)
    except (OSError, SyntaxError, ValueError, ImportError) as e:
        print(f"poncho_package_analyze: {e}", file=sys.stderr)
        return 1
    text = json.dumps(spec, indent=4) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


def _create_with_venv(spec_path: str, output: str) -> int:
    """``poncho_package_create`` without conda: a venv of this Python, packages from PyPI."""
    from . import venv_pack

    if not os.path.isfile(spec_path):
        print(f"poncho_package_create: no conda or mamba on PATH, so {spec_path!r} must be a "
              "JSON specification file (conda environments cannot be packed without conda)",
              file=sys.stderr)
        return 1
    try:
        with open(spec_path) as f:
            spec = json.load(f)
        venv_pack.build(spec, output, log=lambda text: print("poncho_package_create:", text))
    except (OSError, json.JSONDecodeError, ValueError, RuntimeError,
            subprocess.CalledProcessError) as e:
        print(f"poncho_package_create: {spec_path}: {e}", file=sys.stderr)
        return 1
    return 0


def create_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="poncho_package_create",
                                description="Pack a conda environment into a tarball.")
    p.add_argument("spec", help="JSON specification, a conda environment name or directory")
    p.add_argument("output", help="the .tar.gz to write")
    p.add_argument("--conda-executable", default=None)
    p.add_argument("--no-micromamba", action="store_true")
    p.add_argument("--ignore-editable-packages", action="store_true")
    args = p.parse_args(argv)
    conda = args.conda_executable or shutil.which("mamba") or shutil.which("conda")
    if conda is None:
        return _create_with_venv(args.spec, args.output)
    prefix = None
    tmp = None
    try:
        if os.path.isfile(args.spec):
            with open(args.spec) as f:
                spec = json.load(f)
            tmp = tempfile.mkdtemp(prefix="poncho-create-")
            prefix = os.path.join(tmp, "env")
            conda_spec = spec.get("conda", {})
            deps = conda_spec.get("dependencies") or conda_spec.get("packages") or ["python"]
            channels = sum((["-c", c] for c in conda_spec.get("channels", [])), [])
            subprocess.run([conda, "create", "--yes", "--prefix", prefix, *channels,
                            *deps, "conda-pack"], check=True)
            if spec.get("pip"):
                subprocess.run([os.path.join(prefix, "bin", "python"), "-m", "pip", "install",
                                *spec["pip"]], check=True)
        elif os.path.isdir(args.spec):
            prefix = args.spec
        pack = [conda, "run", "--prefix", prefix] if prefix else [conda, "run", "-n", args.spec]
        extra = ["--ignore-editable-packages"] if args.ignore_editable_packages else []
        subprocess.run([*pack, "conda-pack", "--output", args.output, "--force", *extra],
                       check=True)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        print(f"poncho_package_create: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
