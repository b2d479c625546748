"""The Starlette application behind `ckptdb serve`: routes, error pages, and the store it reads.

The store is opened by the caller (read-only, on the server's own event loop) and handed in, so
a wrong `--db` is one error line before any port is bound, and the app never opens anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ckptdb.errors import CkptdbError
from ckptdb.inspect import GraphsCache, NotFoundError
from ckptdb.langgraph_inspect import has_threads
from ckptdb.langgraph_source import CheckpointNotFoundError
from ckptdb.web import langgraph_pages, pages
from ckptdb.web.render import environment
from ckptdb.web.security import SecurityMiddleware

if TYPE_CHECKING:
    from ckptdb.sql.store import SqlCheckpointStore

log = logging.getLogger("ckptdb.web")


async def _bad_input(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, (NotFoundError, CheckpointNotFoundError)) else 400
    return pages.render(request, "error.html", status=status, status_code=status, message=str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such page" if exc.status_code == 404 else str(exc.detail)
    return pages.render(
        request, "error.html", status=exc.status_code, status_code=exc.status_code, message=message
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server's log (uvicorn prints it); the page says only that it failed.
    return pages.render(
        request,
        "error.html",
        status=500,
        status_code=500,
        message="the page failed to build; the traceback is in the log of the `ckptdb serve` process",
    )


def create_app(store: SqlCheckpointStore, *, allowed_hosts: Iterable[str] = ()) -> ASGIApp:
    """The view of `store` (open it read-only), answering to localhost and `allowed_hosts`."""
    app = Starlette(
        routes=[
            Route("/", pages.graphs_page),
            Route("/checkpoints", pages.checkpoints_page),
            Route("/checkpoints/{checkpoint_id:path}", pages.checkpoint_page),
            Route("/raw/{checkpoint_id:path}", pages.raw_checkpoint),
            Route("/pending", pages.pending_page),
            Route("/sql", pages.sql_page),
            Route(langgraph_pages.LIST_URL, langgraph_pages.threads_page),
            Route("/langgraph/thread", langgraph_pages.history_page),
            Route("/langgraph/checkpoint", langgraph_pages.checkpoint_page),
            Mount("/static", StaticFiles(packages=[("ckptdb.web", "static")]), name="static"),
        ],
        exception_handlers={
            CkptdbError: _bad_input,
            HTTPException: _http_error,
            500: _server_error,
        },
    )
    app.state.store = store
    app.state.graphs = GraphsCache()  # the graphs page's summary, re-validated per request
    app.state.database = store.target.display()
    app.state.templates = environment()
    app.state.langgraph = False
    return SecurityMiddleware(LanggraphProbe(app), allowed_hosts=allowed_hosts)


class LanggraphProbe:
    """Sets `app.state.langgraph` (the menu's LangGraph link) before each page: whether the
    database holds a LangGraph checkpoint, one primary-key probe per page until it does (a saver
    may write the first while the view is open), none after."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.app.state
        if scope["type"] == "http" and not state.langgraph and not scope["path"].startswith("/static/"):
            state.langgraph = await has_threads(state.store)
        await self.app(scope, receive, send)
