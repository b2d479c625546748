"""Real LangGraph databases for the tests: a StateGraph with a subgraph, two branches in one
super-step and a human approval (`interrupt()`), run on several threads through the official
savers (`SqliteSaver`, `PostgresSaver`), some threads resumed with `Command(resume=...)`, some
left waiting (their pending writes: the branch that finished, the interrupt).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

THREADS = ("approved", "rejected", "waiting", "long")
"""Thread ids written by `run_graph`: resumed yes, resumed no, left at the interrupt, many turns."""


class State(TypedDict, total=False):
    messages: Annotated[list[Any], operator.add]
    approved: bool
    notes: Annotated[list[str], operator.add]
    when: Any


def build_graph(checkpointer: Any) -> Any:
    import datetime as dt

    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def draft(state: State) -> State:
        turn = len(state.get("messages", []))
        return {
            "messages": [HumanMessage(content=f"draft {turn}"), AIMessage(content=f"proposal {turn}")],
            "when": dt.datetime(2026, 12, 4, 12, turn % 60, tzinfo=dt.UTC),
        }

    def ask(state: State) -> State:
        answer = interrupt({"question": "approve?", "draft": len(state.get("messages", []))})
        return {"approved": bool(answer), "notes": [f"answer {answer!r}"]}

    review = StateGraph(State)
    review.add_node("ask", ask)
    review.add_edge(START, "ask")
    review.add_edge("ask", END)

    def audit(state: State) -> State:
        return {"notes": ["audited"]}

    def finish(state: State) -> State:
        return {"messages": [AIMessage(content="sent" if state.get("approved") else "dropped")]}

    graph = StateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("review", review.compile())
    graph.add_node("audit", audit)
    graph.add_node("finish", finish)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")  # review (which interrupts) and audit run in one super-step
    graph.add_edge("draft", "audit")
    graph.add_edge(["review", "audit"], "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


def run_graph(checkpointer: Any) -> None:
    """Every thread of THREADS through the graph on this saver."""
    from langgraph.types import Command

    graph = build_graph(checkpointer)
    for thread in THREADS:
        config = {"configurable": {"thread_id": thread}}
        graph.invoke({"messages": [], "notes": []}, config)
        if thread == "approved":
            graph.invoke(Command(resume=True), config)
        elif thread == "rejected":
            graph.invoke(Command(resume=False), config)
        elif thread == "long":
            for turn in range(5):
                graph.invoke(Command(resume=turn % 2 == 0), config)
                graph.invoke({"messages": [], "notes": [f"turn {turn}"]}, config)


@contextmanager
def sqlite_saver(path: Path) -> Iterator[Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@contextmanager
def postgres_saver(url: str, *, setup: bool = True) -> Iterator[Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        if setup:
            saver.setup()
        yield saver


def write_sqlite(path: Path) -> None:
    with sqlite_saver(path) as saver:
        run_graph(saver)


def write_postgres(url: str) -> None:
    with postgres_saver(url) as saver:
        run_graph(saver)


# The DDL of langgraph-checkpoint-sqlite 1.0.0 to 3.0.x, as its SqliteSaver.setup() ran it
# (before `writes.task_path`).
SQLITE_BEFORE_TASK_PATH = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint BLOB,
    metadata BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    value BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
"""

# langgraph-checkpoint-postgres 1.0.0's tables (CREATE_*_SQL in its base.py): no
# checkpoint_migrations, checkpoint_blobs.blob NOT NULL, no checkpoint_writes.task_path.
POSTGRES_1_0 = (
    """CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
)""",
    """CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
)""",
    """CREATE TABLE IF NOT EXISTS checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
)""",
)


def sqlite_without_task_path(current: Path, old: Path) -> None:
    """The rows of a current saver's file in the tables an older release created."""
    db = sqlite3.connect(old)
    try:
        db.executescript(SQLITE_BEFORE_TASK_PATH)
        db.execute("ATTACH DATABASE ? AS cur", (str(current),))
        with db:
            db.execute("INSERT INTO checkpoints SELECT * FROM cur.checkpoints")
            db.execute(
                "INSERT INTO writes SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, "
                "type, value FROM cur.writes"
            )
        db.execute("DETACH DATABASE cur")
    finally:
        db.close()


def postgres_1_0(url: str) -> None:
    """A current PostgreSQL saver's rows, moved into langgraph-checkpoint-postgres 1.0's tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE checkpoint_migrations")
        conn.execute("ALTER TABLE checkpoints RENAME TO new_checkpoints")
        conn.execute("ALTER TABLE checkpoint_blobs RENAME TO new_blobs")
        conn.execute("ALTER TABLE checkpoint_writes RENAME TO new_writes")
        for statement in POSTGRES_1_0:
            conn.execute(statement)
        conn.execute("INSERT INTO checkpoints SELECT * FROM new_checkpoints")
        conn.execute("INSERT INTO checkpoint_blobs SELECT * FROM new_blobs WHERE blob IS NOT NULL")
        conn.execute(
            "INSERT INTO checkpoint_writes SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, type, blob FROM new_writes"
        )
        for table in ("new_checkpoints", "new_blobs", "new_writes"):
            conn.execute(f"DROP TABLE {table}")
