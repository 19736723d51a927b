"""URL encoding of names on the wire, as CCTools ``dttools/src/url_encode.c`` does it.

Encoded: bytes up to and including space, ``% \\ < > ' "`` and everything above ``z``
(``{ | } ~``, DEL and non-ASCII bytes).  ``/`` is left alone.

Deliberate difference: the C encoder pads bytes below 0x10 with a space (``% A``) and writes
bytes of 0x80 and above as ``%FFFFFFxx`` (a signed-char bug).  We always write two uppercase hex
digits, which the C decoder reads correctly.  Decoding reads ``%XX`` escapes only, as the C
decoder does; C's ``% A`` and ``%FFFFFFxx`` forms (control and non-ASCII bytes) are therefore not
decoded, which only affects names holding such bytes.
"""

from __future__ import annotations

import re

_SPECIAL = frozenset(b"%\\<>'\"")
_TABLE = [
    f"%{b:02X}" if (b <= 0x20 or b > 0x7A or b in _SPECIAL) else chr(b) for b in range(256)
]


_PLAIN = re.compile(r"[!#-$&(-\[\]-z]*")  # printable ASCII up to 'z' but % \\ < > ' " and space


def url_encode(text: str | bytes) -> str:
    """Encode a name so it holds no spaces or other bytes the line protocol cannot carry."""
    if isinstance(text, str) and _PLAIN.fullmatch(text) and "<" not in text and ">" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return "".join(_TABLE[b] for b in raw)


def url_decode(text: str | bytes) -> str:
    """Decode ``%XX`` escapes; a ``%`` not followed by two hex digits is kept as it is."""
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if b"%" not in raw:
        return raw.decode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and _is_hex(raw[i + 1]) and _is_hex(raw[i + 2]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _is_hex(b: int) -> bool:
    return 48 <= b <= 57 or 65 <= b <= 70 or 97 <= b <= 102
