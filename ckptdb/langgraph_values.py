"""A LangGraph checkpoint's channel values as exact `(type, bytes)` pairs, one per channel and
version, on both savers' layouts, with nothing decoded, re-encoded or imported.

PostgreSQL's saver stores them so already (`checkpoint_blobs`, plus the primitive values inline in
the JSONB checkpoint). SQLite's saver stores the whole checkpoint as one msgpack document, its
values inside `channel_values`: each value there is a complete msgpack object (ormsgpack encodes a
nested value, extension types included, exactly as it encodes that value alone), so its bytes are
cut out of the document as they are, by walking msgpack's framing (lengths and counts) without
building any value but the map keys and the versions. `("msgpack", slice)` is what LangGraph's
serde loads back to the same value.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ckptdb.errors import CkptdbError
from ckptdb.langgraph_source import ChannelBlob, SourceCheckpoint

__all__ = ["MsgpackFramingError", "channel_values"]


class MsgpackFramingError(CkptdbError):
    """A checkpoint whose msgpack bytes end early or hold a byte no msgpack object starts with."""


# Bytes after the first: (fixed payload, length-field size) by msgpack type byte.
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED |= {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin, str: length then bytes
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # length, a type byte, then bytes
_ARRAY = {0xDC: 2, 0xDD: 4}
_MAP = {0xDE: 2, 0xDF: 4}


def _uint(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise MsgpackFramingError("checkpoint msgpack ends inside a length")
    return int.from_bytes(data[pos : pos + size], "big")


def _header(data: bytes, pos: int) -> tuple[int, int]:
    """(end of this object's own bytes, how many objects follow inside it) for the object at pos."""
    if pos >= len(data):
        raise MsgpackFramingError("checkpoint msgpack ends early")
    b = data[pos]
    if b <= 0x7F or b >= 0xE0:
        return pos + 1, 0
    if 0x80 <= b <= 0x8F:
        return pos + 1, 2 * (b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return pos + 1, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return pos + 1 + (b & 0x1F), 0
    if b in _FIXED:
        return pos + 1 + _FIXED[b], 0
    if b in _SIZED:
        size = _SIZED[b]
        return pos + 1 + size + _uint(data, pos + 1, size), 0
    if b in _EXT:
        size = _EXT[b]
        return pos + 2 + size + _uint(data, pos + 1, size), 0
    if b in _ARRAY:
        size = _ARRAY[b]
        return pos + 1 + size, _uint(data, pos + 1, size)
    if b in _MAP:
        size = _MAP[b]
        return pos + 1 + size, 2 * _uint(data, pos + 1, size)
    raise MsgpackFramingError(f"byte 0x{b:02x} at {pos} starts no msgpack object")


def _skip(data: bytes, pos: int) -> int:
    """The end of the object starting at pos (nested ones included), without recursion. The
    commonest objects of a checkpoint (small ints, short strings, small maps and arrays) are
    stepped over here without a call: this loop is most of an import's time."""
    pending = 1
    size = len(data)
    while pending:
        if pos >= size:
            raise MsgpackFramingError("checkpoint msgpack ends early")
        b = data[pos]
        if b <= 0x7F or b >= 0xE0:
            pos += 1
            pending -= 1
        elif b >= 0xA0 and b <= 0xBF:
            pos += 1 + (b & 0x1F)
            pending -= 1
        elif b <= 0x8F:  # 0x80..0x8f: a fixmap
            pos += 1
            pending += 2 * (b & 0x0F) - 1
        elif b <= 0x9F:  # 0x90..0x9f: a fixarray
            pos += 1
            pending += (b & 0x0F) - 1
        elif b == 0xD9:  # str8
            if pos + 1 >= size:
                raise MsgpackFramingError("checkpoint msgpack ends inside a length")
            pos += 2 + data[pos + 1]
            pending -= 1
        else:
            pos, inside = _header(data, pos)
            pending += inside - 1
    if pos > size:
        raise MsgpackFramingError("checkpoint msgpack ends inside a value")
    return pos


def _scalar(data: bytes, pos: int) -> tuple[object, int]:
    """A map key or version: str, int, float, bool or nil; anything else as its raw bytes."""
    end = _skip(data, pos)
    b = data[pos]
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
        start = pos + 1 + {0xD9: 1, 0xDA: 2, 0xDB: 4}.get(b, 0)
        return data[start:end].decode("utf-8", "surrogateescape"), end
    if b <= 0x7F:
        return b, end
    if b >= 0xE0:
        return b - 0x100, end
    if b in (0xCC, 0xCD, 0xCE, 0xCF):
        return int.from_bytes(data[pos + 1 : end], "big"), end
    if b in (0xD0, 0xD1, 0xD2, 0xD3):
        return int.from_bytes(data[pos + 1 : end], "big", signed=True), end
    if b in (0xCA, 0xCB):
        return struct.unpack(">f" if b == 0xCA else ">d", data[pos + 1 : end])[0], end
    if b in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[b], end
    return bytes(data[pos:end]), end


def _map_items(data: bytes, pos: int) -> list[tuple[object, int, int]]:
    """(key, value start, value end) of the map at pos."""
    end, inside = _header(data, pos)
    b = data[pos]
    if not (0x80 <= b <= 0x8F or b in _MAP):
        raise MsgpackFramingError(f"expected a msgpack map at {pos}, found byte 0x{b:02x}")
    items = []
    pos = end
    for _ in range(inside // 2):
        key, pos = _scalar(data, pos)
        value_end = _skip(data, pos)
        items.append((key, pos, value_end))
        pos = value_end
    return items


def channel_values(record: SourceCheckpoint) -> tuple[ChannelBlob, ...] | None:
    """Every channel value of the checkpoint with its version, as stored. PostgreSQL: its blobs
    (the values inline in the JSONB are not blobs: they are plain JSON in `record.checkpoint`).
    SQLite: the msgpack slices of `channel_values`, each `("msgpack", bytes)`, version from
    `channel_versions` ('' for a channel that has none). None for a checkpoint not stored as
    msgpack (LangGraph's old `json` type): its values can only be had by decoding it."""
    if isinstance(record.checkpoint, str):
        return record.blobs
    if record.type != "msgpack":
        return None
    data = record.checkpoint
    top = {key: (start, end) for key, start, end in _map_items(data, 0)}
    if "channel_values" not in top:
        return ()
    versions: dict[object, object] = {}
    if "channel_versions" in top:
        for key, start, _ in _map_items(data, top["channel_versions"][0]):
            versions[key] = _scalar(data, start)[0]
    blobs = []
    for key, start, end in _map_items(data, top["channel_values"][0]):
        version = str(versions[key]) if key in versions else ""
        blobs.append(ChannelBlob(str(key), version, "msgpack", bytes(data[start:end])))
    return tuple(blobs)


# -- the pieces an import needs to store a checkpoint as ckptdb's saver does, without decoding ------

_ARRAY_HEADS = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_SCALAR_HEADS = frozenset(range(0x00, 0x80)) | frozenset(range(0xE0, 0x100))
_SCALAR_HEADS |= {0xC0, 0xC2, 0xC3, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3}
_STR_HEADS = frozenset(range(0xA0, 0xC0)) | {0xD9, 0xDA, 0xDB}


def map_entries(data: bytes, pos: int = 0) -> list[tuple[object, int, int, int]]:
    """(key, key start, value start, value end) of each entry of the map at pos, in stored order."""
    end, inside = _header(data, pos)
    b = data[pos]
    if not (0x80 <= b <= 0x8F or b in _MAP):
        raise MsgpackFramingError(f"expected a msgpack map at {pos}, found byte 0x{b:02x}")
    entries = []
    pos = end
    for _ in range(inside // 2):
        key, value_start = _scalar(data, pos)
        value_end = _skip(data, value_start)
        entries.append((key, pos, value_start, value_end))
        pos = value_end
    return entries


def map_header(count: int) -> bytes:
    """The msgpack header of a map of `count` entries (the shortest form, as ormsgpack writes it)."""
    if count < 16:
        return bytes([0x80 | count])
    if count < 0x10000:
        return b"\xde" + count.to_bytes(2, "big")
    return b"\xdf" + count.to_bytes(4, "big")


def array_header(count: int) -> bytes:
    """The msgpack header of an array of `count` items (the shortest form, as ormsgpack writes it)."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def array_items(data: bytes) -> list[bytes] | None:
    """The items of a msgpack value that is an array (a Python list, as LangGraph's serde writes
    one), each its own complete msgpack bytes; None when the value is not an array."""
    if not data or data[0] not in _ARRAY_HEADS:
        return None
    pos, count = _header(data, 0)
    items = []
    for _ in range(count):
        end = _skip(data, pos)
        items.append(data[pos:end])
        pos = end
    if pos != len(data):
        raise MsgpackFramingError("a msgpack list value has bytes after its last item")
    return items


def is_small_scalar(data: bytes, longest_text: int) -> bool:
    """Whether the msgpack value is one the saver keeps in the checkpoint's own blob: nil, a bool,
    an int, a float, or a str of at most `longest_text` characters (`ckptdb.langgraph.codec`)."""
    if not data:
        return False
    b = data[0]
    if b in _SCALAR_HEADS:
        return True
    if b in _STR_HEADS:
        text, _ = _scalar(data, 0)
        return isinstance(text, str) and len(text) <= longest_text
    return False


def scalar(data: bytes, pos: int = 0) -> object:
    """A version or key at pos: str, int, float, bool or None (anything else as its raw bytes)."""
    return _scalar(data, pos)[0]


@dataclass(frozen=True, slots=True)
class CheckpointLayout:
    """Where the parts of an SQLite saver's msgpack checkpoint are, found in one pass."""

    top: list[tuple[object, int, int, int]]
    """(key, key start, value start, value end) of each top-level entry."""
    values: list[tuple[object, int, int, int, list[int] | None]]
    """The same for each entry of `channel_values`, and for an array value the offsets where its
    items start, followed by its end (None for a value that is not an array)."""
    versions: dict[str, object]
    """`channel_versions`, channel -> version."""


def checkpoint_layout(data: bytes) -> CheckpointLayout:
    """`map_entries` of the checkpoint, of its `channel_values` and the items of every list value
    there, and its `channel_versions`, walking each byte of the checkpoint once."""
    end, inside = _header(data, 0)
    b = data[0]
    if not (0x80 <= b <= 0x8F or b in _MAP):
        raise MsgpackFramingError(f"expected a msgpack map at 0, found byte 0x{b:02x}")
    top: list[tuple[object, int, int, int]] = []
    values: list[tuple[object, int, int, int, list[int] | None]] = []
    versions: dict[str, object] = {}
    pos = end
    for _ in range(inside // 2):
        key, value_start = _scalar(data, pos)
        if key == "channel_values":
            value_end = _channel_values(data, value_start, values)
        elif key == "channel_versions":
            value_end = _skip(data, value_start)
            for channel, _, start, _ in map_entries(data, value_start):
                versions[str(channel)] = _scalar(data, start)[0]
        else:
            value_end = _skip(data, value_start)
        top.append((key, pos, value_start, value_end))
        pos = value_end
    return CheckpointLayout(top, values, versions)


def _channel_values(data: bytes, pos: int, into: list[tuple[object, int, int, int, list[int] | None]]) -> int:
    end, inside = _header(data, pos)
    b = data[pos]
    if not (0x80 <= b <= 0x8F or b in _MAP):
        raise MsgpackFramingError(f"expected a msgpack map at {pos}, found byte 0x{b:02x}")
    pos = end
    for _ in range(inside // 2):
        key, value_start = _scalar(data, pos)
        if value_start < len(data) and data[value_start] in _ARRAY_HEADS:
            item, count = _header(data, value_start)
            offsets = [item]
            for _ in range(count):
                item = _skip(data, item)
                offsets.append(item)
            value_end: int = item
            items: list[int] | None = offsets
        else:
            value_end, items = _skip(data, value_start), None
        into.append((key, pos, value_start, value_end, items))
        pos = value_end
    return pos
