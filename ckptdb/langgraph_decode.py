"""A LangGraph checkpoint decoded for a person: JSON-able data through LangGraph's own serde, with
nothing unpickled or executed, and a path-level diff between two checkpoints.

The serde is langgraph-checkpoint's `JsonPlusSerializer` in its strict form whatever
`LANGGRAPH_STRICT_MSGPACK` says: `allowed_msgpack_modules=None` (a msgpack extension builds only
the types in LangGraph's `SAFE_MSGPACK_TYPES`: datetimes, UUIDs, messages, `Send`, `Interrupt`...;
any other type comes back as the raw arguments it was stored with, never imported or called),
`allowed_json_modules=None` (the same for the old `json` type) and no pickle fallback (a `pickle`
value is shown as undecoded, never loaded). A value the serde cannot read is shown as
`{"$undecoded": {"type": ..., "bytes": n, "error": ...}}` and the rest of the checkpoint still is.

langgraph-checkpoint is the optional extra `ckptdb[langgraph]`: this module imports it only when a
decode is asked for, and says in one line how to install it when it is missing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Mapping
from typing import Any

import orjson

from ckptdb.diff import Change, diff
from ckptdb.errors import CkptdbError
from ckptdb.langgraph_source import SourceCheckpoint, parse_metadata
from ckptdb.model import JsonValue

__all__ = ["INSTALL", "decode_checkpoint", "diff_checkpoints", "jsonable", "strict_serde"]

INSTALL = "pip install 'ckptdb[langgraph]'"


def strict_serde() -> Any:
    """LangGraph's JsonPlusSerializer with the strict allowlist (see the module docstring)."""
    try:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    except ImportError:
        raise CkptdbError(f"decoding LangGraph values needs langgraph-checkpoint: {INSTALL}") from None
    return JsonPlusSerializer(pickle_fallback=False, allowed_json_modules=None, allowed_msgpack_modules=None)


def _undecoded(type_: str | None, data: bytes | None, error: BaseException | str) -> JsonValue:
    if not isinstance(error, str):
        error = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    reason = error
    return {"$undecoded": {"type": type_, "bytes": len(data or b""), "error": reason}}


def _load(serde: Any, type_: str | None, data: bytes | None) -> JsonValue:
    if type_ == "pickle":
        return _undecoded(type_, data, "pickle is never loaded")
    if type_ is None:
        return _undecoded(type_, data, "no type stored")
    try:
        return jsonable(serde.loads_typed((type_, data if data is not None else b"")))
    except Exception as exc:  # the serde's own failures: one value shown as undecoded, not the record
        return _undecoded(type_, data, exc)


def jsonable(value: Any) -> JsonValue:
    """What the serde returned, as JSON: models by their fields (`model_dump`), dataclasses and
    plain objects by their attributes, datetimes in ISO 8601, bytes in base64, sets as lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item) for item in value), key=lambda item: orjson.dumps(item))
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if callable(getattr(value, "model_dump", None)):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$type": type(value).__name__, **fields}
    attributes = getattr(value, "__dict__", None)
    if attributes is None and hasattr(type(value), "__slots__"):
        attributes = {name: getattr(value, name) for name in type(value).__slots__ if hasattr(value, name)}
    if attributes:
        public = {k: jsonable(v) for k, v in attributes.items() if not k.startswith("_")}
        return {"$type": type(value).__name__, **public}
    return str(value)  # UUID, Decimal, Path, ZoneInfo, addresses: their usual spelling


def decode_checkpoint(record: SourceCheckpoint, serde: Any = None) -> dict[str, JsonValue]:
    """One checkpoint as JSON: its ids, metadata, the checkpoint's own fields, every channel value
    (by channel name) and the pending writes in LangGraph's order; nothing of the source is changed."""
    serde = strict_serde() if serde is None else serde
    if isinstance(record.checkpoint, str):  # PostgreSQL: JSONB, primitive values inline
        loaded: Any = orjson.loads(record.checkpoint)
        body = loaded if isinstance(loaded, dict) else {}
        values: dict[str, JsonValue] = dict(body.get("channel_values") or {})
        for blob in record.blobs:
            if blob.type != "empty":
                values[blob.channel] = _load(serde, blob.type, blob.data)
    else:
        decoded = _load(serde, record.type, record.checkpoint)
        body = decoded if isinstance(decoded, dict) else {"$checkpoint": decoded}
        raw_values = body.get("channel_values")
        values = dict(raw_values) if isinstance(raw_values, dict) else {}
    checkpoint = {key: value for key, value in body.items() if key != "channel_values"}
    # By channel name: PostgreSQL's JSONB keeps no order of its own, so both engines show one.
    values = {name: values[name] for name in sorted(values)}
    return {
        "thread_id": record.thread_id,
        "checkpoint_ns": record.checkpoint_ns,
        "checkpoint_id": record.checkpoint_id,
        "parent_checkpoint_id": record.parent_checkpoint_id,
        "metadata": parse_metadata(record.metadata),
        "checkpoint": checkpoint,
        "channel_values": values,
        "pending_writes": [
            {
                "task_id": write.task_id,
                "task_path": write.task_path if write.task_path is not None else "",
                "idx": write.idx,
                "channel": write.channel,
                "value": _load(serde, write.type, write.data),
            }
            for write in record.writes
        ],
    }


def diff_checkpoints(before: SourceCheckpoint, after: SourceCheckpoint, serde: Any = None) -> list[Change]:
    """What changed in the channel values from `before` to `after`, path by path (JSON pointers:
    `/messages/3` added, `/approved` changed), as `ckptdb.diff` compares echo states."""
    serde = strict_serde() if serde is None else serde
    old = decode_checkpoint(before, serde)["channel_values"]
    return diff(old, decode_checkpoint(after, serde)["channel_values"])
