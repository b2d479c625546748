"""One handler per page. Each reads its query string the way the CLI reads its flags (graph, node,
type, since, until, where, limit), calls the library, and renders a template; nothing here talks
to a database except through the store and ckptdb.inspect, which a read-only store backs.

Errors are the library's own: a CkptdbError is bad input (400, its one line shown), NotFoundError
an unknown id (404); app.py turns them into pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import aclosing
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ckptdb import inspect
from ckptdb.diff import diff, previous_checkpoint
from ckptdb.errors import CkptdbError, DamagedRowError
from ckptdb.model import Checkpoint
from ckptdb.store import CheckpointQuery, decode_cursor
from ckptdb.web.render import time_chart, tool_call

PAGE_SIZE = 50
"""Checkpoints on one page of a listing (the `limit` flag changes it, up to MAX_PAGE_SIZE)."""
MAX_PAGE_SIZE = 500
CHART_ROWS = 2000
"""The graphs page charts the newest CHART_ROWS checkpoints: one keyset page (a few ms on a
million rows), where counting every row by time would read the whole table."""
SQL_ROWS = 1000
"""Rows of a query the SQL page shows; it says when there were more."""
SQL_SECONDS = 10.0
"""A query the SQL page stops after this long (one person's mistyped join must not hold the view)."""
MAX_CHANGES = 500
"""Changes listed in one diff; the rest are counted."""
TYPE_NAMES = ("beforenode", "afternode", "toolapproval", "userrequest")


def checkpoint_url(checkpoint_id: str, **params: str) -> str:
    url = "/checkpoints/" + quote(checkpoint_id, safe="")
    return url + ("?" + urlencode(params) if params else "")


def raw_url(checkpoint_id: str) -> str:
    return "/raw/" + quote(checkpoint_id, safe="")


def list_url(**params: Any) -> str:
    clean = {key: value for key, value in params.items() if value not in (None, "", [], ())}
    return "/checkpoints" + ("?" + urlencode(clean, doseq=True) if clean else "")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env = request.app.state.templates
    page = env.get_template(template).render(
        database=request.app.state.database,
        checkpoint_url=checkpoint_url,
        list_url=list_url,
        raw_url=raw_url,
        langgraph=request.app.state.langgraph,
        **context,
    )
    return HTMLResponse(page, status_code=status)


class _Warnings(list[str]):
    """Damaged rows a page skipped, shown above its content (as the CLI's warning lines)."""

    def __call__(self, exc: DamagedRowError) -> None:
        self.append(str(exc))


async def graphs_page(request: Request) -> Response:
    store = request.app.state.store
    warnings = _Warnings()
    summaries = await request.app.state.graphs.graphs(store, on_damaged=warnings)
    newest_type: dict[str, str | None] = {}
    for summary in summaries:
        page = await store.query(CheckpointQuery(graph_name=summary.graph_name, limit=1))
        newest_type[summary.graph_name] = page.items[0].interrupt_type.value if page.items else None
    waiting = {cp.graph_name for cp in await inspect.pending(store, on_damaged=warnings)}
    recent = await store.query(CheckpointQuery(limit=CHART_ROWS))
    chart = time_chart([info.created_at.unix_nanos for info in recent.items])
    return render(
        request,
        "graphs.html",
        summaries=summaries,
        newest_type=newest_type,
        waiting=waiting,
        chart=chart,
        chart_rows=len(recent.items),
        chart_span=(recent.items[-1].created_at, recent.items[0].created_at) if recent.items else None,
        warnings=warnings,
    )


def _flags(request: Request) -> dict[str, Any]:
    """The listing flags of the query string, as `ckptdb list` takes them (empty fields dropped)."""
    params = request.query_params

    def one(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    return {
        "graph": params.get("graph") or None,  # a graph name is taken as it is, spaces included
        "node": params.get("node") or None,
        "types": [t for t in params.getlist("type") if t.strip()],
        "since": one("since"),
        "until": one("until"),
        "where": [w for w in params.getlist("where") if w.strip()],
    }


def page_size(request: Request) -> int:
    text = request.query_params.get("limit", "").strip()
    if not text:
        return PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise CkptdbError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}, got {text!r}")
    return int(text)


async def checkpoints_page(request: Request) -> Response:
    store = request.app.state.store
    flags = _flags(request)
    size = page_size(request)
    cursor = request.query_params.get("cursor") or None
    query = inspect.build_query(**flags)
    if cursor is not None:
        decode_cursor(cursor)  # a cursor that is not one is bad input, said in one line
    page = await store.query(dataclasses.replace(query, limit=size, cursor=cursor))
    keep = {**flags, "type": flags.pop("types"), "limit": None if size == PAGE_SIZE else size}
    return render(
        request,
        "checkpoints.html",
        flags={**flags, "type": keep["type"]},
        items=page.items,
        next_url=list_url(**keep, cursor=page.next_cursor) if page.next_cursor else None,
        first_url=list_url(**keep) if cursor else None,
        type_names=TYPE_NAMES,
    )


async def checkpoint_page(request: Request) -> Response:
    store = request.app.state.store
    checkpoint = await inspect.get_checkpoint(store, request.path_params["checkpoint_id"])
    against_id = request.query_params.get("against", "").strip()
    base: Checkpoint | None
    if against_id:
        base = await inspect.get_checkpoint(store, against_id)
    else:
        base = await previous_checkpoint(store, checkpoint)
    changes = None if base is None else diff(base.state_snapshot, checkpoint.state_snapshot)
    name, arguments = tool_call(checkpoint.pending_action)
    return render(
        request,
        "checkpoint.html",
        cp=checkpoint,
        base=base,
        against_chosen=bool(against_id),
        changes=None if changes is None else changes[:MAX_CHANGES],
        more_changes=0 if changes is None else max(0, len(changes) - MAX_CHANGES),
        tool_name=name,
        tool_arguments=arguments,
    )


async def raw_checkpoint(request: Request) -> Response:
    """The echo file, byte for byte what `ckptdb show ID > file` writes, as a download."""
    store = request.app.state.store
    checkpoint = await inspect.get_checkpoint(store, request.path_params["checkpoint_id"])
    filename = quote(f"{checkpoint.id}.json", safe="")
    return Response(
        checkpoint.to_json_bytes(),
        media_type="application/json",
        headers={"content-disposition": f"attachment; filename*=UTF-8''{filename}"},
    )


async def pending_page(request: Request) -> Response:
    store = request.app.state.store
    warnings = _Warnings()
    found = await inspect.pending(store, on_damaged=warnings)
    rows = [(cp, *tool_call(cp.pending_action)) for cp in found]
    return render(request, "pending.html", rows=rows, warnings=warnings)


async def sql_page(request: Request) -> Response:
    """`ckptdb sql` in a form: the same library call, so the same read-only enforcement."""
    store = request.app.state.store
    text = request.query_params.get("q", "")
    header: tuple[Any, ...] = ()
    rows: list[tuple[Any, ...]] = []
    more = False
    error = None
    if text.strip():
        try:
            async with asyncio.timeout(SQL_SECONDS), aclosing(inspect.run_sql(store, text)) as results:
                header = await anext(results)
                async for row in results:
                    if len(rows) == SQL_ROWS:
                        more = True
                        break
                    rows.append(row)
        except CkptdbError as exc:
            error = str(exc)
        except TimeoutError:
            error = (
                f"stopped after {SQL_SECONDS:.0f} s: narrow the query (a LIMIT, a WHERE on an indexed column)"
            )
    return render(
        request,
        "sql.html",
        status=400 if error else 200,
        q=text,
        header=header,
        rows=rows,
        more=more,
        error=error,
        limit=SQL_ROWS,
    )
