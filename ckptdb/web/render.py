"""HTML for the pages: the Jinja2 environment (autoescaped: every value from a checkpoint is text),
plus what templates express badly, built here with the same escaping:

- the state as a collapsible tree of <details> elements (no script: folding is the browser's own),
  capped so that a 10 MB state is a page of bounded size: at most TREE_NODES values and
  STRING_CHARS characters of each string are drawn, the rest is counted and named as cut;
- JSON values in one line for the diff and tables, cut at SHORT_CHARS;
- the chart of checkpoints over time, as SVG drawn on the server (shapes only: no script, no style).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ckptdb.echo_json import write_pretty_value
from ckptdb.model import JsonValue

TREE_NODES = 3000
"""Values drawn in one state tree; a bigger state shows the first ones and says how many are left."""
STRING_CHARS = 2000
"""Characters of one string drawn in a tree; the rest is cut, with its length said."""
SHORT_CHARS = 300
"""Characters of a one-line JSON value (diff before/after, table cells)."""
OPEN_DEPTH = 2
"""Levels of the tree open when the page loads; deeper ones open on a click."""


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ckptdb.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short_json"] = short_json
    env.filters["pretty_json"] = pretty_json
    env.filters["json_tree"] = json_tree
    env.filters["thousands"] = lambda n: f"{n:,}"
    env.filters["human_bytes"] = human_bytes
    return env


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def short_json(value: JsonValue, limit: int = SHORT_CHARS) -> str:
    """A value as compact JSON text, cut at `limit` characters (the text, escaped by the template)."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits
        text = repr(value)
    return _cut(text, limit)


def pretty_json(value: JsonValue, limit: int = 20_000) -> str:
    """A value as indented JSON as echo writes it, cut at `limit` characters."""
    out: list[str] = []
    write_pretty_value(value, "", out)
    return _cut("".join(out), limit)


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.left = nodes
        self.cut = 0


def json_tree(value: JsonValue, nodes: int = TREE_NODES) -> Markup:
    """The value as nested <details> (objects and arrays) and <span>s (scalars), every text escaped."""
    budget = _Budget(nodes)
    out: list[str] = ['<div class="tree">']
    _node(value, None, 0, budget, out)
    if budget.cut:
        out.append(f'<p class="cut">{budget.cut:,} more values not drawn (the state is large): ')
        out.append("download the echo file to read them all.</p>")
    out.append("</div>")
    return Markup("".join(out))


def _scalar(value: JsonValue) -> str:
    if value is None:
        return '<span class="null">null</span>'
    if isinstance(value, bool):
        return f'<span class="bool">{"true" if value else "false"}</span>'
    if isinstance(value, (int, float)):
        return f'<span class="num">{escape(short_json(value))}</span>'
    text = orjson.dumps(_cut(str(value), STRING_CHARS)).decode()
    return f'<span class="str">{escape(text)}</span>'


def _count(value: JsonValue) -> int:
    """Values inside a container, counted without drawing them (for what a cut leaves out)."""
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        total += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


def _node(value: JsonValue, key: str | None, depth: int, budget: _Budget, out: list[str]) -> None:
    if budget.left <= 0:
        budget.cut += _count(value)
        return
    budget.left -= 1
    label = "" if key is None else f'<span class="key">{escape(key)}</span>: '
    if isinstance(value, (dict, list)):
        size = len(value)
        kind = f"{{{size:,} keys}}" if isinstance(value, dict) else f"[{size:,} items]"
        opened = " open" if depth < OPEN_DEPTH else ""
        out.append(f'<details{opened}><summary>{label}<span class="kind">{kind}</span></summary><ul>')
        items = value.items() if isinstance(value, dict) else ((str(i), v) for i, v in enumerate(value))
        for child_key, child in items:
            if budget.left <= 0:
                budget.cut += _count(child)
                continue
            out.append("<li>")
            _node(child, child_key, depth + 1, budget, out)
            out.append("</li>")
        out.append("</ul></details>")
        return
    out.append(f"{label}{_scalar(value)}")


def tool_call(action: JsonValue) -> tuple[str | None, JsonValue]:
    """(tool name, arguments) of a pending action, in OpenAI's message shape
    (`function.name`, `function.arguments` as JSON text) or flat (`tool_name`/`tool`/`name`,
    `arguments`/`args`); (None, None) when it holds no recognisable call."""
    if not isinstance(action, dict):
        return None, None
    function = action.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(orjson.JSONDecodeError):
                arguments = orjson.loads(arguments)
        return function["name"], arguments
    for name_key in ("tool_name", "tool", "name"):
        name = action.get(name_key)
        if isinstance(name, str):
            return name, action.get("arguments", action.get("args"))
    return None, None


CHART_WIDTH, CHART_HEIGHT, CHART_BARS = 720, 120, 48


def time_chart(nanos: Sequence[int]) -> dict[str, Any] | None:
    """Bars of how many checkpoints fall in each of CHART_BARS equal spans of time, as SVG
    rectangle coordinates for the template; None without any times."""
    if not nanos:
        return None
    low, high = min(nanos), max(nanos)
    span = max(high - low, 1)
    counts = [0] * CHART_BARS
    for value in nanos:
        counts[min((value - low) * CHART_BARS // span, CHART_BARS - 1)] += 1
    tallest = max(counts)
    width = CHART_WIDTH / CHART_BARS
    bars = []
    for index, count in enumerate(counts):
        height = 0 if count == 0 else max(1.0, count / tallest * (CHART_HEIGHT - 4))
        bars.append(
            {
                "x": round(index * width + 1, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "w": round(width - 2, 1),
                "h": round(height, 1),
                "count": count,
            }
        )
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT, "tallest": tallest}
