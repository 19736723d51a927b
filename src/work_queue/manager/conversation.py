"""What one worker connection expects next: the manager's side of the conversation.

Requests to a worker are pipelined (``send_results``, then a ``get`` per output), and the
replies come back in the order the requests went out, each ending with ``end``.  A
connection's :class:`Conversation` keeps the replies still expected as typed records, and
the output being received (a file's sink, a directory's staging area).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError


@dataclass(slots=True)
class ResultsReply:
    """``send_results`` went out: ``result`` records come, then ``end``."""


@dataclass(slots=True)
class OutputReply:
    """``get`` went out for output ``spec`` of ``task``: ``file``/``dir``/``missing`` items,
    then ``end``.  ``last``: the last output asked for this task."""

    task: Any
    spec: Any
    last: bool


#: The one ResultsReply (it holds nothing, so every ``send_results`` shares it).
_RESULTS = ResultsReply()


class Conversation:
    """The replies one connection expects, and the output arriving now."""

    __slots__ = ("expected", "results_requested", "sink", "staging")

    def __init__(self) -> None:
        self.expected: deque[ResultsReply | OutputReply] = deque()
        #: ``send_results`` is out and its ``end`` has not come back.
        self.results_requested = False
        #: Where the data of the current ``file`` item goes (FileOutput, MemoryOutput).
        self.sink: Any = None
        #: The directory output of the current ``get`` reply, while it arrives.
        self.staging: Any = None

    def ask_results(self) -> bool:
        """Note a ``send_results``; False if one is already out (no second request)."""
        if self.results_requested:
            return False
        self.results_requested = True
        self.expected.append(_RESULTS)
        return True

    def ask_outputs(self, task: Any, specs: list[Any]) -> None:
        """Note a ``get`` for each of ``specs``, in order."""
        last = len(specs) - 1
        self.expected.extend(OutputReply(task, spec, i == last) for i, spec in enumerate(specs))

    def current_output(self) -> OutputReply:
        """The ``get`` whose reply is arriving; a protocol error if none is."""
        reply = self.expected[0] if self.expected else None
        if not isinstance(reply, OutputReply):
            raise RemoteProtocolError("file data without a 'get'")
        return reply

    def reply_ended(self) -> ResultsReply | OutputReply:
        """An ``end`` arrived: the reply it ends."""
        if not self.expected:
            raise RemoteProtocolError("unexpected 'end'")
        reply = self.expected.popleft()
        if isinstance(reply, ResultsReply):
            self.results_requested = False
        return reply

    def abort(self) -> None:
        """The connection closed: a half-received output never appears under its name."""
        if self.sink is not None:
            self.sink.abort()
            self.sink = None
        if self.staging is not None:
            self.staging.abort()
            self.staging = None
