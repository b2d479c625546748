"""`ckptdb serve`: the read-only web view (ckptdb.web) on a local port.

Its dependencies are the `web` extra; without them the command says in one line what to install.
The store is opened read-only on the server's own event loop before the port is bound, so a wrong
--db is the usual one `Error:` line and nothing listens.
"""

from __future__ import annotations

import asyncio

import click

from ckptdb.cli.common import CommandError, db_url, run

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
INSTALL_HINT = "ckptdb serve needs the web extra: pip install 'ckptdb[web]' (starlette, jinja2, uvicorn)"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8642, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the view in the default browser.")
def serve(host: str, port: int, open_browser: bool) -> None:
    """Serve a read-only web view of the database: graphs, timelines, state diffs, approvals waiting.

    Binds 127.0.0.1 by default and answers only to that host name and localhost; only GET and
    HEAD exist, and the database is opened read-only. Needs `pip install 'ckptdb[web]'`.
    """
    try:
        import uvicorn

        from ckptdb.web import create_app
    except ImportError:
        raise CommandError(INSTALL_HINT) from None
    if host not in LOCAL_HOSTS:
        click.echo(
            f"warning: listening on {host}: anyone who can reach it can read every checkpoint "
            "(there is no login); use the default 127.0.0.1 unless you mean it",
            err=True,
        )

    async def main() -> None:
        from ckptdb import inspect

        async with await inspect.open_existing(db_url(), readonly=True) as store:
            app = create_app(store, allowed_hosts=[host])
            config = uvicorn.Config(
                app, host=host, port=port, log_level="warning", server_header=False, lifespan="off"
            )
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if server.started:
                bound = server.servers[0].sockets[0].getsockname()[1]
                url = _url(host, bound)
                click.echo(f"ckptdb serve: {url} (read-only view of {store.target.display()}; Ctrl-C stops)")
                if open_browser:
                    import webbrowser  # here, not at the top: 2.7 ms (shutil, bz2, lzma) of every start

                    webbrowser.open(url)
            await task
            if not server.started:
                raise CommandError(
                    f"could not listen on {host}:{port} (see the line above); try another --port"
                )

    run(main())
