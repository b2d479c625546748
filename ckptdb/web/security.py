"""The ASGI layer in front of every page: what keeps a local view of untrusted text local and inert.

- Host check: a page of another site that resolves its own name to 127.0.0.1 (DNS rebinding)
  would reach the server with its own name in the Host header; only the bound host and the names
  of the loopback interface are served, anything else gets 421.
- Read-only at the HTTP level too: only GET and HEAD exist; any other method gets 405.
- Headers on every response: a Content-Security-Policy without any script and with styles and
  images from this server only (state text that slips into markup still runs nothing),
  `frame-ancestors 'none'`, `nosniff`, no referrer (a state's URLs never learn a checkpoint id),
  no caching. `Server-Timing` says how long the page took to build (what bench_web.py reads).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_METHODS = frozenset({"GET", "HEAD"})


def host_name(header: str) -> str:
    """The name part of a Host header: `[::1]:8000` -> `::1`, `Localhost:80` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, _, _ = header.partition(":")
    return name


class SecurityMiddleware:
    """Refuses what the view must never serve and stamps the security headers on what it does."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts) | LOOPBACK_NAMES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.allowed_hosts:
            await _plain(send, 421, "421 this server answers only to localhost or its bound host name\n")
            return
        if scope["method"] not in ALLOWED_METHODS:
            await _plain(send, 405, "405 read-only: only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS],
                    *SECURITY_HEADERS,
                    (b"server-timing", f"app;dur={elapsed:.2f}".encode()),
                ]
            await send(message)

        await self.app(scope, receive, stamped)


_OURS = frozenset(name for name, _ in SECURITY_HEADERS) | {b"server-timing"}


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
