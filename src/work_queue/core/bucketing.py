"""Bucketing: learn a few allocation sizes ("buckets") from the resources tasks used.

CCTools' bucketing allocation modes (``dttools/src/bucketing*.c``, master adds the
deterministic and quantized variants).  For each resource of a category a
:class:`BucketingState` records one *point* per successful task: its measured value and a
*significance*, the point's sequence number (1, 2, 3, ...), so recent tasks weigh more.

* **Sampling phase** (``bucketing.c``): until ``num_sampling_points`` (10) points are recorded,
  a new task gets ``default_value`` (cores 1, memory 1000 MB, disk 1000 MB, gpus 0:
  ``bucketing_manager.c``), and a task that exceeded ``v`` gets the next power of
  ``increase_rate`` (2) times the default above ``v``.
* **Predicting phase**: after every ``update_epoch`` (1) new point the buckets are recomputed
  from all points; a bucket is an upper value and the probability that a task falls in it
  (between the bucket below and this one).  How the buckets are found is the mode:

  - GREEDY (``bucketing_greedy.c``): split the sorted points recursively at the point of
    lowest expected cost, for as long as a split lowers it;
  - DET_GREEDY (``bucketing_det_greedy.c``): the same with the cost of deterministic retries;
  - EXHAUSTIVE (``bucketing_exhaust.c``): try 1..``max_num_buckets`` (10) buckets on a grid of
    candidate values and keep the cheapest list;
  - DET_EXHAUSTIVE (``bucketing_det_exhaust.c``): the same with the deterministic cost;
  - QUANTIZED (``bucketing_quantized.c``): ``max_num_buckets`` equal-count quantiles (1 by
    default in CCTools' manager, so a single bucket at the largest value seen).

  A prediction for a new task draws a bucket at random with the buckets' probabilities
  (GREEDY, EXHAUSTIVE, QUANTIZED) or takes the smallest bucket (DET_*).  A task that exceeded
  ``v`` only considers buckets above ``v``; above the largest bucket it grows by powers of
  ``increase_rate``.

:class:`BucketingManager` keeps one state per resource and what it predicted for each task
(``bucketing_manager.c``).  Pure: no clock, no I/O; the random draw uses the seeded
``random.Random`` it is given.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

GREEDY = "greedy"
EXHAUSTIVE = "exhaustive"
DET_GREEDY = "det_greedy"
DET_EXHAUSTIVE = "det_exhaustive"
QUANTIZED = "quantized"
BUCKETING_MODES = (GREEDY, EXHAUSTIVE, DET_GREEDY, DET_EXHAUSTIVE, QUANTIZED)
_DETERMINISTIC = (DET_GREEDY, DET_EXHAUSTIVE)

#: ``bucketing_manager.c``: the parameters every resource's state starts with.
DEFAULT_VALUES = {"cores": 1.0, "memory": 1000.0, "disk": 1000.0, "gpus": 0.0}
DEFAULT_NUM_SAMPLING_POINTS = 10
DEFAULT_INCREASE_RATE = 2.0
DEFAULT_MAX_NUM_BUCKETS = 10
#: Quantized bucketing gets a single bucket in CCTools' manager ("blind info").
DEFAULT_MAX_NUM_BUCKETS_QUANTIZED = 1
DEFAULT_UPDATE_EPOCH = 1


@dataclass(frozen=True, slots=True)
class Bucket:
    """An upper value and the probability that the next task falls at or below it (and above
    the bucket below)."""

    val: float
    prob: float


@dataclass
class BucketingState:
    """One resource's points and buckets (``bucketing_state_t``)."""

    mode: str = GREEDY
    default_value: float = 1.0
    num_sampling_points: int = DEFAULT_NUM_SAMPLING_POINTS
    increase_rate: float = DEFAULT_INCREASE_RATE
    max_num_buckets: int = DEFAULT_MAX_NUM_BUCKETS
    update_epoch: int = DEFAULT_UPDATE_EPOCH
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: (value, significance) sorted by value; a new point goes before equal values.
    points: list[tuple[float, float]] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    num_points: int = 0
    in_sampling_phase: bool = True
    next_sig: int = 1
    _vals: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # The same corrections as bucketing_state_create.
        if self.mode not in BUCKETING_MODES:
            raise ValueError(f"unknown bucketing mode {self.mode!r}")
        if self.default_value < 0:
            self.default_value = 1.0
        self.num_sampling_points = max(1, self.num_sampling_points)
        if self.increase_rate <= 1:
            self.increase_rate = 2.0
        self.max_num_buckets = max(1, self.max_num_buckets)
        self.update_epoch = max(1, self.update_epoch)

    # -- bucketing_add ---------------------------------------------------------------------

    def add(self, val: float) -> None:
        """Record one task's value; leave the sampling phase after enough points, and
        recompute the buckets every ``update_epoch`` points after that (``bucketing_add``)."""
        at = bisect.bisect_left(self._vals, val)
        self._vals.insert(at, val)
        self.points.insert(at, (val, float(self.next_sig)))
        self.num_points += 1
        if self.num_points >= self.num_sampling_points:
            self.in_sampling_phase = False
        self.next_sig += 1
        since = self.num_points - self.num_sampling_points
        if not self.in_sampling_phase and since % self.update_epoch == 0:
            self.update_buckets()

    def update_buckets(self) -> None:
        if not self.points:
            self.buckets = []
        elif self.mode in (GREEDY, DET_GREEDY):
            self.buckets = greedy_buckets(self.points, self.mode == DET_GREEDY)
        elif self.mode in (EXHAUSTIVE, DET_EXHAUSTIVE):
            self.buckets = exhaustive_buckets(self.points, self.max_num_buckets,
                                              self.mode == DET_EXHAUSTIVE)
        else:
            self.buckets = quantized_buckets(self.points, self.max_num_buckets)

    # -- bucketing_predict -----------------------------------------------------------------

    def grow(self, prev_val: float) -> float:
        """The first ``default * rate**k`` above ``prev_val`` (k may be 0 or negative when
        ``prev_val`` is below the default), as ``bucketing_predict`` grows a value.  With a
        default of 0 (gpus) CCTools' formula gives 0; so does this."""
        if self.default_value <= 0:
            return self.default_value
        exp = math.floor(math.log(prev_val / self.default_value) / math.log(self.increase_rate))
        return float(self.default_value * self.increase_rate ** (exp + 1))

    def predict(self, prev_val: float = -1) -> float:
        """The value for a task: ``prev_val`` -1 for a task never tried, otherwise the value it
        exceeded (or the largest it used), and then the prediction is above it."""
        if prev_val < 0 and prev_val != -1:
            raise ValueError(f"invalid previous value {prev_val!r} to predict from")
        if self.in_sampling_phase or not self.buckets:
            # No buckets yet (CCTools cannot get here with buckets missing): sampling rules.
            if prev_val in (-1, 0):
                return self.default_value
            return self.grow(prev_val)
        if self.mode in _DETERMINISTIC:
            return self._predict_deterministic(prev_val)
        return self._predict_probabilistic(prev_val)

    def _predict_deterministic(self, prev_val: float) -> float:
        """The smallest bucket above ``prev_val`` (``bucketing.c``, DET_* branch)."""
        for b in self.buckets:
            if b.val > prev_val:
                return b.val
        return self.grow(prev_val)

    def _predict_probabilistic(self, prev_val: float) -> float:
        """A bucket above ``prev_val`` drawn with the buckets' probabilities rescaled to the
        ones considered (``bucketing.c``).  CCTools 7.17.1 compared each bucket's
        *probability* to ``prev_val`` when skipping small buckets; master compares its value,
        as here."""
        rand = self.rng.random()
        total = 1.0
        acc = 0.0
        last = len(self.buckets) - 1
        for i, b in enumerate(self.buckets):
            if i == last:
                return b.val if b.val > prev_val else self.grow(prev_val)
            if b.val <= prev_val:
                total -= b.prob
                continue
            acc += b.prob
            if acc / total > rand:
                return b.val
        raise AssertionError("unreachable: the last bucket always returns")


# -- greedy (bucketing_greedy.c, bucketing_det_greedy.c) ---------------------------------------


class _Sums:
    """Prefix sums of significance and value*significance over the sorted points, so a
    split's cost is O(1) (CCTools re-sums the range for every candidate break)."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        self.vals = [p[0] for p in points]
        self.sig = [0.0]
        self.wsum = [0.0]
        for val, sig in points:
            self.sig.append(self.sig[-1] + sig)
            self.wsum.append(self.wsum[-1] + val * sig)

    def split_cost(self, lo: int, hi: int, brk: int, deterministic: bool) -> float:
        """Expected cost of splitting points[lo..hi] after ``brk`` (``..._greedy_policy``).

        p1, p2: significance shares of the low and high part; e1, e2: their weighted means.
        A task tried in the low bucket that belongs in the high one pays the low bucket and
        then the top one.  The probabilistic policy weighs each (bucket chosen, bucket of the
        task) pair by both probabilities; the deterministic one always tries the low bucket
        first."""
        sig, wsum = self.sig, self.wsum
        total = sig[hi + 1] - sig[lo]
        lo_sig = sig[brk + 1] - sig[lo]
        hi_sig = sig[hi + 1] - sig[brk + 1]
        brk_val, max_val = self.vals[brk], self.vals[hi]
        p1, p2 = lo_sig / total, hi_sig / total
        e1 = (wsum[brk + 1] - wsum[lo]) / lo_sig
        e2 = (wsum[hi + 1] - wsum[brk + 1]) / hi_sig if hi_sig else 0.0
        if deterministic:
            return p1 * (brk_val - e1) + p2 * (brk_val + max_val - e2)
        return (p1 * p1 * (brk_val - e1) + p1 * p2 * (max_val - e1)
                + p2 * p1 * (brk_val + max_val - e2) + p2 * p2 * (max_val - e2))

    def best_split(self, lo: int, hi: int, deterministic: bool) -> int:
        """The break of lowest cost in [lo, hi]; on a tie the later one wins (``<=``)."""
        best, best_cost = lo, math.inf
        for i in range(lo, hi + 1):
            cost = self.split_cost(lo, hi, i, deterministic)
            if cost <= best_cost:
                best, best_cost = i, cost
        return best


def greedy_break_points(points: list[tuple[float, float]], deterministic: bool) -> list[int]:
    """Indices of the points that end a bucket (``bucketing_greedy_find_break_points``).

    Ranges are split breadth first; a range whose best break is its own top is not split; a
    part of a single point is not split further (CCTools queues a one-point low part only
    when the break is not at the range's bottom)."""
    n = len(points)
    sums = _Sums(points)
    ranges = [(0, n - 1)]
    breaks: list[int] = []
    k = 0
    while k < len(ranges):
        lo, hi = ranges[k]
        k += 1
        brk = sums.best_split(lo, hi, deterministic)
        if brk == hi:
            continue
        breaks.append(brk)
        if brk + 1 != hi:
            ranges.append((brk + 1, hi))
        if brk != lo:
            ranges.append((lo, brk))
    breaks.append(n - 1)
    return sorted(breaks)


def greedy_buckets(points: list[tuple[float, float]], deterministic: bool = False,
                   ) -> list[Bucket]:
    """Buckets at the break points, each with the significance share of the points up to its
    value (``bucketing_greedy_update_buckets``; with equal values a later bucket may be
    empty, as in CCTools)."""
    breaks = greedy_break_points(points, deterministic)
    probs = [0.0] * len(breaks)
    total = 0.0
    i = 0
    for val, sig in points:
        while val > points[breaks[i]][0]:
            i += 1
        probs[i] += sig
        total += sig
    return [Bucket(points[b][0], p / total) for b, p in zip(breaks, probs, strict=True)]


# -- exhaustive (bucketing_exhaust.c, bucketing_det_exhaust.c) -----------------------------------


def exhaustive_candidates(points: list[tuple[float, float]], n: int) -> list[Bucket]:
    """The buckets of an ``n``-bucket try (``bucketing_exhaust_get_buckets``).

    Candidate tops: 1, 2, 4, ... below max/n, then max*1/n, ..., max.  Each candidate collects
    the points up to it and becomes the largest of them; empty candidates are dropped.  The
    top candidate keeps its own value (the largest point)."""
    max_val = points[-1][0]
    steps = 0 if max_val <= 0 else max(0, math.floor(math.log(max_val / n) / math.log(2)))
    vals = [float(2 ** i) for i in range(steps)]
    vals += [max_val * (i + 1) / n for i in range(n - 1)] + [max_val]
    probs = [0.0] * len(vals)
    i = 0
    prev = 0.0
    sig_in = total = 0.0
    j = 0
    while j < len(points) and i < len(vals):
        val, sig = points[j]
        if vals[i] < val:
            total += sig_in
            probs[i] = sig_in
            vals[i] = prev
            i += 1
            sig_in = 0.0
        else:
            prev = val
            sig_in += sig
            j += 1
    probs[i] = sig_in
    total += sig_in
    return [Bucket(v, p / total) for v, p in zip(vals, probs, strict=True) if p != 0]


def _bucket_means(points: list[tuple[float, float]], buckets: list[Bucket]) -> list[float]:
    """Significance-weighted mean value of the points in each bucket."""
    sums = [0.0] * len(buckets)
    sigs = [0.0] * len(buckets)
    i = 0
    for val, sig in points:
        while val > buckets[i].val:
            i += 1
        sums[i] += val * sig
        sigs[i] += sig
    return [s / w if w else 0.0 for s, w in zip(sums, sigs, strict=True)]


def exhaustive_cost(points: list[tuple[float, float]], buckets: list[Bucket],
                    deterministic: bool) -> float:
    """Expected cost of a bucket list (``bucketing_exhaust_compute_cost`` and the det one).

    Deterministic: a task of bucket i tries buckets 0..i in turn, paying all of them, less
    what it uses.  Probabilistic: cost[i][j] of a task of bucket i given bucket j is the waste
    if j fits, else j's value plus the expected cost of a bucket drawn above j; weighted by
    both buckets' probabilities."""
    n = len(buckets)
    means = _bucket_means(points, buckets)
    if deterministic:
        cost, prefix = 0.0, 0.0
        for i, b in enumerate(buckets):
            prefix += b.val
            cost += b.prob * (prefix - means[i])
        return cost
    table = [[0.0] * n for _ in range(n)]
    for j in range(n):
        for i in range(j + 1):
            table[i][j] = buckets[j].val - means[i]
    for i in range(n - 1, -1, -1):
        for j in range(i - 1, -1, -1):
            upper = sum(buckets[k].prob for k in range(j + 1, n))
            table[i][j] = buckets[j].val + sum(
                buckets[k].prob / upper * table[i][k] for k in range(j + 1, n))
    return sum(buckets[i].prob * buckets[j].prob * table[i][j]
               for i in range(n) for j in range(n))


def exhaustive_buckets(points: list[tuple[float, float]], max_num_buckets: int,
                       deterministic: bool = False) -> list[Bucket]:
    """The cheapest of the 1..``max_num_buckets`` tries; a tie keeps the fewer buckets."""
    best: list[Bucket] = []
    best_cost = math.inf
    for n in range(1, max_num_buckets + 1):
        buckets = exhaustive_candidates(points, n)
        cost = exhaustive_cost(points, buckets, deterministic)
        if cost < best_cost:
            best, best_cost = buckets, cost
    return best


# -- quantized (bucketing_quantized.c) -------------------------------------------------------


def quantized_buckets(points: list[tuple[float, float]], num_buckets: int) -> list[Bucket]:
    """Buckets at the quantiles floor(k*l/num_buckets), k = 1..num_buckets, each with the share
    of points (not significance) since the previous one."""
    n = len(points)
    q = math.floor(n / num_buckets)
    out: list[Bucket] = []
    count = 0
    for i, (val, _sig) in enumerate(points, start=1):
        count += 1
        if i >= q:
            out.append(Bucket(val, count / n))
            count = 0
            q = math.floor((1.0 + len(out)) / num_buckets * n)
    return out


# -- the manager (bucketing_manager.c) ------------------------------------------------------------


@dataclass
class _TaskRecord:
    """What the manager remembers of one task until it succeeds."""

    #: The last prediction, or the last report (measured values) after a failed attempt.
    report: dict[str, float] = field(default_factory=dict)
    #: Resources the last report says were exceeded (None: last attempt exceeded nothing).
    exceeded: frozenset[str] | None = None
    #: The task ran at least once (a report arrived).
    already_run: bool = False
    #: The largest value of each resource over the task's reports.
    max_seen: dict[str, float] = field(default_factory=dict)
    #: The prediction for the current attempt, fixed until the next report.
    current: dict[str, float] | None = None


class BucketingManager:
    """One :class:`BucketingState` per resource (cores, memory, disk, gpus) and each task's
    predictions and reports (``bucketing_manager_t``, CCTools master's rules)."""

    def __init__(self, mode: str, seed: int = 0) -> None:
        if mode not in BUCKETING_MODES:
            raise ValueError(f"unknown bucketing mode {mode!r}")
        self.mode = mode
        self.rng = random.Random(seed)
        max_buckets = DEFAULT_MAX_NUM_BUCKETS_QUANTIZED if mode == QUANTIZED \
            else DEFAULT_MAX_NUM_BUCKETS
        self.states = {name: BucketingState(mode=mode, default_value=value,
                                            max_num_buckets=max_buckets, rng=self.rng)
                       for name, value in DEFAULT_VALUES.items()}
        self.tasks: dict[int, _TaskRecord] = {}

    def predict(self, task_id: int) -> dict[str, float]:
        """The allocation of ``task_id``'s current attempt (``bucketing_manager_predict``).

        A new task gets each state's prediction.  After an attempt that exhausted its
        allocation, an exceeded resource gets a prediction above the value it reached; any
        other resource a prediction above the most the task used (in the sampling phase at
        least the default); after an attempt that exceeded nothing the values are kept.
        CCTools recomputes on every call; here the answer is fixed per attempt, so the
        scheduler sees one box per task however often it asks."""
        rec = self.tasks.setdefault(task_id, _TaskRecord())
        if rec.current is None:
            rec.current = {name: self._predict_one(rec, name, state)
                           for name, state in self.states.items()}
            rec.report = dict(rec.current)
            rec.exceeded = None
        return dict(rec.current)

    @staticmethod
    def _predict_one(rec: _TaskRecord, name: str, state: BucketingState) -> float:
        old = rec.report.get(name, -1)
        if old == -1 or not rec.already_run:
            return state.predict(-1)
        if rec.exceeded is None:
            return old
        if name in rec.exceeded:
            return state.predict(old)
        seen = max(rec.max_seen.get(name, -1), 0.0)
        if state.in_sampling_phase:
            return max(state.predict(seen), state.predict(-1))
        return state.predict(seen)

    def add_report(self, task_id: int, measured: dict[str, float], success: bool,
                   exceeded: frozenset[str] = frozenset()) -> None:
        """A task's measured resources after it succeeded (``success``: the values become
        points) or exhausted its allocation (``exceeded`` names what it broke; its next
        prediction grows) (``bucketing_manager_add_resource_report``)."""
        if success:
            self.tasks.pop(task_id, None)
            for name, state in self.states.items():
                value = measured.get(name, -1)
                if value >= 0:  # unmeasured: nothing to learn from
                    state.add(value)
            return
        rec = self.tasks.setdefault(task_id, _TaskRecord())
        rec.already_run = True
        given = rec.current or {}
        report = {}
        for name in self.states:
            value = measured.get(name, -1)
            rec.max_seen[name] = max(rec.max_seen.get(name, -1), value)
            if name in exceeded:
                # CCTools grows from the measured value; a monitor that sampled below the
                # limit it broke (or did not measure it) would then get the same bucket again
                # and again, so grow from at least the allocation that was broken.
                value = max(value, given.get(name, -1))
            report[name] = value
        rec.report = report
        rec.exceeded = frozenset(exceeded)
        rec.current = None

    def forget(self, task_id: int) -> None:
        """Drop a task that will not run again (returned without success)."""
        self.tasks.pop(task_id, None)


__all__ = ["BUCKETING_MODES", "Bucket", "BucketingManager", "BucketingState", "DET_EXHAUSTIVE",
           "DET_GREEDY", "DEFAULT_VALUES", "EXHAUSTIVE", "GREEDY", "QUANTIZED",
           "exhaustive_buckets", "exhaustive_candidates", "exhaustive_cost",
           "greedy_break_points", "greedy_buckets", "quantized_buckets"]
