"""The blocking start of a connection to a manager, shared by the worker's session, its
coming back (``rejoin.py``) and the foreman's uplink: lines read into the protocol reader's
own buffer (so what the manager sends right after stays for the reader), and the password
exchange over them."""

from __future__ import annotations

import socket
from collections.abc import Callable

from ..errors import AuthenticationError
from ..events import endpoints_of
from ..protocol import auth
from ..protocol.buffer import ReceiveBuffer


def line_reader(sock: socket.socket, buf: ReceiveBuffer,
                closed: Callable[[], Exception]) -> Callable[[], bytes]:
    """A blocking ``readline`` over ``sock`` that fills ``buf``; raises ``closed()`` when the
    manager closes the connection."""

    def readline() -> bytes:
        while (line := buf.maybe_next_line()) is None:
            data = sock.recv(65536)
            if not data:
                raise closed()
            buf.feed(data)
        return line

    return readline


def authenticate(sock: socket.socket, password: bytes, buf: ReceiveBuffer) -> None:
    """The password exchange right after connecting (the worker's side, initiating); raises
    AuthenticationError.  The exchange knows the connection's endpoints: see
    ``protocol.auth`` on reflection."""
    readline = line_reader(sock, buf, lambda: AuthenticationError(
        "manager closed the connection during auth"))
    exchange = auth.PasswordExchange(password, initiator=True, endpoints=endpoints_of(sock))
    auth.run_blocking(exchange, sock.sendall, readline)
