"""The canonical form of a checkpoint: how the importer and the exporter tell "the same checkpoint in
another layout" from different content."""

from __future__ import annotations

import hashlib
import json

from ckptdb.model import Checkpoint


def canonical_json(checkpoint: Checkpoint) -> str:
    """The fixtures manifest's canonical form (keys sorted at every level, compact, raw UTF-8):
    equal checkpoints give equal text, whatever the file's layout or key order."""
    return json.dumps(
        checkpoint.to_document(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def canonical_digest(checkpoint: Checkpoint) -> bytes:
    """A 16-byte digest of `canonical_json`: what a dry run remembers per id instead of the row."""
    text = canonical_json(checkpoint).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest()
