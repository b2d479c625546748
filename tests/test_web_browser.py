"""`ckptdb serve` in a real browser: Debian's headless Chromium driven by Playwright (never
`playwright install`), on SQLite and PostgreSQL.

One browser for the module (both engines; module- rather than session-scoped because Playwright's
sync API keeps an event loop marked running on the main thread while it is open, which the async
tests of later modules could not run beside); each test gets a fresh page that records every dialog, console
error, page error and CSP violation report, and must end with none. Set CKPTDB_WRITE_SCREENSHOTS=1
to refresh the README's screenshots under docs/ (taken on SQLite, CJK graph names and all).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import module_db_target
from helpers.web import CALM_GRAPH, XSS_GRAPH, XSS_NODE, XSS_TOOL, Demo, build_demo, serving

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package")
    with playwright_api.sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Demo, str]]:
    with module_db_target(engine, tmp_path_factory.mktemp("web")) as target:
        demo = build_demo(target)
        with serving(target) as url:
            yield url, demo, engine


class Watched:
    """A page and everything it must not do: dialogs, console errors, page errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def quiet(self) -> None:
        assert self.dialogs == [] and self.errors == [], (self.dialogs, self.errors)


@pytest.fixture
def tab(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    watched = Watched(context.new_page())
    yield watched
    context.close()


def cp_url(base: str, checkpoint_id: str) -> str:
    return f"{base}/checkpoints/{quote(checkpoint_id, safe='')}"


def test_find_the_waiting_graph_open_it_see_the_change_and_read_the_tool_call(
    tab: Watched, site: tuple[str, Demo, str]
) -> None:
    base, demo, engine = site
    page = tab.page
    page.goto(base + "/")
    row = page.locator("#graphs tbody tr", has_text=XSS_GRAPH)
    assert row.locator(".badge").inner_text() == "waiting"
    assert row.locator("td").nth(3).inner_text() == "toolapproval"
    if engine == "sqlite" and os.environ.get("CKPTDB_WRITE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / "serve-graphs.png"), full_page=True)
    page.click("text=Waiting for a person")
    assert page.url == base + "/pending"
    pending = page.locator("#pending tbody tr", has_text=XSS_GRAPH)
    assert pending.locator("strong.tool").inner_text() == XSS_TOOL
    pending.locator("a.cp").click()
    assert page.locator("#cp-id").inner_text() == demo.steps[2]
    assert page.locator(".tool").inner_text() == XSS_TOOL
    assert '"url": "javascript:alert(2)"' in page.locator("pre.args").inner_text()
    assert page.locator("#path li").all_inner_texts() == ["start", "lookup_order", XSS_NODE, "send_refund"]
    rows = page.locator("#diff tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td.kind").inner_text() == "added"
    assert rows.first.locator("td.ptr").inner_text().strip() == "/values/order"
    page.click("#base")
    assert page.locator("#cp-node").inner_text() == XSS_NODE
    kinds = page.locator("#diff td.kind").all_inner_texts()
    paths = [p.strip() for p in page.locator("#diff td.ptr").all_inner_texts()]
    assert list(zip(kinds, paths, strict=True)) == [("added", "/messages/1"), ("changed", "/values/amount")]
    if engine == "sqlite" and os.environ.get("CKPTDB_WRITE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / "serve-checkpoint.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#download")
    assert Path(download.value.path()).read_bytes().startswith(b"{")
    tab.quiet()


def test_filters_are_the_query_string_and_paging_follows_the_cursor(
    tab: Watched, site: tuple[str, Demo, str]
) -> None:
    base, demo, _ = site
    page = tab.page
    page.goto(base + "/")
    page.click(f"#graphs a.graph:text-is('{CALM_GRAPH}')")
    assert page.locator("h1").inner_text() == CALM_GRAPH
    assert page.locator("#checkpoints a.cp").all_inner_texts() == list(reversed(demo.calm))
    page.check("input[name=type][value=afternode]")
    page.click("button:text('Filter')")
    assert re.search(r"[?&]type=afternode(&|$)", page.url)
    assert page.locator("#checkpoints a.cp").all_inner_texts() == [demo.calm[2], demo.calm[1]]
    page.goto(base + "/checkpoints?limit=3")
    first = page.locator("#checkpoints a.cp").all_inner_texts()
    page.click("#next")
    second = page.locator("#checkpoints a.cp").all_inner_texts()
    assert len(first) == 3 and len(second) == 3 and not set(first) & set(second)
    page.click("#first")
    assert page.locator("#checkpoints a.cp").all_inner_texts() == first
    tab.quiet()


def test_no_hostile_value_runs_anything_on_any_page(tab: Watched, site: tuple[str, Demo, str]) -> None:
    base, demo, _ = site
    page = tab.page
    urls = [
        base + "/",
        base + "/checkpoints",
        base + "/pending",
        *(cp_url(base, i) for i in demo.steps),
        cp_url(base, demo.js),
        base + "/sql?q=" + quote("SELECT graph_name, current_node, state_snapshot FROM checkpoints LIMIT 5"),
    ]
    for url in urls:
        page.goto(url)
        # Nothing from the data became an element: the page has no script, no image, no inline handler.
        assert page.locator("script").count() == 0, url
        assert page.locator("img, iframe, object, embed").count() == 0, url
        assert page.evaluate("document.querySelectorAll('[onerror],[onload],[onclick]').length") == 0, url
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert not [h for h in hrefs if h.lower().startswith("javascript:")], url
    page.goto(base + "/")
    assert XSS_GRAPH in page.locator("#graphs").inner_text()
    tab.quiet()


def test_a_10_mb_state_opens_collapsed_and_capped(tab: Watched, site: tuple[str, Demo, str]) -> None:
    base, demo, _ = site
    page = tab.page
    page.goto(cp_url(base, demo.huge))
    assert "more values not drawn" in page.locator("#state .cut").inner_text()
    tab.quiet()


@pytest.fixture(scope="module")
def lg_site(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("langgraph.graph", reason="needs the langgraphtest extra")
    from helpers.web import build_langgraph

    with module_db_target(engine, tmp_path_factory.mktemp("lgweb")) as target:
        build_langgraph(target)
        with serving(target) as url:
            yield url


def test_from_the_menu_to_a_waiting_langgraph_checkpoint(tab: Watched, lg_site: str) -> None:
    from helpers.web import XSS_THREAD

    page = tab.page
    page.goto(lg_site + "/")
    page.click("#nav-langgraph")
    assert page.url == lg_site + "/langgraph"
    row = page.locator("#threads tbody tr", has_text=XSS_THREAD).first
    assert row.locator("td.ns").inner_text() == ""
    row.locator("a.thread").click()
    assert page.locator("h1 .thread-id").inner_text() == XSS_THREAD
    assert page.locator("#history tbody tr").count() == 3
    page.locator("#history a.cp").first.click()
    assert page.locator("#lg-thread").inner_text() == XSS_THREAD
    assert "__interrupt__" in page.locator("#writes").inner_text()
    assert page.locator("script, img").count() == 0
    page.click("#lg-parent")
    assert page.locator("#lg-id").inner_text() in page.url
    tab.quiet()
