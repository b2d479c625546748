"""The LangGraph pages of `ckptdb serve`, on SQLite and PostgreSQL: a database written by
`AsyncCkptdbSaver` running a real graph (a subgraph, a branch, an approval left waiting), served by
a real process. Each page shows exactly what `ckptdb langgraph threads|history|show` print,
pages walk every row once, hostile thread ids and metadata stay text, and the menu links the
pages only once the database holds a LangGraph checkpoint."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import module_db_target
from helpers.web import XSS_METADATA, XSS_THREAD, build_demo, build_langgraph, serving
from test_web_http import HOSTILE, esc, page, request

pytest.importorskip("langgraph.graph", reason="needs the langgraphtest extra")

NAV = 'id="nav-langgraph"'


@pytest.fixture(scope="module")
def site(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with module_db_target(engine, tmp_path_factory.mktemp("lgweb")) as target:
        build_langgraph(target)
        with serving(target) as url:
            yield url, target


def cli(target: str, *args: str) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", target, "langgraph", *args, "-f", "jsonl"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def cells(text: str, table: str) -> list[list[str]]:
    """The table's body rows, each cell's text unescaped (markup inside a cell dropped)."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)  # type: ignore[union-attr]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell))
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def links(text: str, css: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'<a class="{css}" href="([^"]+)"', text)]


def short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_the_threads_page_shows_what_langgraph_threads_prints(site: tuple[str, str]) -> None:
    base, target = site
    text = page(base, "/langgraph")
    expected = cli(target, "threads")
    assert len(expected) == 6  # three threads, each with the review subgraph's namespace
    assert cells(text, "threads") == [
        [
            t["thread_id"],
            t["checkpoint_ns"],
            str(t["checkpoints"]),
            str(t["step"]),
            t["updated"],
            short(t["metadata"]),
        ]
        for t in expected
    ]
    assert [
        (t["thread_id"], t["checkpoint_ns"], t["checkpoints"]) for t in expected if not t["checkpoint_ns"]
    ] == [
        (XSS_THREAD, "", 3),
        ("approved", "", 5),
        ("waiting", "", 3),
    ]
    assert NAV in text and NAV in page(base, "/")


def test_threads_pages_walk_every_thread_once(site: tuple[str, str]) -> None:
    base, target = site
    seen: list[list[str]] = []
    path: str | None = "/langgraph?limit=4"
    pages = 0
    while path is not None:
        text = page(base, path)
        seen.extend(cells(text, "threads"))
        found = re.search(r'id="next" href="([^"]+)"', text)
        path = html.unescape(found.group(1)) if found else None
        pages += 1
    assert pages == 2
    assert [row[:2] for row in seen] == [[t["thread_id"], t["checkpoint_ns"]] for t in cli(target, "threads")]


def test_the_history_page_shows_what_langgraph_history_prints_a_page_at_a_time(site: tuple[str, str]) -> None:
    base, target = site
    for thread in ("approved", "waiting", XSS_THREAD):
        expected = cli(target, "history", thread)
        rows: list[list[str]] = []
        path: str | None = "/langgraph/thread?" + urlencode({"thread": thread, "limit": 2})
        while path is not None:
            text = page(base, path)
            rows.extend(cells(text, "history"))
            found = re.search(r'id="next" href="([^"]+)"', text)
            path = html.unescape(found.group(1)) if found else None
        assert [[r[0], r[1], r[3], r[4], r[5]] for r in rows] == [
            [str(h["step"]), h["source"], str(h["writes"]), h["checkpoint_id"], short(h["metadata"])]
            for h in expected
        ], thread
    assert len(cli(target, "history", "approved")) == 5


def test_the_checkpoint_page_shows_what_langgraph_show_prints(site: tuple[str, str]) -> None:
    base, target = site
    history = page(base, "/langgraph/thread?" + urlencode({"thread": "waiting"}))
    newest = links(history, "cp")[0]
    text = page(base, newest)
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", target, "langgraph", "show", "waiting"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert html.unescape(re.search(r'<dd id="lg-id">(.*?)</dd>', text).group(1)) == shown["checkpoint_id"]  # type: ignore[union-attr]
    names = [html.unescape(n) for n in re.findall(r'<h3 class="channel">(.*?)</h3>', text)]
    values = [
        json.loads(html.unescape(v))
        for v in re.findall(r'<pre class="channel-value">(.*?)</pre>', text, re.S)
    ]
    assert dict(zip(names, values, strict=True)) == shown["channel_values"]
    assert [m["content"] for m in shown["channel_values"]["messages"]] == ["draft 0", "proposal 0"]
    writes = cells(text, "writes")
    assert [(w[0], w[1], json.loads(w[2])) for w in writes] == [
        (w["task_id"], w["channel"], w["value"]) for w in shown["pending_writes"]
    ]
    assert "__interrupt__" in [w[1] for w in writes]  # the approval the thread waits on
    assert (
        json.loads(html.unescape(re.search(r'<pre id="lg-metadata">(.*?)</pre>', text, re.S).group(1)))
        == shown["metadata"]
    )  # type: ignore[union-attr]


def test_hostile_thread_ids_and_metadata_stay_text(site: tuple[str, str]) -> None:
    base, _ = site
    listing = page(base, "/langgraph")
    thread = next(h for h in links(listing, "thread") if "script" in h and "ns=" not in h)
    history = page(base, thread)
    paths = ["/langgraph", "/langgraph?limit=1", thread, links(history, "cp")[0], links(history, "cp")[-1]]
    for path in paths:
        text = page(base, path)
        for bad in HOSTILE:
            assert bad not in text, (path, bad)
        assert esc(XSS_THREAD) in text, path
    assert esc(XSS_METADATA.replace('"', '\\"')) in listing
    assert cells(history, "history")  # the id with `/`, `?` and `&` named this thread and no other


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/langgraph/thread", 400, "needs ?thread="),
        ("/langgraph/thread?thread=nope", 404, "no thread 'nope'"),
        ("/langgraph/checkpoint?thread=waiting", 400, "needs ?id="),
        ("/langgraph/checkpoint?thread=waiting&id=nope", 404, "no checkpoint 'nope' in thread 'waiting'"),
        ("/langgraph/checkpoint?thread=nope&id=nope", 404, "no thread 'nope'"),
        ("/langgraph?limit=0", 400, "limit must be"),
    ],
)
def test_bad_requests_are_one_line_pages(site: tuple[str, str], path: str, status: int, says: str) -> None:
    base, _ = site
    got, headers, body = request(base, path)
    assert got == status, (path, body[:300])
    text = body.decode()
    message = html.unescape(re.search(r'<p class="error" id="error">(.*?)</p>', text, re.S).group(1))  # type: ignore[union-attr]
    assert says in message and "\n" not in message and "Traceback" not in text
    assert "default-src 'none'" in headers["content-security-policy"]


def test_the_menu_links_langgraph_only_once_the_database_holds_a_checkpoint(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with module_db_target(engine, tmp_path_factory.mktemp("echo-only")) as target:
        build_demo(target)
        with serving(target) as base:
            assert NAV not in page(base, "/") and NAV not in page(base, "/checkpoints")
            assert "No LangGraph checkpoint" in page(base, "/langgraph")
            build_langgraph(target)  # a saver writes its first checkpoint while the view is open
            assert NAV in page(base, "/")
