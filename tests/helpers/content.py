"""Checkpoint content that is a pure function of (id, version), so a test can recompute exactly
what a child process saved, and compare byte for byte (`to_json`) what it loads back.

The content is deliberately awkward: U+0000, emoji and non-ASCII text, integers beyond 2^64 and
negative ones, floats over the whole exponent range, 2^64-1 step counts, nanosecond times with
offsets and odd fraction widths, newer-echo extra fields, and payload sizes from a few bytes to
a few hundred KiB (so a kill can land inside a multi-page write).
"""

from __future__ import annotations

import base64
import random
from typing import Any

from ckptdb import Checkpoint, InterruptType, Timestamp

BASE_NANOS = 1_793_667_827_000_000_000  # 2026-11-03T01:03:47Z
_NODES = ("plan", "search", "tool", "review", "__end__")
_TEXT = ("hello", "naïve café", "日本語", "emoji 🚀🧪", "nul\x00inside", 'quote " back\\slash', "tab\tnl\n")


def version_of(checkpoint: Checkpoint) -> int:
    """The version a checkpoint made here carries (in its state)."""
    return int(checkpoint.state_snapshot["values"]["version"])


def payload_size(rng: random.Random) -> int:
    """Mostly small, some multi-page, one in a hundred a few hundred KiB (about 5 KB on average)."""
    roll = rng.random()
    if roll < 0.80:
        return rng.randrange(0, 2_000)
    if roll < 0.99:
        return rng.randrange(2_000, 20_000)
    return rng.randrange(100_000, 300_000)


def make_checkpoint(checkpoint_id: str, version: int = 0) -> Checkpoint:
    """The checkpoint saved under this id at this version; the same on every call, in every process."""
    # bytes seeds are hashed with SHA-512: stable across processes and runs (surrogatepass: any str id)
    rng = random.Random(checkpoint_id.encode("utf-8", "surrogatepass") + f"/{version}".encode())
    size = payload_size(rng)
    messages: list[dict[str, Any]] = [
        {
            "role": rng.choice(("user", "assistant", "tool")),
            "content": rng.choice(_TEXT) * rng.randrange(1, 4),
        }
        for _ in range(rng.randrange(0, 5))
    ]
    if size:
        image = base64.b64encode(rng.randbytes(size * 3 // 4 + 1)).decode("ascii")
        messages.append({"role": "user", "image_base64": image})
    values: dict[str, Any] = {
        "version": version,
        "id": checkpoint_id,
        "big": 2**64 + rng.randrange(10**6),
        "neg": -rng.randrange(2**70),
        "float": rng.random() * 10.0 ** rng.randrange(-300, 300),
        "tiny": 5e-324,
        "flags": [True, False, None],
        "empty": {"list": [], "dict": {}, "text": ""},
        "nested": {"z": {"y": {"x": [rng.randrange(100) for _ in range(rng.randrange(5))]}}},
    }
    offset = rng.choice((None, None, None, 480, -300))
    digits = rng.choice((None, None, None, 9))
    created = Timestamp(BASE_NANOS + rng.randrange(10**16), offset, digits)
    pending = None if rng.random() < 0.6 else {"tool": "search", "args": {"q": rng.choice(_TEXT)}}
    extra: dict[str, Any] = {}
    if rng.random() < 0.3:
        extra = {"parent_checkpoint_id": f"{checkpoint_id}-parent", "tags": ["a", "ü"], "branch": None}
    return Checkpoint(
        id=checkpoint_id,
        graph_name=f"graph-{rng.randrange(4)}",
        current_node=rng.choice(_NODES),
        state_snapshot={"current_node": rng.choice((None, *_NODES)), "messages": messages, "values": values},
        path=[rng.choice(_NODES) for _ in range(rng.randrange(0, 6))],
        step_count=rng.choice((0, rng.randrange(1, 1000), 2**63 - 1, 2**64 - 1)),
        created_at=created,
        pending_action=pending,
        interrupt_type=rng.choice(list(InterruptType)),
        extra=extra,
    )


def check_intact(loaded: Checkpoint | None, checkpoint_id: str, min_version: int = 0) -> str | None:
    """None when `loaded` is exactly what make_checkpoint wrote for some version >= min_version,
    else a one-line description of what is wrong (for an assertion message)."""
    if loaded is None:
        return f"{checkpoint_id}: missing"
    if loaded.id != checkpoint_id:
        return f"{checkpoint_id}: loaded id {loaded.id!r}"
    try:
        version = version_of(loaded)
    except (KeyError, TypeError, ValueError) as exc:
        return f"{checkpoint_id}: state has no version ({exc!r})"
    if version < min_version:
        return f"{checkpoint_id}: version {version} older than acknowledged {min_version}"
    expected = make_checkpoint(checkpoint_id, version)
    # to_json is the exact echo text: key sets, float bits (-0.0), bool vs int, nanoseconds, offsets.
    if loaded.to_json() != expected.to_json():
        return f"{checkpoint_id}: version {version} content differs from what was saved"
    return None
