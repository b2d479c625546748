"""A LangGraph graph with a tool approval (`interrupt()`) inside a subgraph, run one phase per
process: `start` runs until the approval, `resume` answers it with `Command(resume=...)`. Prints
what LangGraph returned and the state history as JSON, for tests/test_langgraph_saver.py to
compare with the same graph on LangGraph's InMemorySaver.

    python lg_graph.py DB THREAD start|resume|both [memory|sync]

`sync` runs it on the synchronous CkptdbSaver with `invoke`, `get_state` and `get_state_history`
(no event loop); otherwise on AsyncCkptdbSaver (or InMemorySaver) with their async twins.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from ckptdb.langgraph import AsyncCkptdbSaver, CkptdbSaver


class State(TypedDict):
    messages: Annotated[list[str], operator.add]
    approved: bool


def plan(state: State) -> dict[str, Any]:
    return {"messages": [f"plan: call the refund tool for {state['messages'][0]!r}"]}


def approve(state: State) -> dict[str, Any]:
    answer = interrupt({"tool": "refund", "amount": 42, "asked": len(state["messages"])})
    return {"messages": [f"approval: {answer}"], "approved": answer == "yes"}


def run_tool(state: State) -> dict[str, Any]:
    return {"messages": ["tool: refunded 42" if state["approved"] else "tool: skipped"]}


def finish(state: State) -> dict[str, Any]:
    return {"messages": [f"done after {len(state['messages'])} messages"]}


def build(checkpointer: Any) -> Any:
    tools = StateGraph(State)
    tools.add_node("approve", approve)
    tools.add_node("run_tool", run_tool)
    tools.add_edge(START, "approve")
    tools.add_edge("approve", "run_tool")
    tools.add_edge("run_tool", END)
    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("tools", tools.compile())
    graph.add_node("finish", finish)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "tools")
    graph.add_edge("tools", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


def plain(value: Any) -> Any:
    """What LangGraph returned, as JSON (Interrupt objects by their value)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "value") and type(value).__name__ == "Interrupt":
        return {"interrupt": plain(value.value)}
    return value


async def phase(graph: Any, config: dict[str, Any], which: str) -> list[Any]:
    out: list[Any] = []
    if which in ("start", "both"):
        out.append(plain(await graph.ainvoke({"messages": ["refund order 7"], "approved": False}, config)))
    if which in ("resume", "both"):
        out.append(plain(await graph.ainvoke(Command(resume="yes"), config)))
    state = await graph.aget_state(config, subgraphs=True)
    history = [
        {
            "values": plain(snapshot.values),
            "next": list(snapshot.next),
            "step": snapshot.metadata.get("step"),
            "source": snapshot.metadata.get("source"),
            "tasks": [[t.name, plain(t.interrupts)] for t in snapshot.tasks],
        }
        async for snapshot in graph.aget_state_history(config)
    ]
    return [out, {"values": plain(state.values), "next": list(state.next)}, history]


def sync_phase(graph: Any, config: dict[str, Any], which: str) -> list[Any]:
    out: list[Any] = []
    if which in ("start", "both"):
        out.append(plain(graph.invoke({"messages": ["refund order 7"], "approved": False}, config)))
    if which in ("resume", "both"):
        out.append(plain(graph.invoke(Command(resume="yes"), config)))
    state = graph.get_state(config, subgraphs=True)
    history = [
        {
            "values": plain(snapshot.values),
            "next": list(snapshot.next),
            "step": snapshot.metadata.get("step"),
            "source": snapshot.metadata.get("source"),
            "tasks": [[t.name, plain(t.interrupts)] for t in snapshot.tasks],
        }
        for snapshot in graph.get_state_history(config)
    ]
    return [out, {"values": plain(state.values), "next": list(state.next)}, history]


async def main() -> None:
    db, thread, which = sys.argv[1:4]
    config = {"configurable": {"thread_id": thread}}
    if len(sys.argv) > 4 and sys.argv[4] == "memory":
        print(json.dumps(await phase(build(InMemorySaver()), config, which)))
        return
    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        print(json.dumps(await phase(build(saver), config, which)))


if __name__ == "__main__":
    if sys.argv[4:5] == ["sync"]:
        with CkptdbSaver.from_conn_string(sys.argv[1]) as sync_saver:
            graph = build(sync_saver)
            print(json.dumps(sync_phase(graph, {"configurable": {"thread_id": sys.argv[2]}}, sys.argv[3])))
    else:
        asyncio.run(main())
