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
  from all points (here only for the first ``eager_points`` (500) points; after that when the
  points grew by ``growth`` (1/16) since the last computation, see :meth:`BucketingState.add`);
  a bucket is an upper value and the probability that a task falls in it
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate, groupby
from operator import itemgetter, mul

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
#: Recompute at every ``update_epoch`` point (as CCTools) up to this many points ...
DEFAULT_EAGER_POINTS = 500
#: ... and after that once the points grew by this fraction since the last computation.
DEFAULT_GROWTH = 1 / 16

_VALUE = itemgetter(0)


@dataclass(frozen=True, slots=True)
class Bucket:
    """An upper value and the probability that the next task falls at or below it (and above
    the bucket below)."""

    val: float
    prob: float


@dataclass
class BucketingState:
    """One resource's points and buckets (``bucketing_state_t``).

    CCTools recomputes the buckets from every point after each new one: O(points) per task in
    C, far more in Python, so a long run would spend its time there.  Here the points are kept
    as runs of equal values (a value's significances), a new point costs O(1), a computation
    costs O(distinct values) (prefix sums over the runs; measured sizes repeat: whole MB,
    hundredths of a core), and past ``eager_points`` points the buckets are
    recomputed only when the points grew by ``growth``, so even with all values distinct the
    cost per point stays bounded.  In between, a point above the largest bucket raises that
    bucket to it, as a computation would (every mode's top bucket is the largest point), so
    no task is sized below a value already seen to succeed."""

    mode: str = GREEDY
    default_value: float = 1.0
    num_sampling_points: int = DEFAULT_NUM_SAMPLING_POINTS
    increase_rate: float = DEFAULT_INCREASE_RATE
    max_num_buckets: int = DEFAULT_MAX_NUM_BUCKETS
    update_epoch: int = DEFAULT_UPDATE_EPOCH
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    eager_points: int = DEFAULT_EAGER_POINTS
    growth: float = DEFAULT_GROWTH
    buckets: list[Bucket] = field(default_factory=list)
    num_points: int = 0
    in_sampling_phase: bool = True
    next_sig: int = 1
    #: How many times the buckets were computed (the bounded work the tests count).
    updates: int = 0
    #: ``num_points`` at the last computation.
    updated_at: int = 0
    #: The distinct values, ascending (those seen since the last computation: ``_new_keys``).
    _keys: list[float] = field(default_factory=list, repr=False)
    _new_keys: list[float] = field(default_factory=list, repr=False)
    #: Value -> the significances of its points, oldest first.
    _sigs: dict[float, list[float]] = field(default_factory=dict, repr=False)
    #: Value -> the sum of those significances.
    _sums: dict[float, float] = field(default_factory=dict, repr=False)

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
        self.growth = max(0.0, self.growth)

    @property
    def points(self) -> list[tuple[float, float]]:
        """(value, significance) sorted by value, a newer point before equal values (where
        CCTools inserts it).  Built on demand: O(points)."""
        return [(v, sig) for v in self._sorted_keys() for sig in reversed(self._sigs[v])]

    def _sorted_keys(self) -> list[float]:
        """The distinct values, ascending: the new ones merged in (one timsort of a sorted
        run and a short tail; inserting each at once would move O(values) per point)."""
        if self._new_keys:
            self._keys.extend(self._new_keys)
            self._keys.sort()
            self._new_keys = []
        return self._keys

    # -- bucketing_add ---------------------------------------------------------------------

    def add(self, val: float) -> None:
        """Record one task's value; leave the sampling phase after enough points, and
        recompute the buckets when :meth:`_due` (``bucketing_add``)."""
        sig = float(self.next_sig)
        sigs = self._sigs.get(val)
        if sigs is None:
            self._new_keys.append(val)
            self._sigs[val] = [sig]
            self._sums[val] = sig
        else:
            sigs.append(sig)
            self._sums[val] += sig
        self.num_points += 1
        if self.num_points >= self.num_sampling_points:
            self.in_sampling_phase = False
        self.next_sig += 1
        if not self.in_sampling_phase and self._due():
            self.update_buckets()
        elif self.num_points > self.eager_points and self.buckets and val > self.buckets[-1].val:
            self.buckets[-1] = Bucket(val, self.buckets[-1].prob)

    def _due(self) -> bool:
        """CCTools' rule (every ``update_epoch`` points after sampling) for the first
        ``eager_points`` points; then once the points grew by ``growth`` (and at least
        ``update_epoch``) since the last computation, so the computations over N points are
        about eager_points + log(N / eager_points) / log(1 + growth)."""
        if self.num_points <= self.eager_points:
            return (self.num_points - self.num_sampling_points) % self.update_epoch == 0
        return (self.num_points - self.updated_at
                >= max(self.update_epoch, self.updated_at * self.growth))

    def update_buckets(self) -> None:
        """Recompute the buckets from all points in the state's mode."""
        self.updates += 1
        self.updated_at = self.num_points
        keys = self._sorted_keys()
        if not keys:
            self.buckets = []
            return
        if len(keys) == 1 and self.mode != QUANTIZED:
            # One value only (gpus 0, a constant core count): what greedy and exhaustive
            # find anyway.
            self.buckets = [Bucket(keys[0], 1.0)]
            return
        runs = _Runs(keys, list(map(self._sigs.__getitem__, keys)),
                     list(map(self._sums.__getitem__, keys)), newest_last=True)
        if self.mode in (GREEDY, DET_GREEDY):
            self.buckets = greedy_buckets(runs, self.mode == DET_GREEDY)
        elif self.mode in (EXHAUSTIVE, DET_EXHAUSTIVE):
            self.buckets = exhaustive_buckets(runs, self.max_num_buckets,
                                              self.mode == DET_EXHAUSTIVE)
        else:
            self.buckets = quantized_buckets(runs, self.max_num_buckets)

    # -- bucketing_predict -----------------------------------------------------------------

    def grow(self, prev_val: float) -> float:
        """The first ``default * rate**k`` above ``prev_val`` (k may be 0 or negative when
        ``prev_val`` is below the default), as ``bucketing_predict`` grows a value.  With a
        default of 0 (gpus) CCTools' formula gives 0; so does this.  So it does from a
        ``prev_val`` of 0 (a retried task that used none of a resource every task used none
        of, e.g. disk): log(0) is -inf in C and the power underflows to 0; Python's log would
        raise and stop the manager."""
        if self.default_value <= 0 or prev_val <= 0:
            return 0.0 if prev_val <= 0 else self.default_value
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


class _Runs:
    """The sorted points as runs of equal values, with prefix sums over the runs.

    Point i of CCTools' sorted array is point i - start[r] of run r (newest first within a
    run).  ``sig``/``wsum`` are the prefix sums of significance and value*significance by
    run, ``first`` each run's newest significance; :meth:`prefix` gives the sums before any
    point index (a run's partial sums are built only for the rare range that starts inside
    it).  Significances are whole numbers, so the sums are exact."""

    def __init__(self, vals: list[float], sig_lists: list[list[float]], sums: list[float],
                 newest_last: bool) -> None:
        self.vals = vals
        self._lists = sig_lists
        self._newest_last = newest_last
        self.start = [0, *accumulate(map(len, sig_lists))]
        self.n = self.start[-1]
        self.sig = [0.0, *accumulate(sums)]
        self.wsum = [0.0, *accumulate(map(mul, vals, sums))]
        self.first = list(map(itemgetter(-1 if newest_last else 0), sig_lists))
        self._partial: dict[int, list[float]] = {}

    @classmethod
    def of(cls, points: Points | _Runs) -> _Runs:
        """``points`` as runs: (value, significance) sorted by value, newest first among
        equal values (the order of :attr:`BucketingState.points`)."""
        if isinstance(points, _Runs):
            return points
        vals, lists = [], []
        for val, group in groupby(points, key=_VALUE):
            vals.append(val)
            lists.append([sig for _, sig in group])
        return cls(vals, lists, [sum(sigs) for sigs in lists], newest_last=False)

    def run_of(self, i: int) -> int:
        """The run that holds point ``i``."""
        return bisect.bisect_right(self.start, i) - 1

    def value(self, i: int) -> float:
        """The value of point ``i``."""
        return self.vals[self.run_of(i)]

    def prefix(self, i: int) -> tuple[float, float]:
        """Significance and value*significance of the points before index ``i``."""
        if i >= self.n:
            return self.sig[-1], self.wsum[-1]
        r = self.run_of(i)
        j = i - self.start[r]
        if j == 0:
            return self.sig[r], self.wsum[r]
        part = self.first[r] if j == 1 else self._partial_sums(r)[j]
        return self.sig[r] + part, self.wsum[r] + self.vals[r] * part

    def _partial_sums(self, r: int) -> list[float]:
        if r not in self._partial:
            sigs = self._lists[r]
            ordered = reversed(sigs) if self._newest_last else iter(sigs)
            self._partial[r] = [0.0, *accumulate(ordered)]
        return self._partial[r]

    def by_value(self, tops: list[float]) -> list[tuple[int, int]]:
        """For each of the increasing ``tops``, the runs it holds: those above the previous
        top, up to and including it (where CCTools' walk over the sorted points puts them)."""
        out = []
        start = 0
        for top in tops:
            end = bisect.bisect_right(self.vals, top, start)
            out.append((start, end))
            start = end
        return out


Points = list[tuple[float, float]]


# -- greedy (bucketing_greedy.c, bucketing_det_greedy.c) ---------------------------------------


def _split_candidates(runs: _Runs, lo: int, hi: int, deterministic: bool,
                      ) -> Iterator[tuple[int, float, float, float]]:
    """The breaks in points[lo..hi] that can be the cheapest, in order, each with the
    significance and value*significance up to and including it and its value: the ends of
    the runs of equal values and, in the probabilistic policy, their starts too.

    Within a run of one value v a break only moves significance L from the high part to the
    low one.  With T the range's significance and W its value*significance, the deterministic
    cost is (T (v + max) - L max - W) / T, decreasing in L: the run's end is cheapest.  The
    probabilistic one is (T L v + (T - L) (T + L) max - T W) / T^2, concave in L: the
    cheapest is the run's start or end.  So a split costs O(distinct values), not O(points);
    the tie rule (the later break wins) is unchanged.  The runs at the range's ends may be
    cut by it (:meth:`_Runs.prefix`); the ones between are whole (the prefix sums)."""
    r0, r1 = runs.run_of(lo), runs.run_of(hi)
    start, sig, wsum, vals, first = runs.start, runs.sig, runs.wsum, runs.vals, runs.first
    for r in range(r0, r1 + 1):
        a, b, v = start[r], start[r + 1] - 1, vals[r]
        if r in (r0, r1):  # maybe cut: the general sums
            a, b = max(a, lo), min(b, hi)
            if a != b and not deterministic:
                yield a, *runs.prefix(a + 1), v
            yield b, *runs.prefix(b + 1), v
            continue
        if a != b and not deterministic:
            f = first[r]
            yield a, sig[r] + f, wsum[r] + v * f, v
        yield b, sig[r + 1], wsum[r + 1], v


def _best_split(runs: _Runs, lo: int, hi: int, deterministic: bool) -> int:
    """The break of lowest cost in points[lo..hi]; on a tie the later one wins (``<=``).

    The expected cost of a split after ``brk`` (``..._greedy_policy``): p1, p2 are the
    significance shares of the low and high part, e1, e2 their weighted means.  A task tried
    in the low bucket that belongs in the high one pays the low bucket and then the top one.
    The probabilistic policy weighs each (bucket chosen, bucket of the task) pair by both
    probabilities; the deterministic one always tries the low bucket first."""
    sig_lo, w_lo = runs.prefix(lo)
    sig_hi, w_hi = runs.prefix(hi + 1)
    max_val = runs.value(hi)
    total = sig_hi - sig_lo
    best, best_cost = lo, math.inf
    for brk, sig_brk, w_brk, brk_val in _split_candidates(runs, lo, hi, deterministic):
        lo_sig = sig_brk - sig_lo
        hi_sig = sig_hi - sig_brk
        p1, p2 = lo_sig / total, hi_sig / total
        e1 = (w_brk - w_lo) / lo_sig
        e2 = (w_hi - w_brk) / hi_sig if hi_sig else 0.0
        if deterministic:
            cost = p1 * (brk_val - e1) + p2 * (brk_val + max_val - e2)
        else:
            cost = (p1 * p1 * (brk_val - e1) + p1 * p2 * (max_val - e1)
                    + p2 * p1 * (brk_val + max_val - e2) + p2 * p2 * (max_val - e2))
        if cost <= best_cost:
            best, best_cost = brk, cost
    return best


def greedy_break_points(points: Points | _Runs, deterministic: bool) -> list[int]:
    """Indices of the points that end a bucket (``bucketing_greedy_find_break_points``).

    Ranges are split breadth first; a range whose best break is its own top is not split; a
    part of a single point is not split further (CCTools queues a one-point low part only
    when the break is not at the range's bottom)."""
    runs = _Runs.of(points)
    ranges = [(0, runs.n - 1)]
    breaks: list[int] = []
    k = 0
    while k < len(ranges):
        lo, hi = ranges[k]
        k += 1
        brk = _best_split(runs, lo, hi, deterministic)
        if brk == hi:
            continue
        breaks.append(brk)
        if brk + 1 != hi:
            ranges.append((brk + 1, hi))
        if brk != lo:
            ranges.append((lo, brk))
    breaks.append(runs.n - 1)
    return sorted(breaks)


def greedy_buckets(points: Points | _Runs, deterministic: bool = False) -> list[Bucket]:
    """Buckets at the break points, each with the significance share of the points up to its
    value (``bucketing_greedy_update_buckets``; with equal values a later bucket may be
    empty, as in CCTools)."""
    runs = _Runs.of(points)
    tops = [runs.value(b) for b in greedy_break_points(runs, deterministic)]
    total = runs.sig[-1]
    return [Bucket(top, (runs.sig[end] - runs.sig[start]) / total)
            for top, (start, end) in zip(tops, runs.by_value(tops), strict=True)]


# -- exhaustive (bucketing_exhaust.c, bucketing_det_exhaust.c) -----------------------------------


def exhaustive_candidates(points: Points | _Runs, n: int) -> list[Bucket]:
    """The buckets of an ``n``-bucket try (``bucketing_exhaust_get_buckets``).

    Candidate tops: 1, 2, 4, ... below max/n, then max*1/n, ..., max.  Each candidate collects
    the points up to it and becomes the largest of them; empty candidates are dropped.  The
    top candidate keeps its own value (the largest point).  Found by bisection over the runs
    (CCTools walks every point)."""
    runs = _Runs.of(points)
    max_val = runs.vals[-1]
    steps = 0 if max_val <= 0 else max(0, math.floor(math.log(max_val / n) / math.log(2)))
    tops = [float(2 ** i) for i in range(steps)]
    tops += [max_val * (i + 1) / n for i in range(n - 1)] + [max_val]
    total = runs.sig[-1]
    return [Bucket(runs.vals[end - 1], (runs.sig[end] - runs.sig[start]) / total)
            for start, end in runs.by_value(tops) if end > start]


def _bucket_means(runs: _Runs, buckets: list[Bucket]) -> list[float]:
    """Significance-weighted mean value of the points in each bucket."""
    sig, wsum = runs.sig, runs.wsum
    return [(wsum[end] - wsum[start]) / (sig[end] - sig[start]) if end > start else 0.0
            for start, end in runs.by_value([b.val for b in buckets])]


def exhaustive_cost(points: Points | _Runs, buckets: list[Bucket],
                    deterministic: bool) -> float:
    """Expected cost of a bucket list (``bucketing_exhaust_compute_cost`` and the det one).

    Deterministic: a task of bucket i tries buckets 0..i in turn, paying all of them, less
    what it uses.  Probabilistic: cost[i][j] of a task of bucket i given bucket j is the waste
    if j fits, else j's value plus the expected cost of a bucket drawn above j; weighted by
    both buckets' probabilities."""
    n = len(buckets)
    means = _bucket_means(_Runs.of(points), buckets)
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
    # The probabilities of the buckets above j, rescaled (they depend on j only).
    upper = [[buckets[k].prob / sum(buckets[m].prob for m in range(j + 1, n))
              for k in range(j + 1, n)] for j in range(n - 1)]
    for i in range(n - 1, -1, -1):
        row = table[i]
        for j in range(i - 1, -1, -1):
            row[j] = buckets[j].val + sum(w * t for w, t in zip(upper[j], row[j + 1:],
                                                                 strict=True))
    return sum(buckets[i].prob * buckets[j].prob * table[i][j]
               for i in range(n) for j in range(n))


def exhaustive_buckets(points: Points | _Runs, max_num_buckets: int,
                       deterministic: bool = False) -> list[Bucket]:
    """The cheapest of the 1..``max_num_buckets`` tries; a tie keeps the fewer buckets."""
    runs = _Runs.of(points)
    best: list[Bucket] = []
    best_cost = math.inf
    for n in range(1, max_num_buckets + 1):
        buckets = exhaustive_candidates(runs, n)
        cost = exhaustive_cost(runs, buckets, deterministic)
        if cost < best_cost:
            best, best_cost = buckets, cost
    return best


# -- quantized (bucketing_quantized.c) -------------------------------------------------------


def quantized_buckets(points: Points | _Runs, num_buckets: int) -> list[Bucket]:
    """Buckets at the quantiles floor(k*l/num_buckets), k = 1..num_buckets, each with the share
    of points (not significance) since the previous one.  CCTools walks the points; this
    jumps from one quantile's index to the next (the first index at or past it)."""
    runs = _Runs.of(points)
    n = runs.n
    q = math.floor(n / num_buckets)
    out: list[Bucket] = []
    prev = 0
    while (end := max(prev + 1, q)) <= n:
        out.append(Bucket(runs.value(end - 1), (end - prev) / n))
        prev = end
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
