"""Resume one thread of `langgraph_graphs.build_graph` in this process and print, as one JSON line,
what LangGraph returned, the final state and the whole state history.

    python lg_resume.py ckptdb|sqlite|postgres DB THREAD RESUME_JSON

`ckptdb` resumes on AsyncCkptdbSaver (async), `sqlite` / `postgres` on LangGraph's own savers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ckptdb.langgraph_decode import jsonable
from helpers import langgraph_graphs as lg


def _snapshot(state: Any) -> dict[str, Any]:
    return {
        "values": jsonable(state.values),
        "next": list(state.next),
        "checkpoint_id": state.config["configurable"]["checkpoint_id"],
        "parent": (state.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        "step": state.metadata.get("step"),
        "source": state.metadata.get("source"),
        "tasks": [[t.name, jsonable([i.value for i in t.interrupts])] for t in state.tasks],
    }


def _result(graph: Any, config: dict[str, Any], out: Any, history: list[Any]) -> str:
    return json.dumps({"result": jsonable(out), "history": history}, sort_keys=True)


async def _ckptdb(db: str, config: dict[str, Any], resume: Any) -> str:
    from langgraph.types import Command

    from ckptdb.langgraph import AsyncCkptdbSaver

    async with AsyncCkptdbSaver.from_conn_string(db) as saver:
        graph = lg.build_graph(saver)
        out = await graph.ainvoke(Command(resume=resume), config)
        history = [_snapshot(s) async for s in graph.aget_state_history(config)]
        return _result(graph, config, out, history)


def _official(kind: str, db: str, config: dict[str, Any], resume: Any) -> str:
    from langgraph.types import Command

    opened = lg.sqlite_saver(Path(db)) if kind == "sqlite" else lg.postgres_saver(db, setup=False)
    with opened as saver:
        graph = lg.build_graph(saver)
        out = graph.invoke(Command(resume=resume), config)
        history = [_snapshot(s) for s in graph.get_state_history(config)]
        return _result(graph, config, out, history)


def main() -> None:
    kind, db, thread, resume = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    config = {"configurable": {"thread_id": thread}}
    if kind == "ckptdb":
        print(asyncio.run(_ckptdb(db, config, resume)))
    else:
        print(_official(kind, db, config, resume))


if __name__ == "__main__":
    main()
