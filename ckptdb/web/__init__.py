"""`ckptdb serve`: a local, read-only web view of a checkpoint database.

It reads only through the library (ckptdb.inspect, CheckpointQuery, a store opened read-only),
renders pages on the server with Jinja2 (autoescaped) and ships no script at all: the state tree
folds with HTML's own <details>, so the Content-Security-Policy can forbid every script.

    app.py       the Starlette application: routes, error pages, the store it reads
    security.py  the ASGI layer in front of it: Host check, GET/HEAD only, security headers
    pages.py     one handler per page, each turning query-string flags into library calls
    render.py    the Jinja2 environment and the HTML it cannot express well: JSON trees, the chart

The diff and the previous checkpoint of a graph are ckptdb.diff's, which `ckptdb diff` shares.
"""

from __future__ import annotations

from ckptdb.web.app import create_app

__all__ = ["create_app"]
