"""What the `ckptdb serve` tests share: a database of hostile and ordinary checkpoints on either
engine, and the real `ckptdb serve` process in front of it.

The hostile content is what the issue lists: graph names, node names, state values and pending
actions holding `<script>`, `onerror=`, `javascript:` links and `</script>`; a CJK graph name; a
10 MB state. Every page must show all of it as text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from ckptdb import Checkpoint, InterruptType, Timestamp, open_store

XSS_GRAPH = '审批流程 <script>alert("graph")</script>'
"""A CJK graph name with a script element in it."""
XSS_NODE = '<img src=x onerror=alert("node")>'
JS_GRAPH = 'javascript:alert("link")'
XSS_TOOL = 'send_refund</script><script>alert("tool")</script>'
XSS_NOTE = "<svg onload=alert('state')></svg> \" onerror=alert(1) x=\""
HUGE_GRAPH = "huge-state"
CALM_GRAPH = "客服机器人"
MESSAGE_1 = {"role": "user", "content": "退款 for order 4411, please"}
MESSAGE_2 = {"role": "assistant", "content": "<b>Looking it up</b> <a href=\"javascript:alert('a')\">x</a>"}


@dataclass(frozen=True, slots=True)
class Demo:
    """The ids of the interesting checkpoints of `build_demo`, oldest step first."""

    steps: tuple[str, ...]
    """XSS_GRAPH's three steps: beforenode, afternode (one message appended), toolapproval."""
    js: str
    huge: str
    calm: tuple[str, ...]


def _at(checkpoint: Checkpoint, text: str) -> Checkpoint:
    return dataclasses.replace(checkpoint, created_at=Timestamp.parse(text))


async def _build(target: str) -> Demo:
    values = {"approved": False, "amount": 42.5, "note": XSS_NOTE}
    step1 = _at(
        Checkpoint.new(
            XSS_GRAPH, "lookup_order", {"messages": [MESSAGE_1], "values": values}, ["start"], 1, "beforenode"
        ),
        "2026-11-20T10:00:01Z",
    )
    step2 = _at(
        Checkpoint.new(
            XSS_GRAPH,
            XSS_NODE,
            {"messages": [MESSAGE_1, MESSAGE_2], "values": {**values, "amount": 50}},
            ["start", "lookup_order"],
            2,
            "afternode",
        ),
        "2026-11-20T10:00:02Z",
    )
    step3 = _at(
        Checkpoint.new(
            XSS_GRAPH,
            "send_refund",
            {"messages": [MESSAGE_1, MESSAGE_2], "values": {**values, "amount": 50, "order": 4411}},
            ["start", "lookup_order", XSS_NODE],
            3,
            InterruptType.TOOL_APPROVAL,
            pending_action={
                "id": "call_1",
                "type": "function",
                "function": {"name": XSS_TOOL, "arguments": '{"amount":50,"url":"javascript:alert(2)"}'},
            },
        ),
        "2026-11-20T10:00:03Z",
    )
    js = _at(
        Checkpoint.new(JS_GRAPH, "ask", {"q": "</script>"}, [], 1, "userrequest"), "2026-11-20T09:00:00Z"
    )
    big = {"messages": [{"role": "tool", "content": "x" * 1000, "i": i} for i in range(10_000)]}
    huge = _at(Checkpoint.new(HUGE_GRAPH, "summarize", big, ["load"], 1, "afternode"), "2026-11-19T08:00:00Z")
    calm = [
        _at(
            Checkpoint.new(
                CALM_GRAPH,
                node,
                {"messages": [MESSAGE_1] * (i + 1), "values": {"step": i}},
                ["start", *["plan", "search", "draft"][:i]],
                i + 1,
                kind,
            ),
            f"2026-11-18T12:00:0{i}Z",
        )
        for i, (node, kind) in enumerate(
            [("plan", "beforenode"), ("search", "afternode"), ("draft", "afternode")]
        )
    ]
    async with await open_store(target) as store:
        for checkpoint in (step1, step2, step3, js, huge, *calm):
            await store.save(checkpoint)
    return Demo((step1.id, step2.id, step3.id), js.id, huge.id, tuple(c.id for c in calm))


def build_demo(target: str) -> Demo:
    """Fill `target`; on a thread of its own, so it works beside Playwright's sync API (whose
    event loop counts as running on the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _build(target)).result()


@contextmanager
def serving(target: str, *args: str) -> Iterator[str]:
    """`ckptdb --db TARGET serve --port 0 ARGS` as a real process; yields its base URL (no slash)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ckptdb", "--db", target, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("ckptdb serve: http://"):
            process.kill()
            raise AssertionError(f"serve did not start: {line!r} {process.communicate()[1]!r}")
        yield line.split()[2].rstrip("/")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


XSS_THREAD = '<script>alert("thread")</script> a/b?c=1&d'
"""A LangGraph thread id with markup and the characters a URL would split on."""
XSS_METADATA = '<img src=x onerror=alert("metadata")>'


async def _build_langgraph(target: str) -> None:
    from langgraph.types import Command

    from ckptdb.langgraph import AsyncCkptdbSaver
    from helpers import langgraph_graphs as lg

    async with await open_store(target) as store:
        graph = lg.build_graph(AsyncCkptdbSaver(store))
        for thread in ("approved", "waiting", XSS_THREAD):
            config: dict[str, object] = {
                "configurable": {"thread_id": thread},
                "metadata": {"note": XSS_METADATA},
            }
            await graph.ainvoke({"messages": [], "notes": []}, config)
            if thread == "approved":
                await graph.ainvoke(Command(resume=True), config)


def build_langgraph(target: str) -> None:
    """Run the real graph of helpers.langgraph_graphs on `target` through AsyncCkptdbSaver: thread
    `approved` resumed to the end, `waiting` and XSS_THREAD left at the approval (pending writes)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _build_langgraph(target)).result()
