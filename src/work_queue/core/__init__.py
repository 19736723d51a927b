"""Sans-IO, deterministic manager logic: task lifecycle, scheduling, resources, statistics.

Time is always passed in; nothing here touches sockets, subprocesses, threads or clocks.
"""
