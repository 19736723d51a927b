"""The CCTools password challenge-response (``dttools/src/link_auth.c``), without I/O.

Both peers run the same steps::

    send "auth password sha1"        read the same line back
    send a 63-letter challenge       read the peer's challenge
    send sha1(password + " " + peer_challenge) in hex
    read the peer's response, check it, send "ok" or "failure", read the peer's verdict

The password is used byte for byte, so a password *file* keeps its trailing newline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable

from ..errors import AuthenticationError

AUTH_LINE = b"auth password sha1"
CHALLENGE_LENGTH = 63


def make_challenge() -> bytes:
    """A fresh challenge: 63 random lowercase letters."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(CHALLENGE_LENGTH)).encode()


def response_for(password: bytes, challenge: bytes) -> bytes:
    """The answer a peer knowing ``password`` gives to ``challenge`` (lowercase hex SHA1)."""
    return hashlib.sha1(password + b" " + challenge).hexdigest().encode()


# -- one side of the exchange, as a state machine ------------------------------------------------

#: A connection as one end sees it: (its local address, its peer's address).
Endpoints = tuple[object, object]

#: Challenges this process has issued on exchanges that are not over yet, with the connection
#: each went out on (None: not known).  A peer that sends one of them back as *its* challenge
#: wants us to compute the answer it cannot (a reflection attack: it would replay our answer
#: where we asked), so no exchange answers them, in either role: a foreman accepts its workers
#: and connects to its manager with one password, and a stranger playing both its worker and
#: its manager must not have one role answer for the other.  The one exception is the very
#: connection the challenge went out on, seen from its other end: a program that queries its
#: own manager's status.  (A dict's get, set and pop are atomic in CPython: threads share it.)
_in_flight: dict[bytes, Endpoints | None] = {}
_NOT_OURS = object()


class PasswordExchange:
    """One side of the password exchange, without I/O: feed it the peer's lines one by one
    (:meth:`receive`) and send the peer what it returns, until :attr:`done`.

    ``initiator`` is the connecting side (worker, status client, catalog client): it sends the
    auth line first (:meth:`opening`) and its challenge once the peer's auth line arrived.  The
    accepting side (the manager, its status thread) sends its auth line and challenge together
    when the peer's auth line arrives.  Every failure raises :class:`AuthenticationError`.

    The one rule CCTools lacks: an exchange refuses to answer a challenge that this process
    issued on any exchange still under way, in either role, on this connection or another
    (unless it is this connection's other end: see ``_in_flight``), so a peer that does not
    know the password cannot get an answer computed for it.  CCTools peers never send such a
    challenge, so they are not affected.
    """

    def __init__(self, password: bytes, initiator: bool,
                 endpoints: Endpoints | None = None) -> None:
        self.password = password
        self.initiator = initiator
        #: (local, peer) addresses of the connection (the shell's ``endpoints_of``): they let
        #: a process answer a challenge it issued itself on this same connection
        self.endpoints = endpoints
        self.challenge = b""
        self.state = "line"
        self._peer_ok = False

    @property
    def done(self) -> bool:
        """The exchange succeeded: both sides proved they know the password."""
        return self.state == "done"

    def opening(self) -> bytes:
        """What the initiating side sends first."""
        return AUTH_LINE + b"\n"

    def receive(self, line: bytes) -> bytes:
        """The peer's next line (without its newline); returns the bytes to send back."""
        try:
            return self._step(line)
        except AuthenticationError:
            self.finish()
            self.state = "failed"
            raise

    def _step(self, line: bytes) -> bytes:
        if self.state == "line":
            if line != AUTH_LINE:
                raise AuthenticationError("the peer does not use a password")
            self.challenge = make_challenge()
            _in_flight[self.challenge] = self.endpoints
            self.state = "challenge"
            return (b"" if self.initiator else AUTH_LINE + b"\n") + self.challenge + b"\n"
        if self.state == "challenge":
            issuer = _in_flight.get(line, _NOT_OURS)
            if issuer is not _NOT_OURS and not self._other_end_of(issuer):
                raise AuthenticationError("the peer sent back a challenge of ours instead of "
                                          "its own (a reflection attack)")
            self.state = "response"
            return response_for(self.password, line) + b"\n"
        if self.state == "response":
            self._peer_ok = hmac.compare_digest(line, response_for(self.password,
                                                                   self.challenge))
            self.state = "verdict"
            return b"ok\n" if self._peer_ok else b"failure\n"
        if self.state == "verdict":
            self.finish()
            if line != b"ok" or not self._peer_ok:
                raise AuthenticationError("password authentication failed")
            self.state = "done"
            return b""
        raise AuthenticationError(f"the password exchange is over ({self.state})")

    def _other_end_of(self, issuer: object) -> bool:
        """Whether ``issuer`` (the endpoints a challenge of ours went out on) is this
        exchange's connection seen from its other end."""
        mine = self.endpoints
        return mine is not None and issuer == (mine[1], mine[0])

    def finish(self) -> None:
        """Forget this exchange's challenge (called when it ends, or its connection does)."""
        if self.challenge:
            _in_flight.pop(self.challenge, None)

    def __del__(self) -> None:
        self.finish()


def run_blocking(exchange: PasswordExchange, send: Callable[[bytes], object],
                 readline: Callable[[], bytes | None]) -> None:
    """Run ``exchange`` to its end over a blocking connection (``readline`` returns a line
    without its newline, or None when the peer is gone); raises AuthenticationError."""
    try:
        if exchange.initiator:
            send(exchange.opening())
        while not exchange.done:
            line = readline()
            if line is None:
                raise AuthenticationError("the peer closed the connection during the password "
                                          "exchange (wrong password?)")
            reply = exchange.receive(line)
            if reply:
                send(reply)
    finally:
        exchange.finish()
