"""Shared test fixtures: the real echo fixtures, the manifest's canonical hash, and the store registry.

Every contract test takes the `store` fixture, which is parametrized over `STORE_FACTORIES`: register a
backend there (name -> async factory taking a fresh directory) and the whole contract suite runs on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ckptdb import CheckpointStore, FileCheckpointStore, MemoryCheckpointStore, open_store

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE_DIR = SHARED_DIR / "fixtures" / "echo-0.1"
MANIFEST_PATH = SHARED_DIR / "fixtures" / "echo-0.1.MANIFEST.json"


def _require(path: Path) -> Path:
    """The shared data is part of the test suite: missing means broken checkout, never 'skip'."""
    if not path.exists():
        raise RuntimeError(
            f"missing {path}: the shared reference data must sit beside the repository "
            f"(expected {SHARED_DIR}); tests refuse to run without it"
        )
    return path


@functools.cache
def load_manifest() -> dict[str, Any]:
    """The parsed fixture manifest (usable at collection time, e.g. for parametrize)."""
    manifest: dict[str, Any] = json.loads(_require(MANIFEST_PATH).read_text(encoding="utf-8"))
    _require(FIXTURE_DIR)
    if len(manifest["files"]) != 300:
        raise RuntimeError(f"{MANIFEST_PATH} lists {len(manifest['files'])} files, expected 300")
    return manifest


def canonical_sha256(data: bytes | str) -> str:
    """The manifest's `sha256_canonical_recipe`, exactly:

    sha256(json.dumps(json.loads(file_bytes.decode("utf-8")), sort_keys=True, ensure_ascii=False,
    separators=(",", ":"), allow_nan=False).encode("utf-8"))
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    canonical = json.dumps(
        json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return _require(FIXTURE_DIR)


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return load_manifest()


# ── store factory registry ────────────────────────────────────────────────────────────────────────

StoreFactory = Callable[[Path], Awaitable[CheckpointStore]]


async def _memory_store(tmp_path: Path) -> CheckpointStore:
    return MemoryCheckpointStore()


async def _file_store(tmp_path: Path) -> CheckpointStore:
    return FileCheckpointStore(tmp_path / "ckpts")


async def _sqlite_store(tmp_path: Path) -> CheckpointStore:
    return await open_store(tmp_path / "checkpoints.db")


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": _memory_store,
    "files": _file_store,
    "sqlite": _sqlite_store,
}
"""Backend name -> async factory creating an empty store under the given (fresh) directory."""

STORE_MARKS: dict[str, list[pytest.MarkDecorator]] = {}
"""Optional marks per backend name, e.g. {"postgres": [pytest.mark.postgres]}."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrized at collection time (not at import), so entries registered anywhere before
    # collection are picked up.
    if "store" in metafunc.fixturenames:
        names = list(STORE_FACTORIES)
        metafunc.parametrize(
            "store",
            [pytest.param(name, marks=STORE_MARKS.get(name, ()), id=name) for name in names],
            indirect=True,
        )


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    """An empty store of one registered backend, created in tmp_path and closed afterwards."""
    factory = STORE_FACTORIES[request.param]
    created = await factory(tmp_path)
    try:
        yield created
    finally:
        await created.close()
