"""The inspection commands through click's test runner (exact output, exit status) and each once as
a real `python -m ckptdb` subprocess, on a small hand-made database whose answers are known.

Every test runs on SQLite and on PostgreSQL (`engine`, `db_target`) and expects the same output,
except where a test says why an engine differs (its own SQL dialect and error messages in
`ckptdb sql`, free space that PostgreSQL does not report).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import module_db_target, pg_database_url
from helpers.db import fill, has_database, is_postgres

from ckptdb import Checkpoint, InterruptType, Timestamp
from ckptdb.cli import main

REPO = Path(__file__).resolve().parents[1]


def at(text: str) -> Timestamp:
    return Timestamp.parse(text)


def cp(cid: str, graph: str, node: str, kind: str, step: int, created: str, **fields: Any) -> Checkpoint:
    return Checkpoint(
        id=cid,
        graph_name=graph,
        current_node=node,
        state_snapshot=fields.get("state", {"current_node": None, "messages": [], "values": {}}),
        path=fields.get("path", ["start", node]),
        step_count=step,
        created_at=at(created),
        pending_action=fields.get("pending"),
        interrupt_type=InterruptType(kind),
    )


SEND = {
    "function": {"arguments": '{"to":"a@example.com"}', "name": "send_email"},
    "id": "call_1",
    "type": "function",
}
CHECKPOINTS = [
    cp(
        "alpha-1",
        "alpha",
        "plan",
        "beforenode",
        1,
        "2026-11-20T10:00:00Z",
        state={
            "current_node": None,
            "messages": [{"content": "hi", "role": "user"}],
            "values": {"approved": True},
        },
    ),
    cp(
        "alpha-2",
        "alpha",
        "send_email",
        "toolapproval",
        2,
        "2026-11-21T10:00:00.500Z",
        pending=SEND,
        state={"current_node": "plan", "messages": [], "values": {"approved": False, "note": "line1\nline2"}},
    ),
    cp("beta-1", "beta", "draft", "afternode", 3, "2026-11-22T08:30:00.123456789Z"),
    cp("beta-2", "beta", "review", "userrequest", 4, "2026-11-23T09:00:00Z"),
    cp("gamma-1", "gamma", "__end__", "afternode", 9, "2026-11-19T00:00:00Z"),
    cp("cjk-1", "数据流程", "检索", "afternode", 0, "2026-11-18T12:00:00+08:00"),
]


@pytest.fixture(scope="module")
def small_db_file(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[str]:
    with module_db_target(engine, tmp_path_factory.mktemp("cli")) as target:
        yield fill(target, CHECKPOINTS)


@pytest.fixture
def db(small_db_file: str, tmp_path: Path) -> str:
    """A private copy of the small database (commands may delete from it); on PostgreSQL a fresh
    database filled the same way."""
    if is_postgres(small_db_file):
        return fill(pg_database_url(), CHECKPOINTS)
    copy = tmp_path / "small.db"
    shutil.copyfile(small_db_file, copy)
    return str(copy)


def ckptdb(db: str, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--db", db, *args], input=input, env=env, catch_exceptions=False)


def ids_of(result: Result) -> list[str]:
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def error(result: Result, message: str) -> None:
    """One line on stderr, nothing on stdout, exit status 1, no traceback."""
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")


# -- list ------------------------------------------------------------------------------------------

LIST_TABLE = """\
id       graph_name  current_node  interrupt_type  step_count  created_at
-------  ----------  ------------  --------------  ----------  ------------------------------
beta-2   beta        review        userrequest              4  2026-11-23T09:00:00Z
beta-1   beta        draft         afternode                3  2026-11-22T08:30:00.123456789Z
alpha-2  alpha       send_email    toolapproval             2  2026-11-21T10:00:00.500Z
alpha-1  alpha       plan          beforenode               1  2026-11-20T10:00:00Z
gamma-1  gamma       __end__       afternode                9  2026-11-19T00:00:00Z
cjk-1    数据流程    检索          afternode                0  2026-11-18T12:00:00+08:00
"""


def test_list_table(db: str) -> None:
    result = ckptdb(db, "list", "--format", "table")
    assert (result.exit_code, result.stdout, result.stderr) == (0, LIST_TABLE, "")


def test_list_is_jsonl_when_piped(db: str) -> None:
    result = ckptdb(db, "list", "--limit", "2")
    assert result.exit_code == 0
    assert result.stdout == (
        '{"id": "beta-2", "graph_name": "beta", "current_node": "review", "interrupt_type": "userrequest", '
        '"step_count": 4, "created_at": "2026-11-23T09:00:00Z"}\n'
        '{"id": "beta-1", "graph_name": "beta", "current_node": "draft", "interrupt_type": "afternode", '
        '"step_count": 3, "created_at": "2026-11-22T08:30:00.123456789Z"}\n'
    )


def test_list_json_and_csv(db: str) -> None:
    result = ckptdb(db, "list", "--graph", "数据流程", "-f", "json")
    assert result.stdout == (
        '[\n{"id": "cjk-1", "graph_name": "数据流程", "current_node": "检索", "interrupt_type": "afternode", '
        '"step_count": 0, "created_at": "2026-11-18T12:00:00+08:00"}\n]\n'
    )
    assert ckptdb(db, "list", "--graph", "nope", "-f", "json").stdout == "[]\n"
    result = ckptdb(db, "list", "--type", "toolapproval", "-f", "csv")
    assert result.stdout == (
        "id,graph_name,current_node,interrupt_type,step_count,created_at\n"
        "alpha-2,alpha,send_email,toolapproval,2,2026-11-21T10:00:00.500Z\n"
    )
    assert ckptdb(db, "list", "--graph", "nope", "-f", "table").stdout == (
        "id  graph_name  current_node  interrupt_type  step_count  created_at\n"
        "--  ----------  ------------  --------------  ----------  ----------\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--graph", "alpha"], ["alpha-2", "alpha-1"]),
        (["--node", "draft"], ["beta-1"]),
        (["--type", "userrequest", "--type", "ToolApproval"], ["beta-2", "alpha-2"]),
        (["--since", "2026-11-21T10:00:00.5Z"], ["beta-2", "beta-1", "alpha-2"]),
        (["--until", "2026-11-20"], ["gamma-1", "cjk-1"]),
        (["--since", "2026-11-19", "--until", "2026-11-22 08:30"], ["alpha-2", "alpha-1", "gamma-1"]),
        (["--where", "values.approved == false"], ["alpha-2"]),
        (["--where", "values.approved exists", "--where", "values.approved != false"], ["alpha-1"]),
        (["--where", "messages[0].role == user"], ["alpha-1"]),
        (["--limit", "3"], ["beta-2", "beta-1", "alpha-2"]),
        (["--limit", "0"], []),
    ],
)
def test_list_filters(db: str, args: list[str], expected: list[str]) -> None:
    result = ckptdb(db, "list", *args)
    assert (result.exit_code, ids_of(result)) == (0, expected)


def test_list_relative_times(db: str) -> None:
    now = Timestamp.now().unix_nanos
    age = (now - at("2026-11-20T22:00:00Z").unix_nanos) // 1_000_000_000 // 60  # minutes back to then
    result = ckptdb(db, "list", "--since", f"{age}m")
    assert ids_of(result) == ["beta-2", "beta-1", "alpha-2"]


# -- show / latest -------------------------------------------------------------------------------


def test_show(db: str) -> None:
    result = ckptdb(db, "show", "alpha-2")
    assert result.exit_code == 0
    assert result.stdout == CHECKPOINTS[1].to_json()  # byte for byte, no final newline (as echo)
    assert ckptdb(db, "show", "alpha-2", "--field", "pending_action.function.name").stdout == "send_email\n"
    assert ckptdb(db, "show", "alpha-2", "--field", "values.note").stdout == "line1\nline2\n"
    assert ckptdb(db, "show", "alpha-2", "--field", "values.approved").stdout == "false\n"
    assert ckptdb(db, "show", "alpha-2", "--field", "step_count").stdout == "2\n"
    assert ckptdb(db, "show", "alpha-2", "--field", "pending_action.function").stdout == (
        '{\n  "arguments": "{\\"to\\":\\"a@example.com\\"}",\n  "name": "send_email"\n}\n'
    )
    assert ckptdb(db, "show", "cjk-1", "--field", "created_at").stdout == "2026-11-18T12:00:00+08:00\n"


def test_latest(db: str) -> None:
    result = ckptdb(db, "latest", "beta")
    assert (result.exit_code, result.stdout) == (0, CHECKPOINTS[3].to_json())
    assert ckptdb(db, "latest", "alpha", "--field", "id").stdout == "alpha-2\n"
    error(
        ckptdb(db, "latest", "delta"),
        f"no checkpoints for graph 'delta' in {db} (`ckptdb graphs` lists them)",
    )


# -- graphs / stats / pending --------------------------------------------------------------------


def test_graphs(db: str) -> None:
    result = ckptdb(db, "graphs", "-f", "table")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "graph_name  checkpoints  newest                    bytes\n"
        "----------  -----------  ------------------------  -----\n"
        "alpha                 2  2026-11-21T10:00:00.500Z  324 B\n"
        "beta                  2  2026-11-23T09:00:00Z      129 B\n"
        "gamma                 1  2026-11-19T00:00:00Z       66 B\n"
        "数据流程              1  2026-11-18T04:00:00Z       65 B\n"
    )
    rows = [json.loads(line) for line in ckptdb(db, "graphs").stdout.splitlines()]
    assert rows[0] == {
        "graph_name": "alpha",
        "checkpoints": 2,
        "newest": "2026-11-21T10:00:00.500Z",
        "bytes": 324,
        "bytes_estimated": False,
    }
    assert ckptdb(db, "graphs", "--exact", "-f", "csv").stdout.splitlines()[:2] == [
        "graph_name,checkpoints,newest,bytes,bytes_estimated",
        "alpha,2,2026-11-21T10:00:00.500Z,324,false",
    ]


def test_stats(db: str) -> None:
    result = ckptdb(db, "stats", "-f", "table")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"database     {db}"
    assert re.fullmatch(r"size         \d+\.\d (KiB|MiB)", lines[1])
    assert "\n".join(lines[2:]) + "\n" == (
        "checkpoints  6 in 4 graphs\n"
        "oldest       2026-11-18T04:00:00Z\n"
        "newest       2026-11-23T09:00:00Z\n"
        "\n"
        "graph_name    checkpoints  beforenode  afternode  toolapproval  userrequest  newest\n"
        "------------  -----------  ----------  ---------  ------------  -----------  "
        "------------------------\n"
        "alpha                   2           1          0             1            0  "
        "2026-11-21T10:00:00.500Z\n"
        "beta                    2           0          1             0            1  2026-11-23T09:00:00Z\n"
        "gamma                   1           0          1             0            0  2026-11-19T00:00:00Z\n"
        "数据流程                1           0          1             0            0  2026-11-18T04:00:00Z\n"
        "(all graphs)            6           1          3             1            1  2026-11-23T09:00:00Z\n"
    )
    document = json.loads(ckptdb(db, "stats").stdout)  # json when piped
    assert document.pop("database_bytes") > 0
    wal = document.pop("wal")
    if is_postgres(db):
        assert wal is None
    else:
        assert wal["bytes"] >= 0 and wal["checkpoints_starved"] is False
    assert document == {
        "database": db,
        "free_bytes": None if is_postgres(db) else 0,  # PostgreSQL cannot tell without a scan
        "checkpoints": 6,
        "graphs": 4,
        "oldest": "2026-11-18T04:00:00Z",
        "newest": "2026-11-23T09:00:00Z",
        "by_interrupt_type": {"beforenode": 1, "afternode": 3, "toolapproval": 1, "userrequest": 1},
        "by_graph": [
            {
                "graph_name": "alpha",
                "checkpoints": 2,
                "beforenode": 1,
                "afternode": 0,
                "toolapproval": 1,
                "userrequest": 0,
                "oldest": "2026-11-20T10:00:00Z",
                "newest": "2026-11-21T10:00:00.500Z",
            },
            {
                "graph_name": "beta",
                "checkpoints": 2,
                "beforenode": 0,
                "afternode": 1,
                "toolapproval": 0,
                "userrequest": 1,
                "oldest": "2026-11-22T08:30:00.123456789Z",
                "newest": "2026-11-23T09:00:00Z",
            },
            {
                "graph_name": "gamma",
                "checkpoints": 1,
                "beforenode": 0,
                "afternode": 1,
                "toolapproval": 0,
                "userrequest": 0,
                "oldest": "2026-11-19T00:00:00Z",
                "newest": "2026-11-19T00:00:00Z",
            },
            {
                "graph_name": "数据流程",
                "checkpoints": 1,
                "beforenode": 0,
                "afternode": 1,
                "toolapproval": 0,
                "userrequest": 0,
                "oldest": "2026-11-18T04:00:00Z",
                "newest": "2026-11-18T04:00:00Z",
            },
        ],
    }
    bad = ckptdb(db, "stats", "-f", "csv")
    assert bad.exit_code == 2 and "Invalid value for '--format' / '-f'" in bad.stderr


def test_pending(db: str) -> None:
    result = ckptdb(db, "pending", "-f", "table")
    assert result.exit_code == 0
    assert result.stdout == (
        "graph_name  id       interrupt_type  current_node  step_count  created_at                "
        "pending_action\n"
        "----------  -------  --------------  ------------  ----------  ------------------------  "
        "------------------------------------------------------------\n"
        "beta        beta-2   userrequest     review                 4  2026-11-23T09:00:00Z\n"
        "alpha       alpha-2  toolapproval    send_email             2  2026-11-21T10:00:00.500Z  "
        '{"function":{"arguments":"{\\"to\\":\\"a@example.com\\"}","name…\n'
    )
    rows = [json.loads(line) for line in ckptdb(db, "pending").stdout.splitlines()]
    assert [(row["id"], row["pending_action"]) for row in rows] == [("beta-2", None), ("alpha-2", SEND)]


# -- rm / prune / vacuum ---------------------------------------------------------------------------


def test_rm(db: str) -> None:
    error(ckptdb(db, "rm", "alpha-1", "nope"), "no checkpoint with id 'nope': nothing was deleted")
    assert len(ids_of(ckptdb(db, "list"))) == 6
    result = ckptdb(db, "rm", "alpha-1", "beta-1")
    assert (result.exit_code, result.stdout) == (0, "deleted 2 checkpoints\n")
    assert ckptdb(db, "rm", "alpha-1", "gamma-1", "--missing-ok").stdout == "deleted 1 checkpoint\n"
    assert ids_of(ckptdb(db, "list")) == ["beta-2", "alpha-2", "cjk-1"]
    assert ckptdb(db, "rm").exit_code == 2  # an id is required


PRUNE_PLAN = """\
graph_name  checkpoints  delete  keep  bytes
----------  -----------  ------  ----  -----
alpha                 2       1     1  108 B
beta                  2       1     1   64 B
"""


def test_prune_dry_run_and_confirmation(db: str) -> None:
    result = ckptdb(db, "prune", "--keep-last", "1", "--dry-run")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == PRUNE_PLAN + (
        "would delete 2 of 6 checkpoints in 2 graphs (172 B of checkpoint JSON); "
        "nothing was changed (--dry-run)\n"
    )
    declined = ckptdb(db, "prune", "--keep-last", "1", input="n\n")
    assert declined.exit_code == 1
    assert (
        declined.stdout
        == PRUNE_PLAN + "Delete 2 of 6 checkpoints in 2 graphs (172 B of checkpoint JSON)? [y/N]: n\n"
    )
    assert declined.stderr == "Aborted!\n"
    assert len(ids_of(ckptdb(db, "list"))) == 6
    accepted = ckptdb(db, "prune", "--keep-last", "1", input="y\n")
    assert accepted.exit_code == 0
    assert accepted.stdout.startswith(PRUNE_PLAN + "Delete 2 of 6 checkpoints in 2 graphs")
    assert "deleted 2 checkpoints\n" in accepted.stdout
    assert ids_of(ckptdb(db, "list")) == ["beta-2", "alpha-2", "gamma-1", "cjk-1"]


def test_prune_yes_older_than_graph_vacuum(db: str) -> None:
    result = ckptdb(
        db, "prune", "--older-than", "2026-11-21", "--graph", "alpha", "--graph", "gamma", "--yes"
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "graph_name  checkpoints  delete  keep  bytes",
        "----------  -----------  ------  ----  -----",
        "alpha                 2       1     1  108 B",
        "gamma                 1       1     0   66 B",
    ]
    assert lines[4:] == ["deleted 2 checkpoints"]  # two small rows free no whole page: no space line
    assert ids_of(ckptdb(db, "list")) == ["beta-2", "beta-1", "alpha-2", "cjk-1"]
    nothing = ckptdb(db, "prune", "--keep-last", "5")
    assert (nothing.exit_code, nothing.stdout) == (0, "nothing to delete (4 checkpoints considered)\n")
    vacuumed = ckptdb(db, "prune", "--keep-last", "0", "--graph", "beta", "--yes", "--vacuum")
    assert vacuumed.stdout.splitlines()[-2:][0] == "deleted 2 checkpoints"
    assert re.fullmatch(r"vacuumed: \S+ \S+ -> \S+ \S+ on disk", vacuumed.stdout.splitlines()[-1])
    assert ids_of(ckptdb(db, "list")) == ["alpha-2", "cjk-1"]


def test_prune_errors(db: str) -> None:
    error(ckptdb(db, "prune"), "say what to prune: --keep-last N, --older-than AGE, or both")
    error(
        ckptdb(db, "prune", "--keep-last", "1", "--graph", "delta"),
        f"no graph named 'delta' in {db} (`ckptdb graphs` lists them)",
    )
    error(
        ckptdb(db, "prune", "--older-than", "a month"),
        "--older-than: cannot read 'a month' as a time: use a date (2026-11-03), a date and time "
        "(2026-11-03T14:30:00Z; without a zone it is UTC) or an age (7d, 24h, 30m, 45s, 2w, 1d12h)",
    )
    assert ckptdb(db, "prune", "--keep-last", "-1").exit_code == 2


def test_a_host_clock_an_hour_fast_decides_nothing(db_target: str) -> None:
    """A host whose clock ran an hour fast saved step 1 (waiting for an approval); a correct host
    then saved steps 2 and 3. `latest` and `pending` give step 3, and `prune --keep-last 1 --yes`
    deletes steps 1 and 2; `list` keeps echo's created_at order."""
    fill(
        db_target,
        [
            cp("step-1", "run", "send_email", "toolapproval", 1, "2026-11-03T10:00:00Z", pending=SEND),
            cp("step-2", "run", "plan", "afternode", 2, "2026-11-03T09:00:01Z"),
            cp("step-3", "run", "review", "userrequest", 3, "2026-11-03T09:00:02Z"),
        ],
    )
    assert ckptdb(db_target, "latest", "run", "--field", "step_count").stdout == "3\n"
    assert ids_of(ckptdb(db_target, "pending")) == ["step-3"]
    assert ids_of(ckptdb(db_target, "list")) == ["step-1", "step-3", "step-2"]
    result = ckptdb(db_target, "prune", "--keep-last", "1", "--yes")
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, "deleted 2 checkpoints")
    assert ids_of(ckptdb(db_target, "list")) == ["step-3"]


def test_vacuum(db: str) -> None:
    result = ckptdb(db, "vacuum")
    assert result.exit_code == 0
    assert re.fullmatch(r"vacuumed: \d+\.\d KiB -> \d+\.\d KiB on disk\n", result.stdout)


# -- sql -------------------------------------------------------------------------------------------


def test_sql(db: str) -> None:
    query = (
        "SELECT graph_name, count(*) AS n, sum(message_count) AS messages FROM checkpoint_summary "
        "GROUP BY 1 ORDER BY 1"
    )
    assert ckptdb(db, "sql", query, "-f", "table").stdout == (
        "graph_name  n  messages\n"
        "----------  -  --------\n"
        "alpha       2         1\n"
        "beta        2         0\n"
        "gamma       1         0\n"
        "数据流程    1         0\n"
    )
    assert ckptdb(db, "sql", query, "-f", "csv").stdout.splitlines() == [
        "graph_name,n,messages",
        "alpha,2,1",
        "beta,2,0",
        "gamma,1,0",
        "数据流程,1,0",
    ]
    assert ckptdb(db, "sql", "SELECT 1 AS one, NULL AS none_here, 'x' AS x").stdout == (
        '{"one": 1, "none_here": null, "x": "x"}\n'
    )
    assert ckptdb(db, "sql", "SELECT 1 AS one WHERE 1 = 0", "-f", "json").stdout == "[]\n"


def test_sql_values_json_has_no_type_for(db: str) -> None:
    """sum() of a bigint is `numeric` on PostgreSQL (a Decimal to the driver): still a JSON number,
    right-aligned in a table, as SQLite's integer sum is."""
    query = "SELECT sum(step_count) AS steps, count(*) AS n FROM checkpoints"
    assert ckptdb(db, "sql", query).stdout == '{"steps": 19, "n": 6}\n'
    assert ckptdb(db, "sql", query, "-f", "table").stdout == "steps  n\n-----  -\n   19  6\n"
    assert ckptdb(db, "sql", query, "-f", "csv").stdout == "steps,n\n19,6\n"


READS_ONLY = {  # how each engine names what `sql` accepts
    "sqlite": "Error: refused: `sql` only reads (SELECT, WITH, reporting PRAGMAs such as table_info); ",
    "postgres": "Error: refused: `sql` only reads (one SELECT, WITH, VALUES or TABLE query, or SHOW or "
    "EXPLAIN); ",
}


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM checkpoints",
        "DROP TABLE checkpoints",
        pytest.param("ATTACH 'x.db' AS x", marks=pytest.mark.engine("sqlite")),
        pytest.param("PRAGMA journal_mode = DELETE", marks=pytest.mark.engine("sqlite")),
        pytest.param("COPY checkpoints TO '/tmp/x'", marks=pytest.mark.engine("postgres")),
        pytest.param("SET default_transaction_read_only = off", marks=pytest.mark.engine("postgres")),
    ],
)
def test_sql_refuses_writes(db: str, engine: str, statement: str) -> None:
    result = ckptdb(db, "sql", statement)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(READS_ONLY[engine])
    assert result.stderr.endswith("nothing was changed\n") and result.stderr.count("\n") == 1
    assert len(ids_of(ckptdb(db, "list"))) == 6


def test_sql_errors(db: str) -> None:
    error(ckptdb(db, "sql", "SELECT 1; SELECT 2"), "refused: one SQL statement at a time (nothing was run)")
    # A mistake in the query: the engine's own message, after "SQL error: ".
    unknown = 'column "nope" does not exist' if is_postgres(db) else "no such column: nope"
    error(ckptdb(db, "sql", "SELECT nope FROM checkpoints"), f"SQL error: {unknown}")


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "no checkpoint with id 'nope' in {db}"),
        (["show", "alpha-1", "--field", "values.nope"], None),
        (
            ["list", "--since", "yesterday"],
            "--since: cannot read 'yesterday' as a time: use a date (2026-11-03), "
            "a date and time (2026-11-03T14:30:00Z; without a zone it is UTC) "
            "or an age (7d, 24h, 30m, 45s, 2w, 1d12h)",
        ),
        (["list", "--until", "2026-02-30"], None),
        (
            ["list", "--type", "approval"],
            "unknown interrupt type 'approval': use beforenode, afternode, toolapproval or userrequest",
        ),
        (
            ["list", "--where", "values.x ~ 1"],
            "cannot read state condition 'values.x ~ 1'; write PATH OP VALUE, "
            "e.g. 'values.approved == false' or 'values.task exists'",
        ),
        (["list", "--where", "values.x < true"], "< compares numbers or strings, not true"),
    ],
)
def test_errors_are_one_line(db: str, args: list[str], message: str | None) -> None:
    result = ckptdb(db, *args)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    if message is not None:
        assert result.stderr == f"Error: {message.format(db=db)}\n"


COMMANDS = [
    ["list"],
    ["show", "x"],
    ["latest", "g"],
    ["graphs"],
    ["stats"],
    ["pending"],
    ["rm", "x"],
    ["prune", "--keep-last", "1"],
    ["vacuum"],
    ["sql", "SELECT 1"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_missing_database_is_never_created(tmp_path: Path, args: list[str], db_target: str) -> None:
    if is_postgres(db_target):  # the database exists (ckptdb never creates one), its schema does not
        message = f"{db_target} has no ckptdb schema: run `ckptdb --db {db_target} db upgrade`"
    else:
        message = f"no database at {db_target}: check the path or --db (nothing was created)"
    error(ckptdb(db_target, *args), message)
    assert list(tmp_path.iterdir()) == []
    assert not has_database(db_target)


def test_ckptdb_url_from_the_environment(db: str) -> None:
    url = db if is_postgres(db) else f"sqlite:///{db}"
    result = CliRunner().invoke(main, ["list", "--graph", "gamma"], env={"CKPTDB_URL": url})
    assert ids_of(result) == ["gamma-1"]


def test_every_inspection_command_has_help() -> None:
    for name in ("list", "show", "latest", "graphs", "stats", "pending", "rm", "prune", "vacuum", "sql"):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and result.stdout.startswith(f"Usage: main {name} ")


# -- real subprocesses -----------------------------------------------------------------------------


def run(db: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "ckptdb", "--db", db, *args],
        capture_output=True,
        text=True,
        input=input,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def test_subprocess_read_commands(db: str) -> None:
    done = run(db, "list", "--format", "table")
    assert (done.returncode, done.stdout, done.stderr) == (0, LIST_TABLE, "")
    done = run(db, "show", "alpha-2")
    assert (done.returncode, done.stdout) == (0, CHECKPOINTS[1].to_json())
    done = run(db, "latest", "alpha", "--field", "current_node")
    assert (done.returncode, done.stdout) == (0, "send_email\n")
    done = run(db, "graphs", "-f", "csv")
    assert (done.returncode, done.stdout.splitlines()[1]) == (0, "alpha,2,2026-11-21T10:00:00.500Z,324,false")
    done = run(db, "stats")
    assert (done.returncode, json.loads(done.stdout)["by_interrupt_type"]) == (
        0,
        {"beforenode": 1, "afternode": 3, "toolapproval": 1, "userrequest": 1},
    )
    done = run(db, "pending")
    assert (done.returncode, [json.loads(line)["id"] for line in done.stdout.splitlines()]) == (
        0,
        ["beta-2", "alpha-2"],
    )
    done = run(db, "sql", "SELECT count(*) AS n FROM checkpoints")
    assert (done.returncode, done.stdout) == (0, '{"n": 6}\n')


def test_subprocess_errors(db: str, tmp_path: Path) -> None:
    done = run(db, "show", "nope")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"Error: no checkpoint with id 'nope' in {db}\n",
    )
    done = run(db, "list", "--type", "x")
    assert (done.returncode, done.stderr) == (
        1,
        "Error: unknown interrupt type 'x': use beforenode, afternode, toolapproval or userrequest\n",
    )
    done = run(db, "sql", "DELETE FROM checkpoints")
    assert (
        done.returncode == 1 and done.stderr.startswith("Error: refused: ") and "Traceback" not in done.stderr
    )
    missing = tmp_path / "missing.db"
    done = run(str(missing), "graphs")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: no database at {missing}: check the path or --db (nothing was created)\n",
    )
    assert not missing.exists()


def test_subprocess_write_commands(db: str) -> None:
    done = run(db, "prune", "--keep-last", "1")  # stdin is empty: the question is not answered
    assert (done.returncode, done.stderr) == (1, "Aborted!\n")
    done = run(db, "prune", "--keep-last", "1", "--yes")
    assert (
        done.returncode == 0
        and done.stdout.startswith(PRUNE_PLAN)
        and "deleted 2 checkpoints\n" in done.stdout
    )
    done = run(db, "rm", "gamma-1")
    assert (done.returncode, done.stdout) == (0, "deleted 1 checkpoint\n")
    done = run(db, "vacuum")
    assert done.returncode == 0 and done.stdout.startswith("vacuumed: ")
    assert run(db, "sql", "SELECT count(*) AS n FROM checkpoints").stdout == '{"n": 3}\n'


def test_subprocess_stops_quietly_when_the_reader_goes(db_target: str) -> None:
    many = [cp(f"id-{i:05d}", "g", "n", "afternode", i, "2026-11-20T10:00:00Z") for i in range(20_000)]
    fill(db_target, many)
    process = subprocess.Popen(
        [sys.executable, "-m", "ckptdb", "--db", db_target, "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # like `ckptdb list | head -1`
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0
    assert json.loads(first)["id"] == "id-19999"
    assert stderr == b""


# -- damaged rows ----------------------------------------------------------------------------------

# (id, column, value): one hand-damaged copy of `beta-1` per kind of damage. The JSON kinds exist on
# SQLite only: PostgreSQL's json columns refuse text that is not JSON.
DAMAGE = [
    ("bad-time-late", "created_at", "yesterday"),  # sorts after every real time
    ("bad-time-early", "created_at", "0000-garbage"),  # and before
    ("bad-step", "step_count", "-5"),
    ("bad-time-text", "created_at_text", "'soon'"),
    ("bad-state", "state_snapshot", '\'{"values": {"approved": fals\''),
    ("bad-path", "path", "'[\"start\", '"),
    ("bad-pending", "pending_action", "'{\"function\": '"),
    ("bad-extra", "extra", "'{\"step_count\": '"),
]
JSON_COLUMNS = ("state_snapshot", "path", "pending_action", "extra")


def _damage(db: str) -> list[str]:
    """Add one damaged row of each kind this engine can hold, by hand in SQL; returns their ids."""
    import sqlalchemy as sa

    url = db.replace("://", "+psycopg://", 1) if is_postgres(db) else f"sqlite:///{db}"
    columns = (
        "id, graph_name, current_node, state_snapshot, path, step_count, created_at, pending_action, "
        "interrupt_type, created_at_text, extra, source"
    )
    added = []
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for cid, column, value in DAMAGE:
            if is_postgres(db) and column in JSON_COLUMNS:
                continue
            if column == "created_at":
                value = f"'{value}'"
            select = columns.replace("id,", f"'{cid}',", 1).replace(f" {column},", f" {value},", 1)
            copy = f"INSERT INTO checkpoints ({columns}) SELECT {select} FROM checkpoints WHERE id = 'beta-1'"
            conn.execute(sa.text(copy))
            added.append(cid)
    engine.dispose()
    return added


def _forget_save_order(db: str) -> None:
    import sqlalchemy as sa

    url = db.replace("://", "+psycopg://", 1) if is_postgres(db) else f"sqlite:///{db}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE checkpoints SET save_seq = 0"))
    engine.dispose()


def _survives(db: str, *args: str, status: int = 0) -> Result:
    """Runs one command; no traceback, every stderr line a warning (or the one error line)."""
    result = CliRunner().invoke(main, ["--db", db, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.output)
    assert result.exit_code == status, (args, result.output)
    for line in result.stderr.splitlines():
        assert re.match(r"(warning|Error): checkpoint '[^']+': the stored row is damaged \(", line), line
    return result


def _warned(result: Result) -> list[str]:
    return [line.split("'")[1] for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_inspection_commands_survive_one_damaged_row_of_each_kind(db: str) -> None:
    """Every read command reports or skips a damaged row with a warning line and carries on, with
    the sound rows' answer unchanged; none prints a traceback. `show` and `latest` of a damaged
    row say so in one line, as loading it does."""
    damaged = _damage(db)
    times_and_steps = ["bad-time-late", "bad-time-text", "bad-step", "bad-time-early"]
    unread_by_list = [cid for cid in damaged if cid not in times_and_steps]  # list reads no JSON
    listed = _survives(db, "list", "-f", "jsonl")
    sound = ["alpha-2", "alpha-1", "gamma-1", "cjk-1"]
    assert ids_of(listed) == ["beta-2", "beta-1", *sorted(unread_by_list, reverse=True), *sound]
    assert _warned(listed) == times_and_steps
    where = _survives(db, "list", "-f", "jsonl", "--where", "values.approved exists", "--since", "2026-11-01")
    assert ids_of(where) == ["alpha-2", "alpha-1"]

    for args in (["graphs"], ["graphs", "--exact"]):
        graphs = _survives(db, *args, "-f", "jsonl")
        beta = [json.loads(line) for line in graphs.stdout.splitlines()][1]
        assert (beta["graph_name"], beta["checkpoints"], beta["newest"]) == (
            "beta",
            2 + len(damaged),
            "2026-11-23T09:00:00Z",
        )
        assert sorted(_warned(graphs)) == ["bad-time-early", "bad-time-late"]
    stats = _survives(db, "stats", "-f", "json")
    document = json.loads(stats.stdout)
    assert (document["checkpoints"], document["oldest"], document["newest"]) == (
        6 + len(damaged),
        "2026-11-18T04:00:00Z",
        "2026-11-23T09:00:00Z",
    )
    assert document["by_graph"][1]["oldest"] == "2026-11-22T08:30:00.123456789Z"
    assert sorted(_warned(stats)) == ["bad-time-early", "bad-time-late"]
    assert "(all graphs)" in _survives(db, "stats", "-f", "table").stdout

    pending = _survives(db, "pending", "-f", "jsonl")
    assert ids_of(pending) == ["beta-2", "alpha-2"]  # 'yesterday' is not beta's newest checkpoint
    # The hand-made rows carry no save order, so beta-2, saved last, is beta's state: no warning.
    assert _warned(pending) == []
    assert "alpha-2" in _survives(db, "latest", "alpha").stdout
    assert '"beta-2"' in _survives(db, "latest", "beta").stdout

    # Rows without a save order (as imported echo files are) fall back to created_at, where the
    # damaged 'yesterday' sorts on top: pending reports it and answers from the sound rows.
    _forget_save_order(db)
    pending = _survives(db, "pending", "-f", "jsonl")
    assert ids_of(pending) == ["beta-2", "alpha-2"]
    assert _warned(pending) == ["bad-time-late"]
    _survives(db, "latest", "beta", status=1)
    for cid in damaged:
        _survives(db, "show", cid, status=1)
    assert "would delete" in _survives(db, "prune", "--keep-last", "1", "--dry-run").stdout
    assert len(_survives(db, "sql", "SELECT id FROM checkpoints").stdout.splitlines()) == 6 + len(damaged)
