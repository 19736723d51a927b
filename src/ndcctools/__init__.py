"""Namespace of the CCTools Python packages; ``ndcctools.work_queue`` re-exports ``work_queue``."""
