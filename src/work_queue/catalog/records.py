"""What a catalog record is: its key, and how one update packet becomes one.

Kept apart from ``server.py`` because the status pages (``page.py``) link to managers by the
same key the server files them under; both import it from here, so neither imports the other.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

#: Largest update accepted, before and after decompression (CCTools: 1 MB).
MAX_UPDATE = 1024 * 1024


def record_key(record: dict[str, Any]) -> str:
    """``address:port:name[:uuid]`` (CCTools ``make_hash_key``)."""
    port = record.get("port", 0)
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = 0
    name = record.get("name") if isinstance(record.get("name"), str) else "unknown"
    addr = record.get("address") if isinstance(record.get("address"), str) else "unknown"
    uuid = record.get("uuid")
    tail = f":{str(uuid)[:128]}" if isinstance(uuid, str) else ""
    return f"{addr}:{port}:{name}{tail}".replace(" ", "_").replace("\n", "_")


def parse_update(data: bytes) -> dict[str, Any]:
    """The record carried by one update packet; ValueError saying what is wrong with it."""
    if not data:
        raise ValueError("empty update")
    if len(data) > MAX_UPDATE:
        raise ValueError(f"update of {len(data)} bytes is larger than {MAX_UPDATE}")
    if data[0] == 0x1A:
        d = zlib.decompressobj()
        try:
            data = d.decompress(data[1:], MAX_UPDATE)
        except zlib.error as e:
            raise ValueError(f"invalid compressed data: {e}") from None
        if d.unconsumed_tail:
            raise ValueError(f"update larger than {MAX_UPDATE} bytes once decompressed")
    text = data.decode("utf-8", "replace").strip("\x00 \t\r\n")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError as e:
            raise ValueError(f"invalid JSON: {e}") from None
        if not isinstance(record, dict):
            raise ValueError("update is not a JSON object")
        return record
    return _parse_nvpairs(text)


def _parse_nvpairs(text: str) -> dict[str, Any]:
    """The legacy format: ``name value`` lines (values typed as CCTools ``nvpair_to_jx``);
    unlike CCTools, a ``type`` line is required, so stray text is not taken for a record."""
    record: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(" ")
        if not name.isprintable() or not value:
            raise ValueError("update is neither JSON nor 'name value' lines")
        record[name] = _typed(value.strip())
    if not record or "type" not in record:
        raise ValueError("update is neither JSON nor 'name value' lines with a type")
    return record


def _typed(value: str) -> Any:
    if value in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[value]
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    if value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value
