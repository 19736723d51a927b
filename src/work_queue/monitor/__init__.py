"""Resource monitoring of tasks, as CCTools' ``resource_monitor`` does it.

* :mod:`.measure`: :class:`~.measure.TreeMonitor`, a process-tree sampler driven by the
  caller's event loop, and the limit parsers;
* :mod:`.summary`: the summary JSON (``.summary`` and appended ``.summaries`` files);
* :mod:`.main`: the ``resource_monitor`` command;
* :mod:`.standalone`: the command as one executable file to send to workers.

Standard library only, with relative imports, so the package runs on its own.
"""
