"""Command-line tools that read a manager's logs: ``work_queue_graph_log`` (plots of the
statistics log) and ``work_queue_graph_workers`` (an HTML timeline from the transactions log)."""
