"""The function a DaskWQ task runs at a worker: a few tasks of a Dask graph.

It lives in a module of its own, importing nothing from ``work_queue``, because DaskWQ pickles
it by value: a worker whose Python has Dask (which the graph's tasks need anyway) but not this
package, a CCTools worker's ``python3`` for instance, can still run it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any


def run_subgraph(nodes: Mapping[Hashable, Any], inputs: Mapping[Hashable, Any],
                 outputs: list[Hashable]) -> dict[Hashable, Any]:
    """Compute ``nodes`` (in the order given, dependencies first) from ``inputs``, the values of
    the keys they need from other parts of the graph, and return the values of ``outputs``.

    Each value is dropped as soon as no later node needs it and it is not an output, so a chain
    of fused tasks holds no more than Dask's own scheduler would.
    """
    try:
        from dask._task_spec import GraphNode
    except ImportError:  # a Dask without task specs (before 2024.12): tuples, run by dask.core
        from dask.core import get

        values = get(dict(nodes), list(outputs), cache=dict(inputs))
        return dict(zip(outputs, values, strict=True))
    wanted = set(outputs)
    last_use: dict[Hashable, Hashable] = {}
    for key, node in nodes.items():
        for dep in node.dependencies if isinstance(node, GraphNode) else ():
            last_use[dep] = key
    cache = dict(inputs)
    for key, node in nodes.items():
        cache[key] = node(cache)
        for dep in node.dependencies:
            if last_use.get(dep) == key and dep not in wanted:
                cache.pop(dep, None)
    return {key: cache[key] for key in outputs}
