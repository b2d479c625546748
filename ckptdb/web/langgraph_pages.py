"""The LangGraph pages: ckptdb's own LangGraph tables (what `AsyncCkptdbSaver` and
`ckptdb langgraph import` write) as `ckptdb langgraph threads|history|show` print them.

Each handler reads its query string, calls ckptdb.langgraph_inspect, and renders a template.
Listings read ids, steps and metadata only; the checkpoint page decodes through the saver with
LangGraph's strict serde (nothing unpickled or executed: a value it must not load is shown as
`{"$undecoded": ...}`). Thread ids and namespaces travel in the query string, not the path, so any
text (slashes, `?`, markup) names one thread and only that one.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ckptdb import langgraph_inspect as li
from ckptdb.errors import CkptdbError
from ckptdb.web.pages import PAGE_SIZE, page_size, render

LIST_URL = "/langgraph"


def threads_url(**params: str | None) -> str:
    clean = {key: value for key, value in params.items() if value is not None}
    return LIST_URL + ("?" + urlencode(clean) if clean else "")


def thread_url(thread_id: str, checkpoint_ns: str = "", **params: str | None) -> str:
    query = {"thread": thread_id, **({"ns": checkpoint_ns} if checkpoint_ns else {})}
    query.update({key: value for key, value in params.items() if value is not None})
    return "/langgraph/thread?" + urlencode(query)


def lg_checkpoint_url(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> str:
    query = {"thread": thread_id, **({"ns": checkpoint_ns} if checkpoint_ns else {}), "id": checkpoint_id}
    return "/langgraph/checkpoint?" + urlencode(query)


URLS: dict[str, Any] = {
    "thread_url": thread_url,
    "lg_checkpoint_url": lg_checkpoint_url,
    "checkpoint_time": li.checkpoint_time,
}


def _required(request: Request, name: str) -> str:
    value: str | None = request.query_params.get(name)
    if value is None or value == "":
        raise CkptdbError(f"the page needs ?{name}=...: follow a link from the LangGraph threads page")
    return value


def _limit_param(size: int) -> str | None:
    return None if size == PAGE_SIZE else str(size)


async def threads_page(request: Request) -> Response:
    """The threads, by thread id and namespace, a keyset page at a time (after= the last shown)."""
    store = request.app.state.store
    size = page_size(request)
    params = request.query_params
    after_thread = params.get("after")
    after = None if after_thread is None else (after_thread, params.get("after_ns", ""))
    rows: list[li.StoredThread] = []
    async with aclosing(li.threads(store, size + 1, after=after)) as found:
        async for stored in found:
            rows.append(stored)
    next_url = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1].summary
        next_url = threads_url(after=last.thread_id, after_ns=last.checkpoint_ns, limit=_limit_param(size))
    return render(
        request,
        "langgraph_threads.html",
        rows=rows,
        next_url=next_url,
        first_url=threads_url(limit=_limit_param(size)) if after else None,
        **URLS,
    )


async def history_page(request: Request) -> Response:
    """One thread's checkpoints, newest first, a keyset page at a time (before= the last shown)."""
    store = request.app.state.store
    thread_id = _required(request, "thread")
    checkpoint_ns = request.query_params.get("ns", "")
    before = request.query_params.get("before") or None
    size = page_size(request)
    rows: list[li.HistoryRow] = []
    found = li.history(store, thread_id, checkpoint_ns, before=before, page=size + 1)
    async with aclosing(found) as history:
        async for row in history:
            rows.append(row)
            if len(rows) > size:
                break
    next_url = None
    if len(rows) > size:
        rows = rows[:size]
        next_url = thread_url(
            thread_id, checkpoint_ns, before=rows[-1].checkpoint_id, limit=_limit_param(size)
        )
    return render(
        request,
        "langgraph_history.html",
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        rows=[(row, _fields(row.metadata)) for row in rows],
        next_url=next_url,
        first_url=thread_url(thread_id, checkpoint_ns, limit=_limit_param(size)) if before else None,
        **URLS,
    )


def _fields(metadata: Any) -> dict[str, Any]:
    return metadata if isinstance(metadata, dict) else {}


async def checkpoint_page(request: Request) -> Response:
    """One checkpoint decoded: its metadata, every channel's value and its pending writes, as JSON."""
    store = request.app.state.store
    thread_id = _required(request, "thread")
    checkpoint_ns = request.query_params.get("ns", "")
    shown = await li.show(store, thread_id, checkpoint_ns, _required(request, "id"))
    return render(
        request,
        "langgraph_checkpoint.html",
        cp=shown,
        step=_fields(shown["metadata"]).get("step"),
        **URLS,
    )
