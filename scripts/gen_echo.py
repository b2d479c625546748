"""Generate realistic echo_orchestration 0.1.x checkpoint files (test and benchmark data).

Usage:
    python scripts/gen_echo.py OUT_DIR --count N [--seed S] [--state-bytes 2000] [--now RFC3339|now]

Writes N files `OUT_DIR/{id}.json`, each `Checkpoint(...).to_json()` (byte-exact
`serde_json::to_string_pretty` output, as the Rust `FileCheckpointStore` writes it). The content
mimics `tests/fixtures/echo-0.1/`:

- ids are uuid4s drawn from a seeded RNG: the same `--seed`, `--count`, `--state-bytes` and
  `--now` give byte-identical files (and the first k ids of a run are the ids of a run with
  `--count k`);
- `created_at` is spread over the 30 days before `--now` (default: the fixtures' reference time
  2026-11-24T02:01:04Z, so output is reproducible); chrono picks the fraction digits from the
  value, and the generator draws values so that about 7% get 0 digits, 8% 3, 7% 6 and 78% 9;
- the four interrupt types in the fixtures' proportions (afternode 30%, beforenode 27%,
  toolapproval 27%, userrequest 16%); `pending_action` is a tool call for `toolapproval`, else null;
- `state_snapshot` is mostly `{"current_node", "messages": [{"role", "content"}, tool calls, tool
  results...], "values": {...}}` (about 3% `{}`, 5% free-form objects) whose pretty JSON is around
  `--state-bytes` (log-normal spread, median close to it; about 1 in 200 carries a base64 image
  and is 10-60x bigger); about 12% are unicode-heavy (CJK, emoji with ZWJ sequences); about 1 in
  100 contains U+0000; about 1 in 10 holds an integer above 2^63 (u64 range); floats abound
  (embeddings, costs) and round-trip exactly.

Files are generated and written one at a time with plain open/write (no fsync: test data), so
memory stays flat for any N. Importable (no side effects at import time):

    from gen_echo import generate, iter_generate, build_checkpoint, make_rng
    ids = generate(Path(d), 1000, seed=1)         # list of ids, in generation order
    n = sum(1 for _ in iter_generate(Path(d), 10**6))  # flat memory: yields ids one by one

`generate` returns the full list of ids (about 90 bytes each: 9 MB for 100,000); use
`iter_generate` when even that matters (the CLI does).
"""

from __future__ import annotations

import argparse
import base64
import calendar
import functools
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ckptdb.echo_json import write_pretty_value
from ckptdb.model import Checkpoint, InterruptType, Timestamp

NS = 1_000_000_000
REFERENCE_NOW_NS = calendar.timegm((2026, 11, 24, 2, 1, 4, 0, 0, 0)) * NS
"""2026-11-24T02:01:04Z, the `reference_now` of the shared fixtures: the default `now`."""
SPREAD_NS = 30 * 86_400 * NS

U63 = 2**63
U64_MAX = 2**64 - 1

# Word lists, kept dense on purpose (one item per line would bury them).
# fmt: off
GRAPH_NAMES = (
    "travel_booking", "release_manager", "translation_pipeline", "code_review_pipeline",
    "k8s_deploy_guard", "onboarding_flow", "data_quality_check", "customer_refund",
    "research_assistant", "customer_support_triage", "report_generator", "sales_lead_scoring",
    "knowledge_base_update", "planner_executor", "doc_summarizer", "calendar_scheduler", "pipeline",
    "expense_approval", "pr_describer", "api_migration", "data_etl_daily", "math_tutor",
    "content_moderation", "contract_review", "résumé-screening", "multi_agent_debate", "web_scraper",
    "stock_analysis", "email_drafting", "security_audit", "bug_triage", "ticket_router", "crm_sync",
    "test_generator", "incident_response", "ReAct-loop-v2", "log_analyzer", "hr_screening",
    "meeting_notes", "recipe_planner", "shopping_assistant", "sql_agent", "marketing_copy",
    "chatbot_main", "rag_qa", "seo_optimizer", "invoice_processing",
)
UNICODE_GRAPH_NAMES = ("数据分析流程", "客服工单处理", "résumé-screening", "翻訳パイプライン", "주문_처리")
NODE_NAMES = (
    "tools", "execute_sql", "send_email", "agent", "memory_write", "score_lead", "call_llm", "router",
    "web_search", "fetch_docs", "deploy", "guardrail", "classify_intent", "tool_exec", "researcher",
    "approval_gate", "reviewer", "critique", "检索", "finalize", "retrieve", "notify", "supervisor",
    "write_draft", "plan", "format_output", "validate", "rerank", "rollback", "reflect", "node_7",
    "human_review", "coder", "planner", "extract_entities", "translate", "summarize", "审核节点",
    "generate_report", "llm", "parse_input", "生成回复",
)
START_NODES = ("start", "__start__", "parse_input", "router")
WORDS = (
    "pending", "and", "model", "for", "base", "requested", "a", "returned", "order", "of", "with",
    "approved", "retrieved", "draft", "retrying", "ms", "while", "refund", "cluster", "invoice",
    "summary", "revenue", "then", "by", "response", "customer", "increased", "query", "deployment",
    "in", "user", "reviewer", "database", "timeout", "quarterly", "contained", "from", "latency",
    "tool", "rolled", "report", "backoff", "completed", "back", "asked", "error", "shipped",
    "knowledge", "citations", "documents", "API", "three", "agent", "calling", "the",
)
CJK_PHRASES = (
    "模型输出包含敏感信息，需要人工复核。",
    "日本語も少し：ありがとうございます。",
    "请帮我分析这份季度财报的主要风险。",
    "正在调用搜索工具获取最新资料……",
    "数据库连接超时，正在进行第三次重试。",
    "繁體中文測試：資料庫、網路、軟體。",
    "订单号 2024112300017 已发货，预计明天送达。",
    "审批通过后继续执行部署流程。",
    "用户希望修改收货地址，并询问退款进度。",
    "总结：本次对话共涉及三个问题，均已解决。",
    "한국어 테스트: 배포 승인 대기 중입니다.",
    "这是一个很长的段落，用于测试多字节字符在 JSON 中的存储与读取是否正确，"
    "包括标点符号、全角空格　以及数字１２３。",
    "Ünïcödé naïve café — «quotes» and ‘single’ ones…",
    "Ελληνικά και русский текст для проверки.",
)
EMOJI = ("🤖", "🧠", "📦", "🚀", "✅", "⚠️", "🔥", "🏳️‍🌈", "👩‍💻", "👨‍👩‍👧‍👦", "🇨🇳", "🇯🇵", "😀", "🔑", "🎉")
VALUE_KEYS = (
    "KEY_UPPER", "summary", "final_answer", "temperature", "metadata", "plan", "cost_usd", "context",
    "用户", "retry_count", "status", "$ref", "tool_results", "error", "123", "notes", "result", "null",
    "approved", "user_query", "input", "embedding", "id", "Key", "__proto__", "price", "session_id",
    "config", "documents", "model", "订单号", "first name", "user_id", "reviewer", "iteration", "flags",
    "draft", "key", "trace_id", "🔑", "quantity", "备注", "a.b", "language", "naïve", "", "feedback",
    "intent", "tags", "latency_ms", "history", "tokens", "scores", "items", "retrieved_docs",
)
TOOLS = ("shell_exec", "http_request", "transfer_funds", "deploy_service", "send_email", "execute_sql",
         "web_search", "post_to_slack", "create_ticket")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
EDGE_FLOATS = (1e16, 1.5e-7, 0.30000000000000004, 123456789.0, 1e-5, 6.02214076e23, 0.1, 2.5)
_POOL_SIZE = 4096
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
NUL_TEXT = "binary-ish tool output: \u0000\u0001\u0002 <- NUL, SOH, STX"

_INTERRUPTS = (InterruptType.AFTER_NODE, InterruptType.BEFORE_NODE, InterruptType.TOOL_APPROVAL,
               InterruptType.USER_REQUEST)
_INTERRUPT_WEIGHTS = (30, 27, 27, 16)
_DIGIT_CLASSES = (0, 3, 6, 9)
_DIGIT_WEIGHTS = (7, 8, 7, 78)
# fmt: on


def make_rng(seed: int | str = 0) -> random.Random:
    """The generators' RNG; str seeds are deterministic too (hashed with SHA-512 by `random`)."""
    return random.Random(seed)


def new_id(rng: random.Random) -> str:
    """A uuid4 string drawn from `rng` (reproducible, unlike uuid.uuid4())."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_timestamp(rng: random.Random, now_ns: int = REFERENCE_NOW_NS) -> Timestamp:
    """A time in the 30 days before `now_ns`; its sub-second part decides chrono's 0/3/6/9 digits."""
    seconds = (now_ns - rng.randrange(SPREAD_NS)) // NS
    digits = rng.choices(_DIGIT_CLASSES, _DIGIT_WEIGHTS)[0]
    if digits == 0:
        nanos = 0
    elif digits == 3:
        nanos = rng.randrange(1, 1000) * 1_000_000
    elif digits == 6:
        micros = rng.randrange(1, 1_000_000)
        nanos = (micros if micros % 1000 else micros + 1) * 1000
    else:
        nanos = rng.randrange(1, NS)
        if nanos % 1000 == 0:
            nanos += 1
    return Timestamp(seconds * NS + nanos)


def _call_id(rng: random.Random) -> str:
    return "call_" + "".join(rng.choices(ALNUM, k=24))


@functools.lru_cache(maxsize=1)
def _sentence_pool() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Plain and unicode-heavy sentences, built once from a fixed seed (drawing words per sentence
    from the caller's RNG would double the generation time)."""
    pool_rng = random.Random(0x0EC0)

    def build(unicode_heavy: bool) -> str:
        if pool_rng.random() < (0.55 if unicode_heavy else 0.12):
            text = pool_rng.choice(CJK_PHRASES)
        else:
            text = " ".join(pool_rng.choices(WORDS, k=pool_rng.randrange(4, 18))).capitalize() + "."
        if pool_rng.random() < (0.2 if unicode_heavy else 0.03):
            text += " " + pool_rng.choice(EMOJI)
        return text

    return tuple(build(False) for _ in range(_POOL_SIZE)), tuple(build(True) for _ in range(_POOL_SIZE))


def _sentence(rng: random.Random, unicode_heavy: bool) -> str:
    return _sentence_pool()[unicode_heavy][int(rng.random() * _POOL_SIZE)]


def _text(rng: random.Random, unicode_heavy: bool, sentences: int) -> str:
    parts = [_sentence(rng, unicode_heavy) for _ in range(sentences)]
    if rng.random() < 0.1:
        parts.insert(rng.randrange(len(parts) + 1), "\n")
    return " ".join(parts) + " "


def _tool_arguments(rng: random.Random, tool: str, unicode_heavy: bool) -> dict[str, Any]:
    if tool == "shell_exec":
        command = rng.choice(
            (
                "find / -name '*.log' -mtime +7 -delete",
                'echo "你好" > /tmp/out.txt',
                "kubectl rollout restart deploy/api",
                "rm -rf ./build && make release",
            )
        )
        return {"command": command, "cwd": "/srv/app", "timeout_secs": rng.randrange(10, 900)}
    if tool == "http_request":
        return {
            "body": None,
            "headers": {"Content-Type": "application/json", "X-Request-Id": new_id(rng)},
            "method": rng.choice(("GET", "POST", "PUT", "DELETE")),
            "url": f"https://api.example.com/v2/orders/{rng.randrange(10**6)}",
        }
    if tool == "transfer_funds":
        return {
            "amount": round(rng.uniform(1, 99_999), 2),
            "currency": rng.choice(("CNY", "USD", "EUR")),
            "from_account": str(rng.randrange(10**16, 10**17)),
            "memo": _sentence(rng, unicode_heavy),
            "to_account": f"DE{rng.randrange(10**15, 10**16)}",
        }
    if tool == "deploy_service":
        return {
            "environment": rng.choice(("production", "staging")),
            "replicas": rng.randrange(1, 12),
            "service": rng.choice(("worker", "api", "gateway")),
            "version": "sha256:" + rng.randbytes(32).hex(),
        }
    if tool == "send_email":
        return {
            "body": _text(rng, unicode_heavy, 2),
            "subject": _sentence(rng, unicode_heavy),
            "to": [f"user{rng.randrange(1000)}@example.com"],
        }
    if tool == "execute_sql":
        return {"query": f"SELECT * FROM orders WHERE customer_id = {rng.randrange(10**6)} LIMIT 50"}
    return {"query": _sentence(rng, unicode_heavy), "top_k": rng.randrange(1, 20)}


def _tool_call(rng: random.Random, unicode_heavy: bool) -> dict[str, Any]:
    """A tool call in OpenAI's message shape (arguments as a compact JSON string)."""
    tool = rng.choice(TOOLS)
    arguments = json.dumps(
        _tool_arguments(rng, tool, unicode_heavy), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return {"function": {"arguments": arguments, "name": tool}, "id": _call_id(rng), "type": "function"}


def _pending_action(rng: random.Random, node: str, unicode_heavy: bool) -> dict[str, Any]:
    if rng.random() < 0.75:
        return _tool_call(rng, unicode_heavy)
    tool = rng.choice(TOOLS)
    return {
        "arguments": _tool_arguments(rng, tool, unicode_heavy),
        "reason": _sentence(rng, unicode_heavy),
        "requested_by": node,
        "risk_level": rng.choice(("low", "medium", "high")),
        "tool_call_id": _call_id(rng),
        "tool_name": tool,
    }


def _value(rng: random.Random, unicode_heavy: bool) -> Any:
    kind = rng.random()
    if kind < 0.25:
        return _sentence(rng, unicode_heavy)
    if kind < 0.40:
        return rng.randrange(-1000, 10**15) if rng.random() < 0.5 else rng.randrange(1000)
    if kind < 0.48:
        return [round(rng.gauss(0, 0.1), 17) for _ in range(rng.randrange(4, 17))]
    if kind < 0.58:
        return rng.choice((round(rng.random(), 3), rng.uniform(-1e6, 1e6), rng.choice(EDGE_FLOATS)))
    if kind < 0.66:
        return rng.choice((True, False, None))
    if kind < 0.76:
        return [rng.choice(WORDS) for _ in range(rng.randrange(0, 5))]
    if kind < 0.88:
        return {rng.choice(VALUE_KEYS): _value(rng, unicode_heavy) for _ in range(rng.randrange(0, 4))}
    return rng.choice(NODE_NAMES) + "_" + rng.choice(WORDS)


def _values(rng: random.Random, unicode_heavy: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for _ in range(rng.randrange(0, 7)):
        key = rng.choice(VALUE_KEYS)
        if key in values:
            key = f"{key}_{rng.randrange(1000)}"
        values[key] = _value(rng, unicode_heavy)
    return values


def _pretty_size(value: Any, indent: str) -> int:
    out: list[str] = []
    write_pretty_value(value, indent, out)
    return len("".join(out).encode("utf-8"))


def _image_part(rng: random.Random) -> dict[str, Any]:
    payload = base64.b64encode(rng.randbytes(rng.randrange(15_000, 90_000))).decode("ascii")
    return {"image_url": {"url": "data:image/png;base64," + payload}, "type": "image_url"}


def _messages(rng: random.Random, budget: int, unicode_heavy: bool, graph: str) -> list[dict[str, Any]]:
    """Chat messages whose pretty JSON is about `budget` bytes (at least one message)."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.15:
        text = f"You are the {graph} agent. Answer briefly; call tools when needed."
        messages.append({"content": text, "role": "system"})
        budget -= 100 + len(text)
    pending_calls: list[str] = []
    while budget > 50 or not messages:
        roll = rng.random()
        if pending_calls and roll < 0.5:
            text = _text(rng, unicode_heavy, rng.randrange(1, 4))
            message: dict[str, Any] = {
                "content": text,
                "name": rng.choice(TOOLS),
                "role": "tool",
                "tool_call_id": pending_calls.pop(),
            }
            size = 170 + len(text.encode())
        elif roll < 0.25:
            call = _tool_call(rng, unicode_heavy)
            pending_calls.append(call["id"])
            message = {"role": "assistant", "tool_calls": [call]}
            size = 260 + len(call["function"]["arguments"].encode()) * 23 // 20
        else:
            text = _text(rng, unicode_heavy, rng.randrange(1, 8))
            message = {"content": text, "role": rng.choice(("user", "assistant", "assistant"))}
            size = 70 + len(text.encode())
        messages.append(message)
        budget -= size
    return messages


def _free_form_state(rng: random.Random, unicode_heavy: bool, budget: int) -> dict[str, Any]:
    state = _values(rng, unicode_heavy)
    if budget > 600:
        state["documents"] = [_text(rng, unicode_heavy, 3) for _ in range(max(1, budget // 450))]
    return state


def build_checkpoint(
    rng: random.Random,
    *,
    now_ns: int = REFERENCE_NOW_NS,
    state_bytes: int = 2000,
    interrupt_type: InterruptType | None = None,
    checkpoint_id: str | None = None,
) -> Checkpoint:
    """One realistic checkpoint drawn from `rng` (the single builder all generators share)."""
    cid = checkpoint_id if checkpoint_id is not None else new_id(rng)
    created_at = random_timestamp(rng, now_ns)
    interrupt = interrupt_type or rng.choices(_INTERRUPTS, _INTERRUPT_WEIGHTS)[0]
    unicode_heavy = rng.random() < 0.12
    graph = rng.choice(UNICODE_GRAPH_NAMES if unicode_heavy and rng.random() < 0.5 else GRAPH_NAMES)

    path = [rng.choice(START_NODES)] if rng.random() < 0.4 else []
    path += rng.choices(NODE_NAMES, k=rng.randrange(1, 9) - len(path) or 1)
    if (
        interrupt is InterruptType.AFTER_NODE
        or (interrupt is InterruptType.TOOL_APPROVAL and rng.random() < 0.55)
        or rng.random() < 0.08
    ):
        current_node = path[-1]
    else:
        current_node = "__end__" if rng.random() < 0.02 else rng.choice(NODE_NAMES)
    roll = rng.random()
    if roll < 0.8:
        step_count = len(path) + rng.randrange(0, 4) * rng.randrange(0, 8)
    elif roll < 0.97:
        step_count = len(path) + rng.randrange(10, 200)
    else:
        step_count = rng.randrange(1000, 100_000)

    # Log-normal spread around the target; about 1 in 200 carries an image and is much bigger.
    budget = int(state_bytes * min(8.0, math.exp(rng.gauss(0.0, 0.45))))
    shape = rng.random()
    state: Any
    if shape < 0.03:
        state = {}
    elif shape < 0.08:
        state = _free_form_state(rng, unicode_heavy, budget)
    else:
        values = _values(rng, unicode_heavy)
        budget -= 80 + _pretty_size(values, "    ")
        messages = _messages(rng, budget, unicode_heavy, graph)
        if rng.random() < 0.005:
            parts = [{"text": "What is in this picture?", "type": "text"}, _image_part(rng)]
            messages.append({"content": parts, "role": "user"})
        state = {
            "current_node": path[-1] if rng.random() < 0.85 else None,
            "messages": messages,
            "values": values,
        }
    if isinstance(state, dict) and state:
        if rng.random() < 0.01:  # U+0000, which PostgreSQL text/jsonb cannot store
            state["raw_output"] = NUL_TEXT
        if rng.random() < 0.1:  # u64 values above i64::MAX (serde_json keeps them exact)
            state.setdefault("values", {})["trace_id"] = rng.randrange(U63, U64_MAX + 1)

    pending = None
    if interrupt is InterruptType.TOOL_APPROVAL:
        pending = _pending_action(rng, current_node, unicode_heavy)
    return Checkpoint(
        id=cid,
        graph_name=graph,
        current_node=current_node,
        state_snapshot=state,
        path=path,
        step_count=step_count,
        created_at=created_at,
        pending_action=pending,
        interrupt_type=interrupt,
    )


def iter_generate(
    out_dir: Path,
    count: int,
    seed: int = 0,
    state_bytes: int = 2000,
    *,
    now_ns: int = REFERENCE_NOW_NS,
) -> Iterator[str]:
    """Write `count` files into `out_dir` (created if missing) one at a time, yielding each id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = os.fspath(out_dir)
    rng = make_rng(seed)
    for _ in range(count):
        checkpoint = build_checkpoint(rng, now_ns=now_ns, state_bytes=state_bytes)
        data = memoryview(checkpoint.to_json().encode("utf-8"))
        fd = os.open(os.path.join(base, checkpoint.id + ".json"), _WRITE_FLAGS, 0o644)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        yield checkpoint.id


def generate(
    out_dir: Path,
    count: int,
    seed: int = 0,
    state_bytes: int = 2000,
    *,
    now_ns: int = REFERENCE_NOW_NS,
) -> list[str]:
    """Write `count` checkpoint files into `out_dir`; return their ids in generation order."""
    return list(iter_generate(out_dir, count, seed, state_bytes, now_ns=now_ns))


def _parse_now(text: str) -> int:
    if text == "now":
        return time.time_ns()
    return Timestamp.parse(text).unix_nanos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write realistic echo checkpoint files {id}.json.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state-bytes", type=int, default=2000, help="typical state_snapshot size (median)")
    parser.add_argument(
        "--now",
        default=None,
        help="end of the 30-day window: RFC 3339 or 'now' (default 2026-11-24T02:01:04Z)",
    )
    args = parser.parse_args(argv)
    if args.count < 0 or args.state_bytes < 0:
        parser.error("--count and --state-bytes must be >= 0")
    now_ns = REFERENCE_NOW_NS if args.now is None else _parse_now(args.now)
    started = time.perf_counter()
    ids = iter_generate(args.out_dir, args.count, args.seed, args.state_bytes, now_ns=now_ns)
    written = sum(1 for _ in ids)
    elapsed = time.perf_counter() - started
    print(f"wrote {written} checkpoint files to {args.out_dir} in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
