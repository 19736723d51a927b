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
import secrets
import string

AUTH_LINE = b"auth password sha1"
CHALLENGE_LENGTH = 63


def make_challenge() -> bytes:
    """A fresh challenge: 63 random lowercase letters."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(CHALLENGE_LENGTH)).encode()


def response_for(password: bytes, challenge: bytes) -> bytes:
    """The answer a peer knowing ``password`` gives to ``challenge`` (lowercase hex SHA1)."""
    return hashlib.sha1(password + b" " + challenge).hexdigest().encode()
