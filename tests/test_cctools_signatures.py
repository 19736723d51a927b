"""Every public name of CCTools' ``ndcctools.work_queue``, with its parameters' names, is ours.

``tests/data/cctools_signatures.json`` is a table of CCTools 7.17.1's Python module (made by
``tests/data/make_cctools_signatures.py``: names and parameter names only).  A program written
for CCTools calls things positionally and by keyword, so for each function and method:

- each of CCTools' positional parameters is ours too, at the same place, with the same name,
  and can be given by position or by keyword;
- where CCTools has a default we have one (a call that leaves it out works);
- where CCTools takes ``*args`` or ``**kwargs`` we do too;
- what we take beyond CCTools' parameters has a default (CCTools' calls never give it).

Properties must be readable attributes of a fresh object, classes must have CCTools' bases.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
from typing import Any

import pytest

import ndcctools.work_queue as nd
import work_queue as wq

TABLE = json.loads((pathlib.Path(__file__).parent / "data" / "cctools_signatures.json")
                   .read_text())
CLASSES = TABLE["classes"]
P = inspect.Parameter


def _differences(ours: inspect.Signature, theirs: list[str], what: str) -> list[str]:
    """What a call written for CCTools' ``theirs`` could do that ``ours`` refuses."""
    params = list(ours.parameters.values())
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    problems = []
    plain = [t for t in theirs if not t.startswith("*")]
    for i, spec in enumerate(plain):
        name = spec.rstrip("=")
        if i >= len(positional):
            problems.append(f"{what}: lacks parameter {name!r} (position {i})")
            continue
        p = positional[i]
        if p.name != name or p.kind is not P.POSITIONAL_OR_KEYWORD:
            problems.append(f"{what}: parameter {i} is {p.name!r}, CCTools calls it {name!r}")
        elif spec.endswith("=") and p.default is P.empty:
            problems.append(f"{what}: {name!r} needs a default, CCTools has one")
    for p in positional[len(plain):]:
        if p.default is P.empty:
            problems.append(f"{what}: extra parameter {p.name!r} needs a default")
    for p in params:
        if p.kind is P.KEYWORD_ONLY and p.default is P.empty:
            problems.append(f"{what}: keyword-only {p.name!r} needs a default")
    kinds = {p.kind for p in params}
    if any(t.startswith("*") and not t.startswith("**") for t in theirs) \
            and P.VAR_POSITIONAL not in kinds:
        problems.append(f"{what}: takes no *args, CCTools does")
    if any(t.startswith("**") for t in theirs) and P.VAR_KEYWORD not in kinds:
        problems.append(f"{what}: takes no **kwargs, CCTools does")
    return problems


def _method_signature(cls: type, name: str) -> inspect.Signature:
    sig = inspect.signature(getattr(cls, name))
    params = list(sig.parameters.values())
    if name == "__init__" or not isinstance(inspect.getattr_static(cls, name), staticmethod):
        params = params[1:]  # self
    return sig.replace(parameters=params)


@pytest.mark.parametrize("module", [wq, nd], ids=["work_queue", "ndcctools.work_queue"])
def test_module_names(module: Any) -> None:
    names = [*TABLE["functions"], *CLASSES, *TABLE["variables"], *TABLE["imported"]]
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module.__name__} lacks {missing}"


@pytest.mark.parametrize("name", sorted(TABLE["functions"]))
def test_function_parameters(name: str) -> None:
    assert _differences(inspect.signature(getattr(wq, name)), TABLE["functions"][name],
                        name) == []


@pytest.mark.parametrize("cls_name", sorted(CLASSES))
def test_class_bases(cls_name: str) -> None:
    cls = getattr(wq, cls_name)
    for base in CLASSES[cls_name]["bases"]:
        parent = getattr(wq, base, None) or getattr(__builtins__, base, None) or \
            __builtins__[base]  # type: ignore[index]
        assert issubclass(cls, parent), f"{cls_name} is not a {base}"


METHODS = sorted((c, m) for c in CLASSES for m in CLASSES[c]["methods"])


@pytest.mark.parametrize(("cls_name", "method"), METHODS, ids=[f"{c}.{m}" for c, m in METHODS])
def test_method_parameters(cls_name: str, method: str) -> None:
    cls = getattr(wq, cls_name)
    static = inspect.getattr_static(cls, method, None)
    assert static is not None, f"{cls_name} has no {method}"
    assert not isinstance(static, property), f"{cls_name}.{method} is a method in CCTools"
    theirs = CLASSES[cls_name]["methods"][method][1:]  # self
    assert _differences(_method_signature(cls, method), theirs, f"{cls_name}.{method}") == []


def _fresh(cls_name: str) -> Any:
    if cls_name == "WorkQueue":
        return wq.WorkQueue(port=0)
    if cls_name == "PythonTask":
        return wq.PythonTask(len, [])
    if cls_name == "RemoteTask":
        return wq.RemoteTask("f", "coprocess")
    return wq.Task("true")


PROPERTIES = sorted((c, p) for c in CLASSES for p in CLASSES[c]["properties"])


@pytest.mark.parametrize("cls_name", sorted({c for c, _ in PROPERTIES}))
def test_properties_are_readable(cls_name: str) -> None:
    obj = _fresh(cls_name)
    try:
        missing = []
        for c, name in PROPERTIES:
            if c == cls_name:
                try:
                    getattr(obj, name)
                except AttributeError:
                    missing.append(name)
        assert not missing, f"{cls_name} lacks {missing}"
    finally:
        if isinstance(obj, wq.WorkQueue):
            obj.close()


def test_factory_options() -> None:
    for attribute, names in CLASSES["Factory"]["attributes"].items():
        ours = getattr(wq.Factory, attribute)
        assert set(names) <= set(ours), f"Factory.{attribute} lacks {set(names) - set(ours)}"


def test_the_comparison_catches_what_a_cctools_call_would_trip_on() -> None:
    """The rule itself: each way a CCTools call can break is reported."""
    def f(self: Any, a: int, b: int = 0, *args: Any, c: int = 0, **kw: Any) -> None: ...

    sig = inspect.signature(f)
    sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    assert _differences(sig, ["a", "b=", "*args", "**kw"], "f") == []
    assert _differences(sig, ["a", "x="], "f") == ["f: parameter 1 is 'b', CCTools calls it 'x'"]
    assert _differences(sig, ["a", "b=", "d"], "f") == ["f: lacks parameter 'd' (position 2)"]

    def g(a: int, b: int, *, c: int) -> None: ...

    assert _differences(inspect.signature(g), ["a", "b=", "*args", "**kw"], "g") == [
        "g: 'b' needs a default, CCTools has one", "g: keyword-only 'c' needs a default",
        "g: takes no *args, CCTools does", "g: takes no **kwargs, CCTools does"]
    assert _differences(inspect.signature(g), ["a"], "g") == [
        "g: extra parameter 'b' needs a default", "g: keyword-only 'c' needs a default"]


def _python(code: str, env: dict[str, str]) -> list[str]:
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split()


def test_staging_directory_is_made_on_first_use_and_removed_at_exit(tmp_path: pathlib.Path):
    """As in CCTools: ``wq-py-staging-*`` under ``$CCTOOLS_TEMP``, gone when the program exits;
    unlike CCTools, a program that never reads it (the worker, the tools) makes none."""
    env = {"CCTOOLS_TEMP": str(tmp_path)}
    assert _python("import work_queue, ndcctools.work_queue; print(work_queue.cctools_tmpdir)",
                   env) == [str(tmp_path)]
    assert list(tmp_path.iterdir()) == []
    path, existed, same = _python(
        "import os, work_queue as wq, ndcctools.work_queue as nd\n"
        "d = wq.staging_directory\n"
        "open(os.path.join(d, 'f'), 'w').close()\n"
        "print(d, os.path.isdir(d), nd.staging_directory == d)", env)
    assert pathlib.Path(path).parent == tmp_path and pathlib.Path(path).name.startswith(
        "wq-py-staging-")
    assert existed == "True" and same == "True"
    assert not os.path.exists(path)  # removed at exit, with what was in it
    gone, again = _python(
        "import os, work_queue as wq\n"
        "d = wq.staging_directory\n"
        "wq.cleanup_staging_directory()\n"
        "print(not os.path.exists(d), os.path.isdir(wq.staging_directory))", env)
    assert gone == again == "True"
    assert list(tmp_path.iterdir()) == []
