"""Writes ``cctools_signatures.json``: the public names of CCTools' Python module, and the
parameter names of each of its functions and methods (no code, no defaults' values).

``tests/test_cctools_signatures.py`` checks ours against that table, so a program written
for CCTools that calls something by a name or keyword CCTools has fails here only if the
table says so.  Regenerate it (by hand, once per CCTools release we follow) with::

    git -C /work/.mirror/cooperative-computing-lab+cctools/repo show \\
        release/7.17.1:work_queue/src/bindings/python3/ndcctools/work_queue.py > /tmp/wq.py
    python tests/data/make_cctools_signatures.py /tmp/wq.py 7.17.1 > \\
        tests/data/cctools_signatures.json

A parameter is written ``name``, ``name=`` when it has a default, ``*name`` or ``**name``.
"""

from __future__ import annotations

import ast
import json
import sys
from typing import Any


def _parameters(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    out = [p.arg + ("=" if i >= first_default else "") for i, p in enumerate(positional)]
    if a.vararg:
        out.append("*" + a.vararg.arg)
    out += [p.arg + ("=" if d is not None else "")
            for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        out.append("**" + a.kwarg.arg)
    return out


def _public(name: str) -> bool:
    return not name.startswith("_") or name in ("__init__", "__enter__", "__exit__")


def _class_table(cls: ast.ClassDef) -> dict[str, Any]:
    methods: dict[str, list[str]] = {}
    properties: list[str] = []
    attributes: dict[str, Any] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and _public(node.name):
            decorators = {getattr(d, "id", getattr(d, "attr", "")) for d in node.decorator_list}
            if "property" in decorators:
                properties.append(node.name)
            elif "setter" not in decorators:
                methods[node.name] = _parameters(node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if not isinstance(target, ast.Name):
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in methods:
                    methods[target.id] = methods[node.value.id]  # an alias
                else:
                    # the Factory's option lists are part of its interface (attribute names)
                    try:
                        attributes[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        attributes[target.id] = None
    bases = [getattr(b, "id", "") for b in cls.bases]
    return {"bases": [b for b in bases if b != "object"], "methods": methods,
            "properties": sorted(properties), "attributes": attributes}


def table(source: str, release: str) -> dict[str, Any]:
    tree = ast.parse(source)
    functions: dict[str, list[str]] = {}
    classes: dict[str, Any] = {}
    variables: list[str] = []
    imported: list[str] = []
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop(0)
        if isinstance(node, ast.If):  # staging_directory is made in both branches of an if
            nodes[:0] = node.body + node.orelse
        elif isinstance(node, ast.FunctionDef) and _public(node.name):
            functions[node.name] = _parameters(node)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = _class_table(node)
        elif isinstance(node, ast.Assign):
            variables += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level:
            imported += [a.asname or a.name for a in node.names if a.name != "*"]
    return {"release": release, "functions": functions, "classes": classes,
            "variables": sorted(set(variables)), "imported": sorted(imported)}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(table(f.read(), sys.argv[2]), indent=1, sort_keys=True))
