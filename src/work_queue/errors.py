"""One exception hierarchy, split by whose fault it is.

A task that fails is *not* an exception: it comes back from ``wait()`` with ``t.result`` and
``t.return_status`` set.  Exceptions are for programming errors and broken peers.
"""

from __future__ import annotations


class WorkQueueError(Exception):
    """Base class of every exception raised by this package."""


class ProtocolError(WorkQueueError):
    """The Work Queue wire protocol was not followed (abstract: see the two subclasses)."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol cannot express (a bug or bad argument)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or unexpected; its connection is dropped."""


class AuthenticationError(WorkQueueError):
    """The password challenge-response failed."""


class InvalidTransition(WorkQueueError):
    """A task was asked to move between two states the lifecycle table does not allow."""

    def __init__(self, task_id: int, state: str, event: str) -> None:
        super().__init__(f"task {task_id}: no transition from {state} on {event}")
        self.task_id = task_id
        self.state = state
        self.event = event
