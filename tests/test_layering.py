"""The layers hold by test: pure protocol and cores, shells that only carry out, no import
circles, nothing reaching back up to the package root.

Dependencies point one way: cli -> shells (manager, worker, catalog, factory, ...) -> core ->
protocol. These checks read the source with ``ast``; they import nothing."""

from __future__ import annotations

import ast
import pathlib

import work_queue as wq

SRC = pathlib.Path(wq.__file__).parent
PACKAGE = "work_queue"

#: What a pure layer may not import: the network, processes, threads and clocks.
IMPURE = {"socket", "selectors", "select", "ssl", "subprocess", "multiprocessing", "threading",
          "concurrent", "asyncio", "signal", "time"}
SHELLS = {"manager", "worker", "cli", "catalog", "factory", "monitor", "tools", "poncho",
          "_testing"}


def _modules() -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``: names for annotations, never
    imported when the program runs, so they make no circle."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for n in ast.walk(node)}
    return out


def _imports(name: str, path: pathlib.Path, runtime_only: bool = False,
             ) -> list[tuple[str, int]]:
    """(imported module, line) for every import in a module, relative ones resolved, and
    ``from pkg import sub`` counted as an import of ``pkg.sub`` when ``sub`` is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    tree = ast.parse(path.read_text())
    skip = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
            out += [(s, node.lineno) for s in subs] or [(module, node.lineno)]
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_protocol_and_core_do_no_io():
    for name, path in MODULES.items():
        if _layer(name) not in ("protocol", "core"):
            continue
        for imported, line in _imports(name, path):
            top = imported.split(".")[0]
            assert top not in IMPURE, f"{name}:{line} imports {imported}"
            if top == PACKAGE:
                assert _layer(imported) not in SHELLS, f"{name}:{line} imports {imported}"


def test_protocol_does_not_import_the_cores():
    for name, path in MODULES.items():
        if _layer(name) == "protocol":
            for imported, line in _imports(name, path):
                assert _layer(imported) != "core" or not imported.startswith(PACKAGE), \
                    f"{name}:{line} imports {imported}"


def test_nothing_imports_the_package_root():
    """The root re-exports the API (it imports the manager); a part that imported it back
    would load the manager to get a constant, and make a circle."""
    for name, path in MODULES.items():
        if name == PACKAGE:
            continue
        for imported, line in _imports(name, path):
            assert imported != PACKAGE, f"{name}:{line} imports the package root"


def test_no_import_circles():
    graph = {name: {i for i, _ in _imports(name, path, runtime_only=True)
                    if i in MODULES and i != PACKAGE}
             for name, path in MODULES.items()}
    # a package's __init__ re-exports its modules; importing a module runs its packages'
    # __init__ first, which is not a dependency of the module's code
    for name in graph:
        graph[name] = {i for i in graph[name] if not name.startswith(i + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _attribute_chain(node: ast.expr) -> tuple[str, list[str]]:
    """The base name and the attributes of an assignment target, outermost first:
    ``self._state.counters.x`` -> ("self", ["x", "counters", "_state"])."""
    names = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else "", names)


#: Fields only a core changes: anything reached through a shell's core (``_state``), the
#: core's counters, and the state of a task (a shell learns it from the core, never sets it).
CORE_OWNED = {"_state", "counters"}


def test_shells_do_not_write_core_fields():
    for name, path in MODULES.items():
        if _layer(name) not in ("manager", "worker"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
            for target in targets:
                base, chain = _attribute_chain(target)
                if base == "self" and chain == ["_state"]:
                    continue  # a shell keeps a reference to its core: self._state = ...
                through = set(chain[1:]) | ({base} if chain else set())
                bad = CORE_OWNED & through or (chain[:1] == ["state"] and base != "self")
                assert not bad, f"{name}:{node.lineno} writes {base}.{'.'.join(reversed(chain))}"


def test_the_monitors_copy_of_the_resource_table_is_the_cores():
    # The monitor ships on its own to CCTools workers (no work_queue imports), so it keeps a
    # copy of the table; the two must not drift apart.
    from work_queue.core import resource_fields
    from work_queue.monitor import summary

    assert summary.RESOURCE_FIELDS == resource_fields.RESOURCE_FIELDS


def test_no_source_file_is_over_800_lines():
    # A module that long holds more than one responsibility (issue 16); split it by one.
    long = {str(p.relative_to(SRC.parent)): n for p in SRC.parent.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 800}
    assert not long, long
