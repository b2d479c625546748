"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) on AsyncCkptdbSaver: every
base and extended capability it tests, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import new_db_target

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from ckptdb.langgraph import AsyncCkptdbSaver


async def test_every_capability_passes(engine: str, tmp_path: Path) -> None:
    target = new_db_target(engine, tmp_path)

    @checkpointer_test(name=f"AsyncCkptdbSaver-{engine}")
    async def factory() -> AsyncIterator[AsyncCkptdbSaver]:
        async with AsyncCkptdbSaver.from_conn_string(target) as saver:
            yield saver

    report = await validate(factory)
    failures = {name: result.failures for name, result in report.results.items() if result.passed is not True}
    assert failures == {}
    assert set(report.results) == {capability.value for capability in ALL_CAPABILITIES}
    assert all(result.tests_passed > 0 for result in report.results.values())
