"""Resource values (cores, memory, disk, gpus) and the allocation box of a task on a worker.

Units: cores and gpus are counts, memory and disk are MB (2**20 bytes).  An unset value is -1,
as in CCTools' ``rmsummary``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RESOURCE_NAMES = ("cores", "memory", "disk", "gpus")


_FIELDS = ("cores", "memory", "disk", "gpus", "wall_time", "end", "start")
#: Old names CCTools programs still use for a summary field.
OLD_NAMES = {"work_dir_num_files": "total_files"}


@dataclass(slots=True)
class Resources:
    """A set of resource values; -1 means "not specified".

    The fields the allocation works with are attributes; any other field of a resource
    summary (``cpu_time``, ``total_files``, ... limits the monitor enforces) is in ``extra``,
    sorted ``(name, value)`` pairs (hashable, so boxes can be memoised by it), read and written
    with ``get`` and ``set``.
    """

    cores: float = -1.0
    memory: float = -1.0
    disk: float = -1.0
    gpus: float = -1.0
    wall_time: float = -1.0
    end: float = -1.0
    start: float = -1.0
    extra: tuple[tuple[str, float], ...] = ()

    def copy(self) -> Resources:
        return Resources(self.cores, self.memory, self.disk, self.gpus, self.wall_time,
                         self.end, self.start, self.extra)

    def get(self, name: str) -> float:
        """The value of any summary field (-1 when unset)."""
        name = OLD_NAMES.get(name, name)
        if name in _FIELDS:
            value: float = getattr(self, name)
            return value
        return dict(self.extra).get(name, -1)

    def set(self, name: str, value: float) -> None:
        """Set any summary field (a negative value unsets it)."""
        name = OLD_NAMES.get(name, name)
        if name in _FIELDS:
            setattr(self, name, value)
            return
        values = dict(self.extra)
        if value >= 0:
            values[name] = value
        else:
            values.pop(name, None)
        self.extra = tuple(sorted(values.items()))

    def as_dict(self) -> dict[str, float]:
        """The specified (>= 0) values, by name."""
        out = {k: getattr(self, k) for k in _FIELDS if getattr(self, k) >= 0}
        out.update(self.extra)
        return out

    def merge_max(self, other: Resources) -> None:
        """Field-wise maximum with ``other`` (``rmsummary_merge_max``)."""
        for k in _FIELDS:
            v = getattr(other, k)
            if v > getattr(self, k):
                setattr(self, k, v)
        extra = getattr(other, "extra", ())  # a measured ResourceSummary has none
        if extra:
            for k, v in extra:
                if v > self.get(k):
                    self.set(k, v)

    def override_with(self, other: Resources) -> None:
        """Take every value ``other`` specifies (``rmsummary_merge_override``)."""
        for k in _FIELDS:
            v = getattr(other, k)
            if v >= 0:
                setattr(self, k, v)
        extra = getattr(other, "extra", ())
        if extra:
            for k, v in extra:
                self.set(k, v)

    # Attribute-style access used by programs written for the SWIG rmsummary object.
    def __getitem__(self, key: str) -> float:
        return self.get(key)


@dataclass(slots=True)
class WorkerResources:
    """What a worker reported: ``resource <name> <total> <smallest> <largest>`` lines."""

    cores: int = 0
    memory: int = 0
    disk: int = 0
    gpus: int = 0
    workers: int = 0
    largest: dict[str, int] = field(default_factory=dict)

    def largest_of(self, name: str) -> int:
        value: int = self.largest.get(name, getattr(self, name))
        return value


@dataclass(slots=True)
class BoxPolicy:
    """The ``tune()`` knobs that shape allocation boxes."""

    proportional: bool = True
    whole_tasks: bool = True
    submit_multiplier: float = 1.0


def allocation_box(limits: Resources, minimum: Resources | None, worker: WorkerResources,
                   policy: BoxPolicy) -> Resources:
    """The resources a task is given on a worker (CCTools ``task_worker_box_size``).

    Rules of the manual: no declaration means the whole worker; otherwise the worker is divided
    in proportion to the largest declared share, rounded so a whole number of such tasks fits;
    gpus default to 0, and cores default to 0 when only gpus are declared.
    """
    box = limits.copy()
    shape = (worker.largest_of("cores"), worker.largest_of("memory"),
             worker.largest_of("disk"), worker.largest_of("gpus"))
    if policy.proportional:
        whole = not _proportional_share(box, shape, policy)
    elif box.cores > 0 and box.memory > 0 and box.disk > 0:
        whole = False
        if box.gpus < 0:
            box.gpus = 0
    else:
        whole = True
    if box.cores < 1 and box.gpus < 1 and box.memory < 1 and box.disk < 1:
        whole = True
    if whole:
        _fill_with_worker(box, shape)
    else:
        for name in ("cores", "memory", "disk", "gpus"):
            if getattr(box, name) < 0:
                setattr(box, name, 0)
    if minimum is not None:
        box.merge_max(minimum)
    _as_floats(box)
    return box


def _as_floats(box: Resources) -> None:
    """Doubles, as CCTools' rmsummary holds them (``t.resources_allocated.cores`` is 1.0):
    done once per box, which is memoised per task kind and worker shape."""
    box.cores = float(box.cores)
    box.memory = float(box.memory)
    box.disk = float(box.disk)
    box.gpus = float(box.gpus)


def _proportional_share(box: Resources, shape: tuple[int, int, int, int],
                        policy: BoxPolicy) -> bool:
    """Scale ``box`` to its largest declared share of the worker; False when nothing is
    declared (or a share above the whole worker), which means the whole worker."""
    w_cores, w_memory, w_disk, w_gpus = shape
    p = -1.0
    for value, total in ((box.cores, w_cores), (box.memory, w_memory),
                         (box.disk, w_disk), (box.gpus, w_gpus)):
        if total > 0:
            p = max(p, value / total)
    if not 0 < p <= 1:
        return False
    if policy.whole_tasks:
        p = 1.0 / math.floor(1.0 / p)
    if box.cores < 0 and box.gpus > 0:
        box.cores = 0
    else:
        box.cores = max(1, box.cores, math.floor(w_cores * p))
    if box.gpus < 0:
        box.gpus = 0
    box.memory = max(1, box.memory, math.floor(w_memory * p))
    box.disk = max(1, box.disk, math.floor(w_disk * p / policy.submit_multiplier))
    return True


def _fill_with_worker(box: Resources, shape: tuple[int, int, int, int]) -> None:
    """The whole worker for what the box leaves unset (no cores when only gpus are asked)."""
    w_cores, w_memory, w_disk, _ = shape
    if box.cores <= 0:
        box.cores = 0 if box.gpus > 0 else w_cores
    if box.gpus <= 0:
        box.gpus = 0
    if box.memory <= 0:
        box.memory = w_memory
    if box.disk <= 0:
        box.disk = w_disk
