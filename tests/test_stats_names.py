"""The statistics fields of CCTools' ``work_queue_stats`` (what ``q.stats`` is there)."""

from __future__ import annotations

import work_queue as wq

from .conftest import wait_all

#: every field of CCTools 7.17.1 ``struct work_queue_stats``, the deprecated ones included
_FIELDS = """
    workers_connected workers_init workers_idle workers_busy workers_able workers_joined
    workers_removed workers_released workers_idled_out workers_fast_aborted
    workers_blocked workers_lost tasks_waiting tasks_on_workers tasks_running
    tasks_with_results tasks_submitted tasks_dispatched tasks_done tasks_failed
    tasks_cancelled tasks_exhausted_attempts time_when_started time_send time_receive
    time_send_good time_receive_good time_status_msgs time_internal time_polling
    time_application time_workers_execute time_workers_execute_good
    time_workers_execute_exhaustion bytes_sent bytes_received bandwidth capacity_tasks
    capacity_cores capacity_memory capacity_disk capacity_gpus capacity_instantaneous
    capacity_weighted total_cores total_memory total_disk committed_cores committed_memory
    committed_disk max_cores max_memory max_disk min_cores min_memory min_disk
    manager_load total_workers_connected total_workers_joined total_workers_removed
    total_workers_lost total_workers_idled_out total_workers_fast_aborted tasks_complete
    total_tasks_dispatched total_tasks_complete total_tasks_failed total_tasks_cancelled
    total_exhausted_attempts start_time total_send_time total_receive_time
    total_good_transfer_time total_execute_time total_good_execute_time
    total_exhausted_execute_time total_bytes_sent total_bytes_received capacity efficiency
    idle_percentage total_gpus committed_gpus max_gpus min_gpus port priority
    workers_ready workers_full total_worker_slots avg_capacity workers_blacklisted
"""
CCTOOLS_STATS_FIELDS = _FIELDS.split()


def test_every_cctools_stats_field_is_there(queue, workers):
    workers.start(queue.port)
    queue.specify_priority(3)
    queue.submit(wq.Task("true"))
    wait_all(queue)
    for stats in (queue.stats, queue.stats_hierarchy, queue.stats_category("default")):
        missing = [n for n in CCTOOLS_STATS_FIELDS if not hasattr(stats, n)]
        assert not missing, missing
    s = queue.stats
    assert s.port == queue.port and s.priority == 3
    assert s.total_exhausted_attempts == s.tasks_exhausted_attempts
    assert s.total_good_transfer_time == s.time_send_good + s.time_receive_good
    assert s.total_good_execute_time == s.time_workers_execute_good
    assert s.total_worker_slots == s.tasks_dispatched == 1
    assert s.capacity == s.avg_capacity == s.capacity_cores
    assert s.total_workers_lost == s.workers_lost


def test_workers_blacklisted_is_workers_blocked(queue):
    """The manual's ``workers_blacklisted``: the old name of ``workers_blocked``."""
    assert queue.stats.workers_blacklisted == 0
    from work_queue.core.stats import snapshot

    state = queue._state
    state.counters.workers_blocked = 2
    s = snapshot(state, 0)
    assert s.workers_blacklisted == s.workers_blocked == 2
