"""`ckptdb serve` at the HTTP level, on SQLite and PostgreSQL: a real server process, real requests.

Headers, the Host check (DNS rebinding), read-only methods, error pages without tracebacks,
escaping of hostile text in the raw HTML, the byte-exact download, keyset paging, a 10 MB state,
and the SQL page's read-only enforcement.
"""

from __future__ import annotations

import html
import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import markupsafe
import pytest
from conftest import module_db_target
from helpers.web import CALM_GRAPH, JS_GRAPH, XSS_GRAPH, XSS_NODE, XSS_TOOL, Demo, build_demo, serving

HOSTILE = ("<script", "<img", "<svg onload", "<b>", '" onerror=', '<a href="javascript')
"""Markup the hostile values would make if they reached the page unescaped (the view has no script
element of its own, no image element, and no bold element)."""


@pytest.fixture(scope="module")
def site(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Demo]]:
    with module_db_target(engine, tmp_path_factory.mktemp("web")) as target:
        demo = build_demo(target)
        with serving(target) as url:
            yield url, target, demo


def request(
    base: str, path: str, *, method: str = "GET", host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host if host is not None else parts.netloc)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def page(base: str, path: str) -> str:
    status, _, body = request(base, path)
    assert status == 200, (path, status, body[:500])
    return body.decode()


def esc(text: str) -> str:
    """Text as the templates write it (Jinja2's autoescape: markupsafe)."""
    return str(markupsafe.escape(text))


def cp_path(checkpoint_id: str) -> str:
    return "/checkpoints/" + quote(checkpoint_id, safe="")


def test_every_page_carries_the_security_headers(site: tuple[str, str, Demo]) -> None:
    base, _, demo = site
    for path in (
        "/",
        "/checkpoints",
        cp_path(demo.steps[2]),
        "/pending",
        "/sql",
        "/static/style.css",
        "/nope",
    ):
        _, headers, _ = request(base, path)
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp and "unsafe-inline" not in csp, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "server" not in headers


def test_a_foreign_host_header_is_refused_and_localhost_names_are_served(site: tuple[str, str, Demo]) -> None:
    base, _, _ = site
    port = urlsplit(base).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", ""):
        status, _, body = request(base, "/", host=host)
        assert status == 421, host
        assert b"localhost" in body
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert request(base, "/", host=host)[0] == 200, host


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_exist(site: tuple[str, str, Demo], method: str) -> None:
    base, _, demo = site
    for path in ("/", "/sql?q=select+1", cp_path(demo.steps[0])):
        status, headers, _ = request(base, path, method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD", (method, path)


def test_head_answers_without_a_body(site: tuple[str, str, Demo]) -> None:
    base, _, _ = site
    status, headers, body = request(base, "/", method="HEAD")
    assert status == 200 and body == b"" and "content-security-policy" in headers


def test_unknown_ids_and_pages_are_404_pages_without_tracebacks(site: tuple[str, str, Demo]) -> None:
    base, _, _ = site
    for path in (cp_path("no-such-id"), "/raw/no-such-id", "/nope", "/static/missing.css"):
        status, _headers, body = request(base, path)
        assert status == 404, path
        assert b"Traceback" not in body and b'File "' not in body
    status, _, body = request(base, cp_path("no-such-id"))
    assert "no checkpoint with id &#39;no-such-id&#39;" in body.decode()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"since": "yesterday"}, "--since"),
        ({"where": "values.approved =="}, "values.approved"),
        ({"type": "sometimes"}, "unknown interrupt type"),
        ({"cursor": "garbage"}, "invalid cursor"),
        ({"limit": "0"}, "limit must be"),
    ],
)
def test_bad_flags_are_one_line_400(site: tuple[str, str, Demo], query: dict[str, str], says: str) -> None:
    base, _, _ = site
    status, _, body = request(base, "/checkpoints?" + urlencode(query))
    assert status == 400
    text = body.decode()
    message = html.unescape(re.search(r'<p class="error" id="error">(.*?)</p>', text, re.S).group(1))  # type: ignore[union-attr]
    assert says in message and "\n" not in message
    assert "Traceback" not in text


def test_hostile_text_is_escaped_on_every_page(site: tuple[str, str, Demo]) -> None:
    base, _, demo = site
    paths = [
        "/",
        "/checkpoints",
        "/checkpoints?" + urlencode({"graph": XSS_GRAPH}),
        "/pending",
        *(cp_path(i) for i in demo.steps),
        cp_path(demo.js),
        "/sql?" + urlencode({"q": "SELECT graph_name, current_node, pending_action FROM checkpoints"}),
    ]
    for path in paths:
        text = page(base, path)
        for bad in HOSTILE:
            assert bad not in text, (path, bad)
        assert 'href="javascript:' not in text.lower(), path
    graphs = page(base, "/")
    assert esc(XSS_GRAPH) in graphs
    assert esc(XSS_TOOL) in page(base, cp_path(demo.steps[2]))
    assert esc(XSS_NODE) in page(base, cp_path(demo.steps[1]))


def test_the_diff_shows_one_added_message_and_the_changed_value(site: tuple[str, str, Demo]) -> None:
    base, _, demo = site
    text = page(base, cp_path(demo.steps[1]))
    diff = re.search(r'<table id="diff".*?</table>', text, re.S).group(0)  # type: ignore[union-attr]
    rows = re.findall(r'<tr class="(\w+)"><td class="kind">\w+</td><td class="ptr"><code>(.*?)</code>', diff)
    assert rows == [("added", "/messages/1"), ("changed", "/values/amount")]
    assert "2 changes" in text
    # Against a chosen checkpoint instead of the previous one.
    chosen = page(base, cp_path(demo.steps[2]) + "?" + urlencode({"against": demo.steps[0]}))
    assert "the chosen" in chosen and "/messages/1" in chosen and "/values/order" in chosen
    first = page(base, cp_path(demo.steps[0]))
    assert 'id="diff-none"' in first


def test_the_download_is_byte_for_byte_what_show_prints(site: tuple[str, str, Demo]) -> None:
    base, target, demo = site
    for checkpoint_id in (demo.steps[2], demo.js):
        status, headers, body = request(base, "/raw/" + quote(checkpoint_id, safe=""))
        assert status == 200 and headers["content-disposition"].startswith("attachment;")
        shown = subprocess.run(
            [sys.executable, "-m", "ckptdb", "--db", target, "show", checkpoint_id],
            capture_output=True,
            check=True,
        ).stdout
        assert body == shown


def test_keyset_pages_walk_every_checkpoint_once_in_list_order(site: tuple[str, str, Demo]) -> None:
    base, target, _ = site
    expected = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", target, "list", "-f", "jsonl"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ids = [re.search(r'"id": "([^"]+)"', line).group(1) for line in expected]  # type: ignore[union-attr]
    seen: list[str] = []
    path: str | None = "/checkpoints?limit=2"
    while path is not None:
        text = page(base, path)
        seen += [html.unescape(i) for i in re.findall(r'<a class="cp" href="[^"]*">([^<]*)</a>', text)]
        found = re.search(r'<a id="next" href="([^"]*)"', text)
        path = html.unescape(found.group(1)) if found else None
    assert seen == ids


def test_filters_mirror_the_list_flags(site: tuple[str, str, Demo]) -> None:
    base, _, demo = site
    text = page(base, "/checkpoints?" + urlencode({"graph": XSS_GRAPH, "where": "values.amount == 50"}))
    assert text.count('class="cp"') == 2
    text = page(base, "/checkpoints?" + urlencode([("type", "toolapproval"), ("type", "userrequest")]))
    assert text.count('class="cp"') == 2 and demo.steps[2] in text and demo.js in text
    text = page(base, "/checkpoints?" + urlencode({"since": "2026-11-20", "until": "2026-11-20T10:00:02Z"}))
    assert text.count('class="cp"') == 2 and demo.steps[0] in text and demo.js in text
    text = page(base, "/checkpoints?" + urlencode({"node": "search", "graph": CALM_GRAPH}))
    assert text.count('class="cp"') == 1 and demo.calm[1] in text


def test_the_waiting_page_lists_what_pending_lists_with_the_tool_call(site: tuple[str, str, Demo]) -> None:
    base, _, _demo = site
    text = page(base, "/pending")
    assert text.count('class="cp"') == 2
    assert f'<strong class="tool">{esc(XSS_TOOL)}</strong>' in text
    assert esc('{"amount":50,"url":"javascript:alert(2)"}') in text
    assert esc(JS_GRAPH) in text


def test_a_10_mb_state_is_capped_and_answered(site: tuple[str, str, Demo]) -> None:
    base, _, demo = site
    status, _, body = request(base, cp_path(demo.huge))
    assert status == 200
    assert len(body) < 3_000_000
    assert "more values not drawn" in body.decode()


def test_the_sql_page_runs_reads_and_refuses_writes(site: tuple[str, str, Demo]) -> None:
    base, _target, _ = site
    text = page(base, "/sql?" + urlencode({"q": "SELECT count(*) AS n FROM checkpoints"}))
    assert "<th>n</th>" in text and "<td>8</td>" in text
    for statement in (
        "DELETE FROM checkpoints",
        "DROP TABLE checkpoints",
        "SELECT 1; DELETE FROM checkpoints",
    ):
        status, _, body = request(base, "/sql?" + urlencode({"q": statement}))
        assert status == 400 and b'id="error"' in body, statement
    text = page(base, "/sql?" + urlencode({"q": "SELECT count(*) AS n FROM checkpoints"}))
    assert "<td>8</td>" in text


def test_serve_on_a_missing_database_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", str(tmp_path / "none.db"), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: no database at") and done.stderr.count("\n") == 1


def test_without_the_web_extra_serve_says_what_to_install(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['uvicorn'] = None; from ckptdb.cli import main; main(['serve'])"
    done = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == "Error: ckptdb serve needs the web extra: pip install 'ckptdb[web]' (starlette, jinja2, uvicorn)\n"
    )


@pytest.mark.engine("sqlite")  # the warning does not depend on the engine
def test_another_host_is_warned_about(engine: str, tmp_path: Path) -> None:
    target = str(tmp_path / "w.db")
    build_demo(target)
    process = subprocess.Popen(
        [sys.executable, "-m", "ckptdb", "--db", target, "serve", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith("ckptdb serve: http://0.0.0.0:")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert err.startswith("warning: listening on 0.0.0.0: anyone who can reach it can read every checkpoint")
