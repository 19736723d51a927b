"""``from ndcctools.work_queue_display import JupyterDisplay``: CCTools' module name for the
notebook status display that ``WorkQueue(status_display_interval=N)`` shows.

This module holds no logic (see :mod:`work_queue.manager.display`); importing it does not
import IPython.
"""

from work_queue.manager.display import JupyterDisplay, StatusDisplay

__all__ = ["JupyterDisplay", "StatusDisplay"]
