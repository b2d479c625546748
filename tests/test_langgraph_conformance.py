"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) on both ckptdb savers: every
base and extended capability it tests, on SQLite and PostgreSQL.

The suite drives only async methods (`aput`, `alist`, ...). `CkptdbSaver`'s async methods are its
sync ones run on a worker thread (`asyncio.to_thread`), so for the sync saver what it tests is the
synchronous code, called from a thread that is not the event loop's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import new_db_target
from test_langgraph_saver import opened

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_every_capability_passes(engine: str, kind: str, tmp_path: Path) -> None:
    target = new_db_target(engine, tmp_path)

    @checkpointer_test(name=f"{kind}-CkptdbSaver-{engine}")
    async def factory() -> AsyncIterator[Any]:
        async with opened(kind, target) as saver:
            yield saver

    report = await validate(factory)
    failures = {name: result.failures for name, result in report.results.items() if result.passed is not True}
    assert failures == {}
    assert set(report.results) == {capability.value for capability in ALL_CAPABILITIES}
    assert all(result.tests_passed > 0 for result in report.results.values())
