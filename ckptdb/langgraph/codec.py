"""LangGraph checkpoints <-> the rows of `ckptdb.sql.langgraph`, for every saver (async and sync).

What is stored is what the saver's `serde` wrote, `(type, bytes)`, and what is read back is given
to the same serde's `loads_typed` unchanged: an encrypted serde, LANGGRAPH_STRICT_MSGPACK and
`with_allowlist()` (which clones the saver with another serde) all apply as they do in LangGraph's
own savers, because this module only ever calls `saver.serde`.

Storage that grows with the conversation, not its square. LangGraph's savers store every channel
value whole at every step it changes, so a chat whose `messages` list gains one message per step
stores 1 + 2 + ... + n messages (337 MB for 1,000 steps of 500-byte messages with AsyncSqliteSaver).
Here a list version whose items begin with those of a version stored before (the common case: a
reducer appended) stores only a segment, itself a serde blob of a slice of the list, and a link to
the version holding the segment before it. Stored one item per row, a 1,000-message chat read
back as 1,000 rows and 1,000 `loads_typed` calls at every step (18.7 ms per `aget_tuple`, against
0.34 ms for AsyncSqliteSaver's one blob); so a new segment swallows the segments before it that are
not longer than itself (a binary counter): a list of n items is at most log2(n) + 1 segments, read
in one recursive query as that many blobs, and each item is written O(log n) times over the whole
conversation instead of once per step. Which versions to compare with comes from a small
per-process cache of recent list versions (item digests and segments, never the items); a miss, an
edited or shortened list, or another process's version simply stores the list as one segment, so
correctness never depends on the cache. A read checks that the segments cover the list's length.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ckptdb.errors import CkptdbError, StoreError
from ckptdb.sql.langgraph import CheckpointKey, Key, Row, version_key

LIST_VERSIONS_KEPT = 4
"""Recent list versions remembered per channel: the one a step extends is nearly always the last;
a fork from the step before it, the one before."""
LIST_CHANNELS_KEPT = 1024
"""Channels (per thread and namespace) remembered; the least recently written are forgotten."""


def next_version(current: str | int | float | None) -> str:
    """LangGraph's SQL savers' versions: a counter and a random part, so two forks of one parent
    never draw the same version of a channel (values are stored once per version)."""
    if current is None:
        number = 0
    elif isinstance(current, (int, float)):
        number = int(current)
    else:
        number = int(current.split(".")[0])
    return f"{number + 1:032}.{random.random():016}"


def _blob(data: bytes) -> memoryview:
    """Binary values travel as memoryviews: every driver binds them as BLOB/bytea, and the
    PostgreSQL backend's text checks leave them alone."""
    return memoryview(data)


def _digest(pair: tuple[str, bytes]) -> bytes:
    return hashlib.blake2b(pair[1], digest_size=16, person=pair[0].encode()[:16]).digest()


Segments = tuple[tuple[str, int], ...]
"""A list version's segments, in order: (the version that stored it, its first position)."""


class ListVersions:
    """Recent list versions of this process's saves: (thread, namespace, channel) -> [(version
    key, item digests, segments)], the newest last. Updated only once a save has committed."""

    def __init__(self) -> None:
        self._recent: OrderedDict[tuple[str, str, str], list[tuple[str, list[bytes], Segments]]] = (
            OrderedDict()
        )

    def base_for(self, where: tuple[str, str, str], digests: list[bytes]) -> tuple[int, Segments] | None:
        """The longest remembered version whose items begin this list: (its length, segments)."""
        best: tuple[int, Segments] | None = None
        for _version, known, segments in self._recent.get(where, ()):
            size = len(known)
            if size <= len(digests) and (best is None or size > best[0]) and digests[:size] == known:
                best = (size, segments)
        return best

    def remember(
        self, where: tuple[str, str, str], version: str, digests: list[bytes], segments: Segments
    ) -> None:
        versions = self._recent.pop(where, [])
        versions.append((version, digests, segments))
        self._recent[where] = versions[-LIST_VERSIONS_KEPT:]
        while len(self._recent) > LIST_CHANNELS_KEPT:
            self._recent.popitem(last=False)

    def forget(self, thread_ids: Sequence[str] | None = None) -> None:
        """After deletes and prunes: a remembered version may be gone (None: every thread)."""
        if thread_ids is None:
            self._recent.clear()
            return
        gone = set(thread_ids)
        for where in [w for w in self._recent if w[0] in gone]:
            del self._recent[where]


_SHARED: weakref.WeakValueDictionary[str, ListVersions] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def list_versions_for(database: str) -> ListVersions:
    """The one cache of a database in this process, shared by every saver open on it (async and
    sync): a thread one saver deletes or prunes is forgotten by all, so no saver extends a list
    version that went with it (with a cache each, the other saver stored no items over a base
    that was gone, and the thread no longer read back). Kept while a saver holds it."""
    with _SHARED_LOCK:
        found = _SHARED.get(database)
        if found is None:
            found = _SHARED[database] = ListVersions()
        return found


class EncodedPut:
    """One `put` as rows, and what the list cache learns once they are committed."""

    __slots__ = ("checkpoint", "config", "items", "learned", "references", "values")

    def __init__(self) -> None:
        self.checkpoint: Row = ()
        self.values: list[Row] = []
        self.items: list[Row] = []
        self.references: list[Row] = []
        """Value keys (thread, namespace, channel, version) the checkpoint reads but this put does
        not write: unchanged channels' versions and the versions new list segments extend. They
        must still be stored when the put commits (`ckptdb.sql.langgraph.REQUIRE_VALUE`)."""
        self.learned: list[tuple[tuple[str, str, str], str, list[bytes], Segments]] = []
        self.config: RunnableConfig = {}


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


INLINE_TEXT = 256
"""Longest str kept in the checkpoint's own blob."""


def _inline(value: Any) -> bool:
    """Small scalars stay in the checkpoint's blob, as LangGraph's PostgreSQL saver keeps them in its
    checkpoint row: a flat state's `aput` is then one statement (a commit without a transaction
    around several), and a scalar is a few bytes where a value row costs a key of four texts."""
    kind = type(value)
    return (
        value is None
        or kind is bool
        or kind is int
        or kind is float
        or (kind is str and len(value) <= INLINE_TEXT)
    )


def _plain_serde(serde: SerializerProtocol) -> SerializerProtocol:
    """The serde whose bytes say whether two items are the same: an encrypted serde's inner one
    (its ciphertexts differ every time)."""
    inner = getattr(serde, "serde", None) if isinstance(serde, EncryptedSerializer) else None
    return inner if inner is not None else serde


def metadata_json(config: RunnableConfig, metadata: CheckpointMetadata) -> str:
    md = get_serializable_checkpoint_metadata(config, metadata)
    try:
        return json.dumps(md)
    except (TypeError, ValueError) as exc:
        raise CkptdbError(
            f"checkpoint metadata must be JSON (str, int, float, bool, None, lists, dicts): {exc}; "
            "nothing was written"
        ) from None


def encode_put(
    serde: SerializerProtocol,
    lists: ListVersions,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    *,
    whole: bool = False,
) -> EncodedPut:
    """The rows of one `put`. `whole`: every channel of the checkpoint written again, lists whole
    (no segment of an earlier version), so it references nothing stored before: what a put does
    once a value it would have referenced turned out to be gone (deleted or pruned meanwhile)."""
    configurable = config["configurable"]
    thread_id = str(configurable["thread_id"])
    ns = str(configurable.get("checkpoint_ns", ""))
    put = EncodedPut()
    values = checkpoint["channel_values"]
    inline = {channel: value for channel, value in values.items() if _inline(value)}
    plain = _plain_serde(serde)
    if whole:
        new_versions = checkpoint["channel_versions"]
    put.references = [
        (thread_id, ns, channel, version_key(version))
        for channel, version in checkpoint["channel_versions"].items()
        if channel not in inline and channel not in new_versions
    ]
    for channel, version in new_versions.items():
        if channel in inline:
            continue
        vkey = version_key(version)
        if channel not in values:
            put.values.append((thread_id, ns, channel, vkey, "empty", None, None, None, None))
            continue
        value = values[channel]
        if type(value) is not list:
            kind, data = serde.dumps_typed(value)
            put.values.append((thread_id, ns, channel, vkey, "value", kind, _blob(data), None, None))
            continue
        digests = [_digest(plain.dumps_typed(item)) for item in value]
        where = (thread_id, ns, channel)
        base = None if whole else lists.base_for(where, digests)
        size, segments = (0, ()) if base is None else base
        start = size
        kept = list(segments)
        if len(value) > size:
            # Binary-counter merging: the new items' segment swallows every segment before it that
            # is not longer, so a list of n items is O(log n) segments (read as that many blobs)
            # and each item is stored again O(log n) times over the whole conversation.
            while kept and start - kept[-1][1] <= len(value) - start:
                start = kept.pop()[1]
        base_version = kept[-1][0] if kept else None
        if base_version is not None:
            put.references.append((thread_id, ns, channel, base_version))
        put.values.append((thread_id, ns, channel, vkey, "list", None, None, base_version, len(value)))
        if len(value) > start:
            kind, data = serde.dumps_typed(value[start:])
            put.items.append((thread_id, ns, channel, vkey, start, kind, _blob(data)))
            kept.append((vkey, start))
        put.learned.append((where, vkey, digests, tuple(kept)))
    stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    stored["channel_values"] = inline
    kind, data = serde.dumps_typed(stored)
    step = metadata.get("step")
    run_id = metadata.get("run_id")
    put.checkpoint = (
        thread_id,
        ns,
        checkpoint["id"],
        get_checkpoint_id(config),
        step if isinstance(step, int) and not isinstance(step, bool) else None,
        run_id if isinstance(run_id, str) else None,
        kind,
        _blob(data),
        metadata_json(config, metadata),
        orjson.dumps(checkpoint["channel_versions"]).decode(),
        json.dumps(sorted(inline)),
    )
    put.config = _config(thread_id, ns, checkpoint["id"])
    return put


def encode_writes(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> tuple[list[Row], bool]:
    """Rows for `put_writes`, and whether they replace what is stored (only special writes do,
    as in LangGraph's savers: errors, interrupts and resumes take fixed negative indexes)."""
    configurable = config["configurable"]
    thread_id = str(configurable["thread_id"])
    ns = str(configurable.get("checkpoint_ns", ""))
    checkpoint_id = str(configurable["checkpoint_id"])
    rows: list[Row] = []
    for idx, (channel, value) in enumerate(writes):
        kind, data = serde.dumps_typed(value)
        rows.append(
            (
                thread_id,
                ns,
                checkpoint_id,
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                kind,
                _blob(data),
            )
        )
    return rows, all(channel in WRITES_IDX_MAP for channel, _ in writes)


def parse_json(value: Any) -> Any:
    """A JSON column as the driver returns it (text; asyncpg gives `json` as text too)."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def value_keys(row: Row) -> list[Key]:
    """The value keys one checkpoint row (`CHECKPOINT_COLUMNS`) reads."""
    versions = parse_json(row[7])
    inline = set(parse_json(row[8]))
    return [
        (row[0], row[1], channel, version_key(version))
        for channel, version in versions.items()
        if channel not in inline
    ]


def load_value(
    serde: SerializerProtocol, key: Key, stored: Row | None, items: dict[Key, list[Row]]
) -> tuple[bool, Any]:
    """(found, value) of one stored value row (kind, type, value, base_version, length)."""
    if stored is None or stored[0] == "empty":
        return False, None
    if stored[0] == "value":
        return True, serde.loads_typed((stored[1], bytes(stored[2])))
    whole: list[Any] = []
    for pos, kind, data in items.get(key, []):
        if pos != len(whole):
            break
        part = serde.loads_typed((kind, bytes(data)))
        if not isinstance(part, list):
            break
        whole.extend(part)
    if len(whole) != stored[4]:
        raise StoreError(
            f"thread {key[0]!r}: channel {key[2]!r} at version {key[3]!r} is damaged (list items are "
            "missing: a version it extends was deleted by hand or by another process's prune); restore "
            "a backup, or delete the thread"
        )
    return True, whole


def decode_tuple(
    serde: SerializerProtocol,
    row: Row,
    values: dict[Key, Row],
    items: dict[Key, list[Row]],
    writes: dict[CheckpointKey, list[Row]],
) -> CheckpointTuple:
    thread_id, ns, checkpoint_id, parent_id, kind, data = row[:6]
    checkpoint: Checkpoint = serde.loads_typed((kind, bytes(data)))
    channel_values: dict[str, Any] = dict(checkpoint.get("channel_values") or {})
    for key in value_keys(row):
        found, value = load_value(serde, key, values.get(key), items)
        if found:
            channel_values[key[2]] = value
    checkpoint["channel_values"] = channel_values
    pending = [
        (task_id, channel, serde.loads_typed((wkind, bytes(wdata))))
        for task_id, channel, wkind, wdata in writes.get((thread_id, ns, checkpoint_id), [])
    ]
    return CheckpointTuple(
        config=_config(thread_id, ns, checkpoint_id),
        checkpoint=checkpoint,
        metadata=parse_json(row[6]),
        parent_config=_config(thread_id, ns, parent_id) if parent_id else None,
        pending_writes=pending,
    )
