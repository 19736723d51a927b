"""Task categories and automatic resource labelling (CCTools ``dttools/src/category.c``).

A category groups tasks that look alike.  It holds the user's maximum and minimum allocations,
the allocation mode and, once tasks report measured resources (monitoring), the statistics
from which it computes a *first allocation*: the size it gives a new task so that more of them
fit on a worker.  What the manual calls "what work queue does behind the scenes":

1. While there are few measurements, tasks run on whole workers (or the category maximum).
2. Every completion adds its measured cores, memory, disk and gpus to a histogram.
3. Every ``steady_n_tasks`` (25) completions the first allocation is recomputed: in MAX mode
   the largest value seen, rounded up; in MIN_WASTE and MAX_THROUGHPUT the histogram value
   that minimises waste or maximises throughput.
4. A task that exhausts its first allocation is retried with the maximum (whole worker or
   the category maximum); only if it exceeds a maximum the user gave is it returned as
   RESOURCE_EXHAUSTION.
5. A measurement above everything seen so far makes the statistics obsolete: back to 1.

The bucketing modes (GREEDY, EXHAUSTIVE, DET_GREEDY, DET_EXHAUSTIVE, QUANTIZED) size each task
instead with the category's :class:`~.bucketing.BucketingManager`: a default guess for the first
ten tasks, then a bucket learned from the successful tasks' measurements; a task that exhausts
its bucket is retried with a larger one (see :mod:`.bucketing`).

Everything here is pure (no clock, no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..constants import (
    WORK_QUEUE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING,
    WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING,
    WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING,
    WORK_QUEUE_ALLOCATION_MODE_FIXED,
    WORK_QUEUE_ALLOCATION_MODE_GREEDY_BUCKETING,
    WORK_QUEUE_ALLOCATION_MODE_MAX,
    WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT,
    WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE,
    WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING,
)
from . import bucketing
from .resource_fields import RESOURCE_NAMES
from .resources import Resources
from .stats import ManagerCounters

#: ``category_allocation_t``: the label a task is tried with.
ALLOCATION_FIRST = 0
ALLOCATION_MAX = 1
ALLOCATION_ERROR = 2

#: Resources that automatic labelling sizes, in CCTools' order.
LABELLED = ("cores", "gpus", "memory", "disk")
BUCKET_SIZES = {"cores": 1.0, "gpus": 1.0, "memory": 250.0, "disk": 250.0}

MODES = {
    WORK_QUEUE_ALLOCATION_MODE_FIXED: "FIXED",
    WORK_QUEUE_ALLOCATION_MODE_MAX: "MAX",
    WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE: "MIN_WASTE",
    WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT: "MAX_THROUGHPUT",
    WORK_QUEUE_ALLOCATION_MODE_GREEDY_BUCKETING: "GREEDY_BUCKETING",
    WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING: "EXHAUSTIVE_BUCKETING",
    WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING: "DET_GREEDY_BUCKETING",
    WORK_QUEUE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING: "DET_EXHAUSTIVE_BUCKETING",
    WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING: "QUANTIZED_BUCKETING",
}

#: Allocation mode -> bucketing algorithm (``category_specify_allocation_mode``).
BUCKETING = {
    WORK_QUEUE_ALLOCATION_MODE_GREEDY_BUCKETING: bucketing.GREEDY,
    WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING: bucketing.EXHAUSTIVE,
    WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING: bucketing.DET_GREEDY,
    WORK_QUEUE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING: bucketing.DET_EXHAUSTIVE,
    WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING: bucketing.QUANTIZED,
}

_STEADY_DEFAULT = 25


class Histogram:
    """Counts of values in buckets of ``size``, each with the wall time accumulated there."""

    def __init__(self, size: float) -> None:
        self.size = size
        self.buckets: dict[float, list[float]] = {}  # bucket end -> [count, seconds]
        self.max_value = 0.0
        self.count = 0

    def round_up(self, value: float) -> float:
        """The end of the bucket ``value`` falls in (a multiple of the bucket size)."""
        b = math.ceil(abs(value) / self.size) * self.size
        return b if value >= 0 else -b

    def insert(self, value: float, wall_time_s: float) -> None:
        key = self.round_up(value)
        slot = self.buckets.setdefault(key, [0, 0.0])
        slot[0] += 1
        slot[1] += wall_time_s
        if value > self.max_value or self.count < 1:
            self.max_value = value
        self.count += 1

    def clear(self) -> None:
        self.buckets.clear()
        self.max_value = 0.0
        self.count = 0

    def _accumulated(self) -> tuple[list[float], float, list[float], list[float]]:
        keys = sorted(self.buckets)
        counts = [self.buckets[k][0] for k in keys]
        times = [self.buckets[k][1] for k in keys]
        n = len(keys)
        counts_accum: list[float] = []
        total = 0.0
        for c in counts:
            total += c
            counts_accum.append(total)
        times_accum = [0.0] * n
        for i in range(n - 2, -1, -1):
            times_accum[i] = times_accum[i + 1] + times[i + 1] / total
        tau_mean = times_accum[0] + times[0] / total
        return keys, tau_mean, counts_accum, times_accum

    def min_waste(self, top: float) -> float:
        """The first allocation that minimises expected waste (``..._min_waste``)."""
        if top < 0 or not self.buckets:
            return -1
        keys, tau_mean, _counts, times_accum = self._accumulated()
        best, best_e = top, math.inf
        for i, a in enumerate(keys):
            if a < 1:
                continue
            e = a * tau_mean + top * times_accum[i]
            if e < best_e:
                best_e, best = e, a
        return self.round_up(min(best, top))

    def max_throughput(self, top: float) -> float:
        """The first allocation that maximises expected throughput (``..._max_throughput``)."""
        if top < 0 or not self.buckets:
            return -1
        keys, tau_mean, counts_accum, times_accum = self._accumulated()
        best, best_t = top, 0.0
        total = counts_accum[-1]
        for i, a in enumerate(keys):
            if a < 1:
                continue
            before = counts_accum[i]
            t = ((before * top) / a + (total - before)) / (tau_mean + times_accum[i])
            if t > best_t:
                best_t, best = t, a
        return self.round_up(min(best, top))

    def max_seen(self, top: float, max_worker: float, max_explicit: float) -> float:
        """The largest value seen plus a third of a bucket, rounded up, within the limits."""
        if top < 0 or not self.buckets:
            return -1
        rounded = self.round_up(self.max_value + math.floor(self.size / 3))
        caps = [v for v in (max_explicit, max_worker) if v > -1]
        return min(rounded, min(caps)) if caps else rounded


@dataclass
class Category:
    """One category's limits, mode and statistics."""

    name: str
    mode: int = WORK_QUEUE_ALLOCATION_MODE_FIXED
    max_allocation: Resources = field(default_factory=Resources)
    min_allocation: Resources = field(default_factory=Resources)
    first_allocation: Resources | None = None
    max_seen: Resources = field(default_factory=Resources)
    autolabel: dict[str, bool] = field(default_factory=dict)
    fast_abort: float = -1
    max_concurrent: int = -1
    steady_state: bool = False
    completions_since_reset: int = 0
    total_tasks: int = 0
    steady_n_tasks: int = _STEADY_DEFAULT
    histograms: dict[str, Histogram] = field(default_factory=dict)
    stats: ManagerCounters = field(default_factory=ManagerCounters)
    #: Tasks of this category now on workers (for max_concurrent).
    running: int = 0
    #: FIXED mode with no maximum or minimum: tasks keep exactly what they asked for.
    plain: bool = True
    #: Fast abort: sum of good execute+transfer times (us) and count of good completions.
    good_time: float = 0.0
    good_count: int = 0
    #: The worst measurement of a task that failed by exhausting resources (for status -A).
    exhausted_seen: Resources = field(default_factory=Resources)
    #: The bucketing modes' learned sizes (None in the other modes).
    bucketing: bucketing.BucketingManager | None = None

    def __post_init__(self) -> None:
        self.histograms = {r: Histogram(BUCKET_SIZES[r]) for r in LABELLED}
        self.set_mode(self.mode)

    # -- configuration ---------------------------------------------------------------------

    def set_mode(self, mode: int) -> None:
        """``category_specify_allocation_mode``: autolabel cores/memory/disk unless FIXED."""
        if mode not in MODES:
            raise ValueError(f"unknown category mode {mode!r} (use one of the "
                             "WORK_QUEUE_ALLOCATION_MODE_* constants)")
        self.mode = mode
        algorithm = BUCKETING.get(mode)
        if algorithm is None:
            self.bucketing = None
        elif self.bucketing is None or self.bucketing.mode != algorithm:
            # CCTools keeps the first bucketing manager a category gets, even when it
            # switches to another bucketing mode; here the new mode takes effect.
            self.bucketing = bucketing.BucketingManager(algorithm)
        on = mode != WORK_QUEUE_ALLOCATION_MODE_FIXED
        self.autolabel.update(cores=on, memory=on, disk=on, gpus=False)
        self._update_plain()

    def set_autolabel(self, resource: str, on: bool) -> None:
        """``category_enable_auto_resource``: CCTools keeps a flag for every resource of a
        summary, though only cores, memory, disk and gpus are ever labelled; another name is
        refused (CCTools: a notice and -1; a clear error here)."""
        if resource not in RESOURCE_NAMES:
            raise ValueError(f"There is not a resource named {resource!r} (use one of "
                             f"{', '.join(RESOURCE_NAMES)}; only {', '.join(LABELLED)} are "
                             "labelled)")
        self.autolabel[resource] = bool(on)

    def _update_plain(self) -> None:
        self.plain = (self.mode == WORK_QUEUE_ALLOCATION_MODE_FIXED
                      and not self.max_allocation.as_dict() and not self.min_allocation.as_dict())

    def set_max(self, r: Resources) -> None:
        self.max_allocation = Resources()
        self.max_allocation.merge_max(r)
        self._update_plain()

    def set_min(self, r: Resources) -> None:
        self.min_allocation = Resources()
        self.min_allocation.merge_max(r)
        # The minimum counts as a measurement, so the maximum is never below it.
        self.max_seen.merge_max(r)
        self._update_plain()

    def set_first_guess(self, r: Resources) -> None:
        """``category_specify_first_allocation_guess``: the user knows what they are doing."""
        self.steady_state = True
        self.max_seen.merge_max(r)
        self.first_allocation = Resources()
        self.first_allocation.merge_max(r)

    @property
    def mode_name(self) -> str:
        return MODES[self.mode]

    def _auto(self) -> bool:
        return self.mode not in (WORK_QUEUE_ALLOCATION_MODE_FIXED, WORK_QUEUE_ALLOCATION_MODE_MAX)

    def _optimising(self) -> bool:
        return self.mode in (WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE,
                             WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)

    # -- allocations -----------------------------------------------------------------------

    def task_max(self, user: Resources | None, request: int, task_id: int = -1,
                 largest_worker: Resources | None = None) -> Resources:
        """The largest allocation for a task (``category_task_max_resources``).

        In the bucketing modes a real task (``task_id`` >= 0) gets its bucketing prediction,
        each value at most the largest worker's (CCTools does not cap it, and a prediction
        above every worker would never run)."""
        r = Resources()
        if self._auto() and self.steady_state and self._optimising():
            r.override_with(self.max_seen)
            if self.first_allocation is not None:
                r.merge_max(self.first_allocation)
        elif task_id >= 0 and self.bucketing is not None:
            r.override_with(self._predicted(task_id, largest_worker))
        r.override_with(self.max_allocation)
        if (self.steady_state and request == ALLOCATION_FIRST
                and self.mode != WORK_QUEUE_ALLOCATION_MODE_FIXED
                and (self._optimising() or self.mode == WORK_QUEUE_ALLOCATION_MODE_MAX)
                and self.first_allocation is not None):
            r.override_with(self.first_allocation)
        if user is not None:
            r.override_with(user)
        return r

    def _predicted(self, task_id: int, largest_worker: Resources | None) -> Resources:
        assert self.bucketing is not None
        r = Resources()
        for name, value in self.bucketing.predict(task_id).items():
            top = getattr(largest_worker, name) if largest_worker is not None else -1
            setattr(r, name, min(value, top) if top > 0 else value)
        return r

    def task_min(self, user: Resources | None, request: int,
                 largest_worker: Resources | None = None, task_id: int = -1) -> Resources:
        """The smallest allocation for a task (``task_min_resources``).

        On a first attempt the measured maximum is capped at the largest connected worker, so
        one outlier does not keep new tasks from running anywhere.
        """
        r = self._min(user, request, task_id, largest_worker)
        if request != ALLOCATION_FIRST or largest_worker is None:
            return r
        if any(0 < getattr(largest_worker, k) < getattr(r, k) for k in LABELLED):
            capped = Resources()
            for k in LABELLED:
                setattr(capped, k, getattr(largest_worker, k))
            if user is not None:
                capped.override_with(user)
            r = self._min(capped, request, task_id, largest_worker)
        return r

    def _min(self, user: Resources | None, request: int, task_id: int = -1,
             largest_worker: Resources | None = None) -> Resources:
        allocation = self.task_max(user, request, task_id, largest_worker)
        r = Resources()
        if self.mode != WORK_QUEUE_ALLOCATION_MODE_FIXED:
            for k in LABELLED:
                setattr(r, k, getattr(self.max_seen, k))
        r.override_with(allocation)
        r.merge_max(self.min_allocation)
        return r

    def next_label(self, user: Resources | None, measured: Resources | None) -> int:
        """After a task exhausted its allocation: retry at MAX, or ERROR (return it)."""
        if self.mode == WORK_QUEUE_ALLOCATION_MODE_FIXED:
            return ALLOCATION_ERROR
        if measured is not None:
            for k in LABELLED:
                value = getattr(measured, k)
                limit = getattr(user, k) if user is not None else -1
                if limit <= -1:
                    limit = getattr(self.max_allocation, k)
                if limit > -1 and value > limit:
                    return ALLOCATION_ERROR
        return ALLOCATION_MAX

    # -- statistics ------------------------------------------------------------------------

    def accumulate(self, measured: Resources | None, normal_exit: bool,
                   largest_worker: Resources | None, task_id: int = -1,
                   success: int = -1, exceeded: frozenset[str] = frozenset()) -> bool:
        """Add one task's measurements; True if the first allocation changed.

        ``success`` (CCTools' ``category_bucketing_accumulate_summary``): 1 the task
        succeeded, 0 it exhausted its allocation (``exceeded``: which resources), -1 other
        results, which the bucketing modes do not learn from."""
        if measured is None:
            return False
        if self.bucketing is not None and task_id >= 0 and success in (0, 1):
            values = {k: float(getattr(measured, k)) for k in LABELLED}
            self.bucketing.add_report(task_id, values, success == 1, exceeded)
        update = False
        if not self.steady_state:
            for k in LABELLED:
                if getattr(self.max_allocation, k) > 0:
                    continue  # an explicit maximum: cannot trigger a new maximum
                h = self.histograms[k]
                if getattr(measured, k) > h.round_up(h.max_value):
                    self.first_allocation = None
                    self.completions_since_reset = 0
                    update = True
                    break
        self.steady_state = self.completions_since_reset >= self.steady_n_tasks
        for k in LABELLED:
            value = getattr(measured, k)
            if value > getattr(self.max_seen, k):
                setattr(self.max_seen, k, value)
        if normal_exit:
            wall = max(getattr(measured, "wall_time", 0.0), 0.0)
            for k in LABELLED:
                value = getattr(measured, k)
                if value >= 0:
                    self.histograms[k].insert(value, wall)
            self.completions_since_reset += 1
            if self.steady_n_tasks > 0 and self.completions_since_reset % self.steady_n_tasks == 0:
                update |= self.update_first_allocation(largest_worker)
            self.total_tasks += 1
        return update

    def update_first_allocation(self, largest_worker: Resources | None) -> bool:
        """Recompute the first allocation from the histograms (``category_update_first...``)."""
        if self.mode == WORK_QUEUE_ALLOCATION_MODE_FIXED or self.total_tasks < 1:
            return False
        top = Resources()
        if largest_worker is not None:
            top.override_with(largest_worker)
        top.override_with(self.max_seen)
        top.override_with(self.max_allocation)
        if self.first_allocation is None:
            self.first_allocation = Resources()
        for k in LABELLED:
            if not self.autolabel.get(k):
                continue
            h = self.histograms[k]
            # CCTools holds these in int64_t: a largest value of 0.74 cores is 0 cores, so
            # MIN_WASTE and MAX_THROUGHPUT ask for 0 cores and the box follows memory, disk.
            t = float(int(getattr(top, k)))
            if self.mode == WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE:
                value = h.min_waste(t)
            elif self.mode == WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT:
                value = h.max_throughput(t)
            elif self.mode == WORK_QUEUE_ALLOCATION_MODE_MAX:
                worker = int(getattr(largest_worker, k)) if largest_worker is not None else -1
                value = h.max_seen(t, worker, int(getattr(self.max_allocation, k)))
            else:
                value = t
            setattr(self.first_allocation, k, float(int(value)))
        self.first_allocation.merge_max(self.min_allocation)
        return True

    def clear_histograms(self) -> None:
        """Forget the measurements (``category_clear_histograms``); limits and mode stay."""
        for h in self.histograms.values():
            h.clear()

    def forget_task(self, task_id: int) -> None:
        """A task leaves the queue without succeeding: the bucketing modes drop its record."""
        if self.bucketing is not None:
            self.bucketing.forget(task_id)

    # -- fast abort ------------------------------------------------------------------------

    def average_good_time(self) -> float:
        """Mean execute+transfer time (us) of good tasks, or 0 before 10 of them."""
        if self.good_count < 10:
            return 0.0
        return self.good_time / self.good_count


class Categories(dict[str, Category]):
    """Categories by name, created on first use with the queue's default mode."""

    def __init__(self) -> None:
        super().__init__()
        self.default_mode = WORK_QUEUE_ALLOCATION_MODE_FIXED
        self.steady_n_tasks = _STEADY_DEFAULT

    def get_or_create(self, name: str | None) -> Category:
        name = name or "default"
        c = self.get(name)
        if c is None:
            c = self[name] = Category(name, mode=self.default_mode,
                                      steady_n_tasks=self.steady_n_tasks)
        return c

    def initialize(self, summaries: Iterable[Any]) -> None:
        """First allocations learnt from earlier runs' summaries (``categories_initialize``).

        Each summary (a ResourceSummary with a ``category``) is counted in its category's
        histograms, each category's first allocation is computed from them, and the
        histograms are cleared again: the learnt allocation is where the category starts,
        not statistics it keeps."""
        for c in self.values():
            c.clear_histograms()
            c.first_allocation = None
        for s in summaries:
            if s.category:
                self.get_or_create(s.category).accumulate(s, True, None)
        for c in self.values():
            c.update_first_allocation(None)
            c.clear_histograms()

    def set_steady_n_tasks(self, n: int) -> None:
        self.steady_n_tasks = int(n)
        for c in self.values():
            c.steady_n_tasks = int(n)
