"""The bucketing allocation modes (CCTools ``dttools/src/bucketing*.c``).

The expected numbers were worked out from CCTools' code (and checked against it compiled):
significance is a point's sequence number, so in the bimodal workload below the 9 small points
(sequence numbers 1, 3, 4, 6, 7, 9, 10, 12, 13) weigh 65 of the 91 in all."""

from __future__ import annotations

import math
import random

import pytest

import work_queue as wq
from work_queue.core import bucketing as bk
from work_queue.core import events as ev
from work_queue.core.categories import ALLOCATION_FIRST, Category
from work_queue.core.resources import BoxPolicy, Resources, WorkerResources, allocation_box
from work_queue.core.rmsummary import ResourceSummary

from .conftest import wait_all
from .test_manager_core import Core

BIMODAL = [500, 1950, 480, 510, 1990, 470, 505, 1920, 495, 490, 2000, 515, 460]

MODES = {
    wq.WORK_QUEUE_ALLOCATION_MODE_GREEDY_BUCKETING: bk.GREEDY,
    wq.WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING: bk.EXHAUSTIVE,
    wq.WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING: bk.DET_GREEDY,
    wq.WORK_QUEUE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING: bk.DET_EXHAUSTIVE,
    wq.WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING: bk.QUANTIZED,
}


class FixedDraw(random.Random):
    """A random source whose next draw the test sets."""

    value = 0.5

    def random(self) -> float:
        return self.value


def memory_state(mode: str, values=(), max_num_buckets: int = 10) -> bk.BucketingState:
    s = bk.BucketingState(mode=mode, default_value=1000, max_num_buckets=max_num_buckets,
                          rng=FixedDraw())
    for v in values:
        s.add(v)
    return s


# -- the sampling phase -------------------------------------------------------------------------


def test_sampling_phase_gives_the_default_and_doubles_past_what_was_exceeded():
    s = memory_state(bk.GREEDY, [300] * 9)  # 9 of the 10 sampling points
    assert s.in_sampling_phase and s.buckets == []
    assert s.predict(-1) == 1000 and s.predict(0) == 1000
    assert s.predict(1010) == 2000      # the next power of 2 times the default above it
    assert s.predict(2000) == 4000      # strictly above
    assert s.predict(500) == 1000
    assert s.predict(100) == 125        # below the default the ladder goes down too
    cores = bk.BucketingState(default_value=1)
    assert cores.predict(0.3) == 0.5
    assert bk.BucketingState(default_value=0).predict(3) == 0  # gpus: CCTools' 0 default
    with pytest.raises(ValueError):
        s.predict(-2)


def test_the_tenth_point_ends_sampling_and_makes_buckets():
    s = memory_state(bk.EXHAUSTIVE, [300] * 9)
    s.add(300)
    assert not s.in_sampling_phase
    assert s.buckets == [bk.Bucket(300, 1.0)]


# -- the algorithms on a bimodal workload -------------------------------------------------------


@pytest.mark.parametrize("mode", [bk.GREEDY, bk.DET_GREEDY, bk.EXHAUSTIVE, bk.DET_EXHAUSTIVE])
def test_bimodal_memory_ends_in_two_buckets_not_whole_workers(mode):
    s = memory_state(mode, BIMODAL)
    assert [b.val for b in s.buckets] == [515, 2000]
    assert [b.prob for b in s.buckets] == pytest.approx([65 / 91, 26 / 91])


def test_quantized_is_one_bucket_by_default_and_quantiles_when_asked():
    m = bk.BucketingManager(bk.QUANTIZED)
    assert m.states["memory"].max_num_buckets == 1
    assert bk.quantized_buckets([(v, 0) for v in sorted(BIMODAL)], 1) == [bk.Bucket(2000, 1)]
    s = memory_state(bk.QUANTIZED, BIMODAL, max_num_buckets=4)
    assert [b.val for b in s.buckets] == [480, 500, 515, 2000]
    assert [b.prob for b in s.buckets] == pytest.approx([3 / 13, 3 / 13, 3 / 13, 4 / 13])


def test_probabilistic_modes_draw_a_bucket_by_its_probability():
    s = memory_state(bk.GREEDY, BIMODAL)
    s.rng.value = 0.1
    assert s.predict(-1) == 515
    s.rng.value = 0.9                   # above 65/91
    assert s.predict(-1) == 2000


def test_deterministic_modes_take_the_smallest_bucket():
    s = memory_state(bk.DET_EXHAUSTIVE, BIMODAL)
    s.rng.value = 0.9
    assert s.predict(-1) == 515


@pytest.mark.parametrize("mode", bk.BUCKETING_MODES)
def test_a_task_that_breaks_its_bucket_gets_a_larger_one(mode):
    s = memory_state(mode, BIMODAL, max_num_buckets=1 if mode == bk.QUANTIZED else 10)
    for draw in (0.0, 0.5, 0.99):
        s.rng.value = draw
        assert s.predict(600) == 2000
        assert s.predict(2000) == 4000  # above the largest bucket: doubling from the default
        assert s.predict(2100) == 4000


@pytest.mark.parametrize("mode", bk.BUCKETING_MODES)
def test_a_retried_task_that_used_none_of_a_resource_gets_none_as_in_cctools(mode):
    """Every task used 0 MB of disk; a task retried for its memory predicts disk above the 0
    it used: CCTools' formula gives 0 (log(0) = -inf in C), it must not raise."""
    m = bk.BucketingManager(mode)
    for task_id in range(12):
        m.predict(task_id)
        m.add_report(task_id, {"cores": 1, "memory": 300, "disk": 0, "gpus": 0}, True)
    m.predict(99)
    m.add_report(99, {"cores": 1, "memory": 900, "disk": 0, "gpus": 0}, False,
                 frozenset({"memory"}))
    again = m.predict(99)
    assert again["disk"] == 0 and again["memory"] > 300


def test_greedy_split_cost_by_hand():
    # Points 1 (significance 1) and 9 (significance 2).  Breaking after 1: p1 = 1/3,
    # p2 = 2/3; cost = p1 p2 (9 - 1) + p2 p1 (1 + 9 - 9) = 2.  Not breaking: 9 - 19/3 = 8/3.
    points = [(1.0, 1.0), (9.0, 2.0)]
    assert bk.greedy_break_points(points, deterministic=False) == [0, 1]
    assert bk.greedy_buckets(points) == [bk.Bucket(1, pytest.approx(1 / 3)),
                                         bk.Bucket(9, pytest.approx(2 / 3))]


def test_exhaustive_candidates_and_costs_by_hand():
    # Two buckets over max 8: candidates 1, 2 (powers of 2 below 8/2) then 4, 8.  Each becomes
    # the largest point it holds; the empty one (2) is dropped.
    points = [(1.0, 1.0), (3.0, 2.0), (8.0, 3.0)]
    buckets = bk.exhaustive_candidates(points, 2)
    assert [(b.val, b.prob) for b in buckets] == [(1, 1 / 6), (3, 2 / 6), (8, 3 / 6)]
    # Deterministic: a task of bucket i pays buckets 0..i less what it uses.
    assert bk.exhaustive_cost(points, buckets, True) == pytest.approx(2 / 6 * 1 + 3 / 6 * 4)
    one = bk.exhaustive_candidates(points, 1)
    assert [b.val for b in one] == [1, 3, 8]  # powers of 2 below 8 collect the small points
    # Probabilistic, by hand for [8]: the only bucket, waste 8 - mean.
    single = [bk.Bucket(8, 1.0)]
    mean = (1 * 1 + 3 * 2 + 8 * 3) / 6
    assert bk.exhaustive_cost(points, single, False) == pytest.approx(8 - mean)


# -- the manager: one state per resource, a record per task -------------------------------------


def test_manager_first_prediction_is_the_default_and_stays_for_the_attempt():
    m = bk.BucketingManager(bk.EXHAUSTIVE)
    first = m.predict(7)
    assert first == {"cores": 1, "memory": 1000, "disk": 1000, "gpus": 0}
    assert m.predict(7) == first


def test_manager_grows_only_what_was_exceeded():
    m = bk.BucketingManager(bk.DET_GREEDY)
    m.predict(1)
    m.add_report(1, {"cores": 0.4, "memory": 1100, "disk": 10, "gpus": 0}, False,
                 frozenset({"memory"}))
    assert m.predict(1) == {"cores": 1, "memory": 2000, "disk": 1000, "gpus": 0}
    # A monitor that sampled below the limit still gets a larger bucket.
    m.add_report(1, {"cores": 0.4, "memory": 1500, "disk": 10, "gpus": 0}, False,
                 frozenset({"memory"}))
    assert m.predict(1)["memory"] == 4000
    m.add_report(1, {"cores": 0.4, "memory": 2500, "disk": 10, "gpus": 0}, True)
    assert 1 not in m.tasks and m.states["memory"].points == [(2500, 1)]


def simulate(mode: str, needs: list[float]) -> tuple[list[float], int]:
    """Run tasks needing ``needs`` MB through a manager; the final allocations and retries."""
    m = bk.BucketingManager(mode, seed=3)
    finals, retries = [], 0
    for task_id, need in enumerate(needs):
        while True:
            got = m.predict(task_id)["memory"]
            if need <= got:
                m.add_report(task_id, {"cores": 1, "memory": need, "disk": 1, "gpus": 0}, True)
                finals.append(got)
                break
            retries += 1
            assert retries < 10 * len(needs)
            m.add_report(task_id, {"cores": 1, "memory": got + 1, "disk": 1, "gpus": 0},
                         False, frozenset({"memory"}))
    return finals, retries


@pytest.mark.parametrize("mode", [bk.GREEDY, bk.DET_GREEDY, bk.EXHAUSTIVE, bk.DET_EXHAUSTIVE])
def test_a_bimodal_workload_settles_on_a_few_sizes(mode):
    rnd = random.Random(11)
    needs = [rnd.choice([rnd.randint(200, 260), rnd.randint(1500, 1600)]) for _ in range(200)]
    finals, retries = simulate(mode, needs)
    # After the sampling phase every task runs in a bucket near one of the two modes (its
    # top moves up as larger values are seen), or in 2000 MB when it is the largest yet.
    assert all(200 <= got <= 260 or 1500 <= got <= 2000 for got in finals[10:])
    small = [got for got, need in zip(finals[10:], needs[10:], strict=True) if need < 300]
    share = sum(got <= 260 for got in small) / len(small)
    # The deterministic modes try the small bucket first; the probabilistic ones draw it
    # with its probability, about a half here.
    assert share >= (0.9 if mode in (bk.DET_GREEDY, bk.DET_EXHAUSTIVE) else 0.35), share
    assert retries < len(needs)
    states = bk.BucketingManager(mode)
    for need in needs:
        states.add_report(0, {"memory": need}, True)
    # Two buckets, each topped by the largest need of its mode.
    tops = [max(n for n in needs if n < 300), max(needs)]
    assert [b.val for b in states.states["memory"].buckets] == tops


# -- the category and the manager core ----------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_new_task_gets_the_default_scaled_into_a_proportional_box(mode):
    """wq_alloc_test.py: on a 4-core, 2000 MB, 2000 MB worker, cores 2, 1000 MB, 1000 MB."""
    c = Category("b", mode=mode)
    worker = WorkerResources(cores=4, memory=2000, disk=2000, gpus=0)
    limits = c.task_max(None, ALLOCATION_FIRST, task_id=1)
    minimum = c.task_min(None, ALLOCATION_FIRST, None, task_id=1)
    box = allocation_box(limits, minimum, worker, BoxPolicy())
    assert (box.cores, box.memory, box.disk, box.gpus) == (2, 1000, 1000, 0)
    assert c.mode_name.endswith("BUCKETING")


def test_the_prediction_is_capped_at_the_largest_worker():
    c = Category("b", mode=wq.WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING)
    largest = Resources(cores=4, memory=600, disk=2000, gpus=0)
    assert c.task_max(None, ALLOCATION_FIRST, 1, largest).memory == 600


def test_exhaustion_is_retried_with_a_larger_bucket_until_it_succeeds(clock):
    core = Core(clock)
    core.state.categories.get_or_create("b").set_mode(
        wq.WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING)
    w = core.worker(1, cores=8)                       # 8 cores, 8000 MB, 8000 MB
    t = wq.Task("big")
    t.specify_category("b")
    core.step(ev.TaskSubmitted(t))
    allocations = []
    for used in (1200, 2500, None):
        (d,) = core.dispatch()
        allocations.append(t.resources_allocated.memory)
        core.step(ev.ResultReceived(w, t.id, wq.WORK_QUEUE_RESULT_SUCCESS, 0, 1000, b"", None))
        if used is None:
            t.measured = ResourceSummary(cores=1, memory=3000, disk=5, gpus=0)
        else:
            t.result = wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
            t.measured = ResourceSummary(cores=1, memory=used, disk=5, gpus=0,
                                         limits_exceeded=ResourceSummary(memory=used - 1))
        core.step(ev.OutputsFetched(t))
    assert allocations == [1000, 2000, 4000]
    assert core.pop() is t and t.result == wq.WORK_QUEUE_RESULT_SUCCESS
    c = core.state.categories["b"]
    assert c.bucketing is not None and c.bucketing.tasks == {}
    assert c.bucketing.states["memory"].points == [(3000, 1)]


def test_specify_category_mode_accepts_every_bucketing_mode(queue):
    for mode, algorithm in MODES.items():
        assert queue.specify_category_mode(f"c{mode}", mode) == 1
        c = queue._state.categories[f"c{mode}"]
        assert c.bucketing is not None and c.bucketing.mode == algorithm
    with pytest.raises(ValueError):
        queue.specify_category_mode("bad", 9)


# -- with a real worker: wq_alloc_test.py's bucketing checks ------------------------------------


def test_bucketing_modes_size_a_first_task_like_cctools(queue, workers):
    """CCTools' wq_alloc_test.py: one worker of 4 cores, 2000 MB memory and disk; a task in
    each bucketing mode, with no history, gets the default (1 core, 1000 MB, 1000 MB)
    scaled into a proportional box: 2 cores, 1000 MB, 1000 MB, no gpus."""
    workers.start(queue.port, cores=4, memory=2000, disk=2000)
    queue.tune("force-proportional-resources", 1)
    p = 2 / 4
    expected = {"cores": 2, "memory": math.floor(2000 * p), "disk": math.floor(2000 * p),
                "gpus": 0}
    for mode in sorted(MODES):
        category = f"bucketing-{mode}"
        queue.specify_category_max_resources(category, {})
        queue.specify_category_min_resources(category, {})
        queue.specify_category_mode(category, mode)
        t = wq.Task("/bin/echo hello")
        t.specify_category(category)
        queue.submit(t)
        (done,) = wait_all(queue, timeout=30)
        assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done.output
        a = done.resources_allocated
        got = {"cores": a.cores, "memory": a.memory, "disk": a.disk, "gpus": a.gpus}
        assert got == expected, (mode, got)


# -- the cost per completion stays bounded ------------------------------------------------------


def reference_quantized(vals: list[float], num_buckets: int) -> list[tuple[float, float]]:
    """bucketing_quantized.c's walk over the sorted values."""
    out, count, q = [], 0, math.floor(len(vals) / num_buckets)
    for i, v in enumerate(vals, start=1):
        count += 1
        if i >= q:
            out.append((v, count / len(vals)))
            count, q = 0, math.floor((1.0 + len(out)) / num_buckets * len(vals))
    return out


def reference_buckets(mode: str, points: list[tuple[float, float]], max_num_buckets: int):
    """CCTools' algorithms written plainly, walking every point for every candidate (the first
    implementation here): what the fast ones (runs, prefix sums, bisection, fewer candidate
    breaks) must find."""
    vals = [v for v, _ in points]

    def sums(lo, hi):  # significance and value*significance of points[lo..hi]
        part = points[lo:hi + 1]
        return sum(s for _, s in part), sum(v * s for v, s in part)

    def split_cost(lo, hi, brk, det):
        total = sums(lo, hi)[0]
        lo_sig, lo_w = sums(lo, brk)
        hi_sig, hi_w = sums(brk + 1, hi) if brk < hi else (0.0, 0.0)
        p1, p2, e1 = lo_sig / total, hi_sig / total, lo_w / lo_sig
        e2 = hi_w / hi_sig if hi_sig else 0.0
        b, m = vals[brk], vals[hi]
        if det:
            return p1 * (b - e1) + p2 * (b + m - e2)
        return (p1 * p1 * (b - e1) + p1 * p2 * (m - e1) + p2 * p1 * (b + m - e2)
                + p2 * p2 * (m - e2))

    def by_value(tops):  # each point goes to the first top at or above it
        probs, ws = [0.0] * len(tops), [0.0] * len(tops)
        for v, s in points:
            i = next(i for i, t in enumerate(tops) if v <= t)
            probs[i] += s
            ws[i] += v * s
        return probs, ws

    total = sum(s for _, s in points)
    if mode in (bk.GREEDY, bk.DET_GREEDY):
        det, ranges, breaks = mode == bk.DET_GREEDY, [(0, len(points) - 1)], []
        for lo, hi in ranges:  # breadth first; the list grows while it is walked
            costs = [split_cost(lo, hi, i, det) for i in range(lo, hi + 1)]
            brk = lo + max(i for i, c in enumerate(costs) if c == min(costs))
            if brk == hi:
                continue
            breaks.append(brk)
            ranges += ([(brk + 1, hi)] if brk + 1 != hi else []) + ([(lo, brk)] if brk != lo
                                                                     else [])
        tops = [vals[b] for b in sorted([*breaks, len(points) - 1])]
        return [(t, p / total) for t, p in zip(tops, by_value(tops)[0], strict=True)]
    if mode == bk.QUANTIZED:
        return reference_quantized(vals, max_num_buckets)
    best, best_cost = None, math.inf
    for n in range(1, max_num_buckets + 1):
        grid = [float(2 ** i) for i in range(max(0, math.floor(math.log2(vals[-1] / n))))
                ] if vals[-1] > 0 else []
        grid += [vals[-1] * (i + 1) / n for i in range(n - 1)] + [vals[-1]]
        probs = by_value(grid)[0]
        tops = [max(v for v in vals if v <= t) for t, p in zip(grid, probs, strict=True) if p]
        buckets = [bk.Bucket(t, p / total) for t, p in zip(tops, [p for p in probs if p],
                                                               strict=True)]
        cost = bk.exhaustive_cost(points, buckets, mode == bk.DET_EXHAUSTIVE)
        if cost < best_cost:
            best, best_cost = [(b.val, b.prob) for b in buckets], cost
    return best


@pytest.mark.parametrize("mode", bk.BUCKETING_MODES)
def test_the_fast_algorithms_find_what_walking_every_point_finds(mode):
    rnd = random.Random(mode)
    shapes = [lambda: float(rnd.randint(0, 3000)), lambda: rnd.random() * 5000,
              lambda: float(rnd.choice([1, 2, 3])), lambda: rnd.choice([99.0, 99.0, 100.0, 1.0]),
              lambda: float(rnd.choice([rnd.randint(200, 260), rnd.randint(1500, 1600)]))]
    for case in range(60):
        draw = shapes[case % len(shapes)]
        max_num_buckets = rnd.choice([1, 3, 10])
        s = memory_state(mode, max_num_buckets=max_num_buckets)
        s.num_sampling_points = 1
        for _ in range(rnd.randint(1, 40)):
            s.add(draw())
            expected = reference_buckets(mode, s.points, max_num_buckets)
            got = [(b.val, b.prob) for b in s.buckets]
            assert [v for v, _ in got] == [v for v, _ in expected], (case, s.points)
            assert [p for _, p in got] == pytest.approx([p for _, p in expected])


@pytest.mark.parametrize("mode", bk.BUCKETING_MODES)
def test_recomputations_are_bounded_over_many_completions(mode):
    """Every point recomputes the buckets during the first ``eager_points`` points (as
    CCTools); after that only when the points grew by ``growth``: over N points about
    eager + log(N / eager) / log(1 + growth) computations, not N."""
    s = bk.BucketingState(mode=mode, default_value=1000)
    rnd = random.Random(4)
    n = 20_000
    for _ in range(n):
        s.add(float(rnd.choice([rnd.randint(200, 260), rnd.randint(1500, 1600)])))
    eager = s.eager_points - s.num_sampling_points + 1
    bound = eager + math.log(n / s.eager_points) / math.log(1 + s.growth) + 1
    assert eager < s.updates <= bound, s.updates
    assert s.updates < 600
    assert s.num_points == n and len(s.points) == n


def test_the_first_points_recompute_at_every_epoch_as_cctools():
    s = memory_state(bk.GREEDY, [500] * 9)
    assert s.updates == 0
    for k in range(1, 101):
        s.add(500 + k)
        assert s.updates == k and s.buckets[-1].val == 500 + k
    epoch = bk.BucketingState(default_value=1000, update_epoch=3)
    for _ in range(30):
        epoch.add(1)
    assert epoch.updates == 7  # points 10, 13, ..., 28


def test_between_computations_a_larger_point_raises_the_top_bucket():
    """Past the eager points the buckets wait for the next computation, but a value above the
    largest bucket raises it at once (a computation would make it the top bucket too)."""
    s = bk.BucketingState(mode=bk.DET_GREEDY, default_value=1000, eager_points=20,
                          growth=0.5)  # computed at points 10..20, then at 30
    for v in BIMODAL * 2:
        s.add(v)
    updates, top = s.updates, s.buckets[-1]
    s.add(2500)
    assert s.updates == updates                       # no computation ...
    assert s.buckets[-1] == bk.Bucket(2500, top.prob)  # ... but the top follows the point
    assert s.predict(2100) == 2500
    s.add(600)
    assert s.buckets[-1].val == 2500 and s.updates == updates
