"""``import ndcctools.work_queue as wq``: the same objects as ``import work_queue as wq``.

This module holds no logic, so programs written for CCTools run unchanged.
"""

from work_queue import *  # noqa: F403
from work_queue import __all__ as __all__  # noqa: F401
from work_queue import __version__ as __version__  # noqa: F401


def __getattr__(name: str) -> object:
    """What ``work_queue`` makes on first use (``staging_directory``, ``DaskWQ``), which a
    star import does not bring."""
    import work_queue

    return getattr(work_queue, name)
