"""The tasks of a Dask graph, and the groups of them DaskWQ sends to workers as one task each.

Dask hands a scheduler's ``get(dsk, keys)`` either a plain mapping (a legacy dict of tuples, a
HighLevelGraph) or, since Dask 2025, a graph *expression*; ``__dask_graph__()`` turns the latter
into a mapping.  Dask's own ``convert_legacy_graph`` then gives every task as a ``GraphNode``
that knows its dependencies and computes itself from a mapping of their values, which is all a
worker needs.  A Dask without ``dask._task_spec`` keeps its tuples and ``dask.core`` finds the
dependencies.

Sending each Dask task on its own would cost a Work Queue round trip (and a pickling of its
inputs) per edge.  Linear chains (a task whose only dependency feeds nothing else: a chunk's
load, map and partial sum) are fused into one Work Queue task instead, which is what Dask's
local schedulers gain from their own fusion; ``low_memory_mode`` turns that off.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

Key = Hashable


def graph_tasks(dsk: Any) -> dict[Key, Any]:
    """The tasks of ``dsk`` (mapping or expression) as a dict, as Dask's task specs if it can."""
    if hasattr(dsk, "__dask_graph__"):
        dsk = dsk.__dask_graph__()
    tasks = dict(dsk)
    try:
        from dask._task_spec import convert_legacy_graph
    except ImportError:
        return tasks
    return dict(convert_legacy_graph(tasks))


def task_dependencies(tasks: Mapping[Key, Any]) -> dict[Key, set[Key]]:
    """Every task's dependencies; a dependency the graph lacks is the caller's error."""
    try:
        from dask._task_spec import GraphNode

        node_type: type | None = GraphNode
    except ImportError:
        node_type = None
    from dask.core import get_dependencies

    deps: dict[Key, set[Key]] = {}
    for key, node in tasks.items():
        if node_type is not None and isinstance(node, node_type):
            found = set(getattr(node, "dependencies"))  # noqa: B009 (a GraphNode)
        else:
            found = set(get_dependencies(tasks, key))  # type: ignore[call-overload]
        missing = [d for d in found if d not in tasks]
        if missing:
            raise KeyError(f"task {key!r} depends on {missing[0]!r}, which is not in the graph")
        deps[key] = found
    return deps


def flatten_keys(keys: Any) -> list[Key]:
    """The keys of a (possibly nested) list of keys; a tuple is a key, not a list of them."""
    if not isinstance(keys, list):
        return [keys]
    flat: list[Key] = []
    for k in keys:
        flat.extend(flatten_keys(k))
    return flat


def pack_results(keys: Any, values: Mapping[Key, Any]) -> Any:
    """``keys``' shape with values for keys (lists become tuples), as Dask's schedulers return."""
    if isinstance(keys, list):
        return tuple(pack_results(k, values) for k in keys)
    return values[keys]


@dataclass
class Group:
    """Tasks of the graph that run together, in one Work Queue task (or on the manager)."""

    id: int
    keys: list[Key] = field(default_factory=list)
    #: keys of other groups whose values this one needs
    inputs: set[Key] = field(default_factory=set)
    #: keys whose values leave the group: needed by other groups or asked for by the caller
    outputs: list[Key] = field(default_factory=list)
    #: groups that need one of this group's outputs
    dependents: set[int] = field(default_factory=set)
    #: computed on the manager: data and aliases only, no function to run
    local: bool = False

    @property
    def name(self) -> str:
        """A category name: the Dask name of the group's last task (``sum``, ``getitem``...)."""
        return _key_name(self.keys[-1])


def _key_name(key: Key) -> str:
    try:
        from dask.utils import key_split

        name = str(key_split(key))
    except Exception:
        name = str(key)
    return name.replace(" ", "_") or "dask"


def _is_trivial(node: Any) -> bool:
    try:
        from dask._task_spec import Alias, DataNode
    except ImportError:
        return False
    return isinstance(node, DataNode | Alias)


def _topological(deps: Mapping[Key, set[Key]], targets: list[Key]) -> list[Key]:
    """The keys ``targets`` need (themselves included), each after its dependencies."""
    order: list[Key] = []
    seen: set[Key] = set()
    for target in targets:
        if target in seen:
            continue
        stack: list[tuple[Key, bool]] = [(target, False)]
        while stack:
            key, expanded = stack.pop()
            if expanded:
                order.append(key)
                continue
            if key in seen:
                continue
            seen.add(key)
            stack.append((key, True))
            stack.extend((d, False) for d in deps[key] if d not in seen)
    return order


def plan_groups(tasks: Mapping[Key, Any], targets: list[Key], *,
                fuse: bool = True) -> dict[int, Group]:
    """Split the part of the graph ``targets`` need into groups, fusing linear chains."""
    for target in targets:
        if target not in tasks:
            raise KeyError(f"{target!r} is not a key in the graph")
    deps = task_dependencies(tasks)
    order = _topological(deps, targets)
    dependents: dict[Key, set[Key]] = {k: set() for k in order}
    for key in order:
        for d in deps[key]:
            dependents[d].add(key)
    wanted = set(targets)
    group_of: dict[Key, int] = {}
    groups: dict[int, Group] = {}
    for key in order:
        parents = deps[key]
        parent = next(iter(parents)) if len(parents) == 1 else None
        if fuse and parent is not None and len(dependents[parent]) == 1:
            group = groups[group_of[parent]]
            group.local = group.local and _is_trivial(tasks[key])
        else:
            group = Group(len(groups), local=_is_trivial(tasks[key]))
            groups[group.id] = group
        group.keys.append(key)
        group_of[key] = group.id
    for key in order:
        group = groups[group_of[key]]
        outside = {group_of[d] for d in dependents[key]} - {group.id}
        if outside or key in wanted:
            group.outputs.append(key)
        for g in outside:
            groups[g].inputs.add(key)
            group.dependents.add(g)
    return groups
