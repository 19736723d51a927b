"""The worker (``work_queue_worker``): connects to a manager, runs tasks in sandboxes."""
