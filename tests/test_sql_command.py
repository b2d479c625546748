"""`ckptdb sql` on SQLite and PostgreSQL: repeated column names in every format, functions with
side effects refused before they run (and shown not to have run), ordinary queries still
answered, special characters in CSV and table output, and Ctrl-C stopping a query that would
never end (a real subprocess, a real SIGINT).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import module_db_target, pg_database_url
from helpers.db import fill, is_postgres

from ckptdb import Checkpoint, InterruptType, Timestamp
from ckptdb.cli import main

REPO = Path(__file__).resolve().parents[1]
GUARD_S = 30.0
"""How long a test waits for a process before calling it hung: a guard, never a measurement."""


def cp(cid: str, graph: str, node: str, state: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        id=cid,
        graph_name=graph,
        current_node=node,
        state_snapshot=state,
        path=["start", node],
        step_count=1,
        created_at=Timestamp.parse("2026-11-20T10:00:00Z"),
        pending_action=None,
        interrupt_type=InterruptType("afternode"),
    )


CHECKPOINTS = [
    cp("a-1", "alpha", "plan", {"values": {"task": "line1\rline2"}}),
    cp("b-1", "beta", "txt.\u202eexe", {"values": {"task": " padded "}}),
    cp("c-1", "数据流程", "检索", {"values": {"task": "👨\u200d👩\u200d👧"}}),
]


@pytest.fixture(scope="module")
def small_db_file(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[str]:
    with module_db_target(engine, tmp_path_factory.mktemp("sqlcmd")) as target:
        yield fill(target, CHECKPOINTS)


@pytest.fixture
def db(small_db_file: str, tmp_path: Path) -> str:
    if is_postgres(small_db_file):
        return fill(pg_database_url(), CHECKPOINTS)
    copy = tmp_path / "small.db"
    shutil.copyfile(small_db_file, copy)
    return str(copy)


def ckptdb(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", db, *args], catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """Exit status 1, nothing on stdout, one line on stderr: that line."""
    assert (result.exit_code, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("Error: ").rstrip("\n")


# -- repeated column names -------------------------------------------------------------------------

JOIN = (
    "SELECT a.id, b.id, a.graph_name, b.graph_name FROM checkpoints a JOIN checkpoints b "
    "ON a.id < b.id WHERE a.id = 'a-1' ORDER BY b.id"
)


def test_repeated_column_names_keep_every_value_in_every_format(db: str) -> None:
    lines = ckptdb(db, "sql", JOIN, "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "a-1", "id_2": "b-1", "graph_name": "alpha", "graph_name_2": "beta"},
        {"id": "a-1", "id_2": "c-1", "graph_name": "alpha", "graph_name_2": "数据流程"},
    ]
    assert json.loads(ckptdb(db, "sql", JOIN, "-f", "json").stdout)[1]["id_2"] == "c-1"
    assert ckptdb(db, "sql", JOIN, "-f", "csv").stdout.splitlines() == [
        "id,id_2,graph_name,graph_name_2",
        "a-1,b-1,alpha,beta",
        "a-1,c-1,alpha,数据流程",
    ]
    header = ckptdb(db, "sql", JOIN, "-f", "table").stdout.splitlines()[0]
    assert header == "id   id_2  graph_name  graph_name_2"


# -- output of special characters ------------------------------------------------------------------


def test_csv_and_table_of_special_characters(db: str) -> None:
    postgres, sqlite = "state_snapshot -> 'values' ->> 'task'", "state_snapshot ->> '$.values.task'"
    task = postgres if is_postgres(db) else sqlite
    query = f"SELECT id, current_node, {task} AS task FROM checkpoints ORDER BY id"
    assert ckptdb(db, "sql", query, "-f", "csv").stdout == (
        'id,current_node,task\na-1,plan,"line1\rline2"\nb-1,txt.\u202eexe," padded "\n'
        "c-1,检索,👨\u200d👩\u200d👧\n"
    )
    assert ckptdb(db, "sql", query, "-f", "table").stdout == (
        "id   current_node   task\n"
        "---  -------------  ------------\n"
        "a-1  plan           line1\\rline2\n"
        "b-1  txt.\\u202eexe   padded\n"
        "c-1  检索           👨\u200d👩\u200d👧\n"
    )


def test_an_error_line_that_quotes_the_query_is_escaped(db: str) -> None:
    line = one_error_line(ckptdb(db, "sql", "SELECT nope\u202e\nFROM checkpoints"))
    assert "\u202e" not in line and "\\u202e" in line


# -- side effects refused --------------------------------------------------------------------------

SQLITE_REFUSED = [
    "SELECT load_extension('/tmp/evil')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT sqlite_log(1, 'x')",
    "SELECT readfile('/etc/passwd')",  # the sqlite3 shell's, not built in: unknown either way
    "ATTACH '/tmp/other.db' AS other",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "VACUUM INTO '/tmp/copy.db'",
    "SELECT * FROM (SELECT load_extension('x')) WHERE 0",
]


@pytest.mark.engine("sqlite")
@pytest.mark.parametrize("query", SQLITE_REFUSED)
def test_sqlite_refuses_what_reaches_outside(db: str, query: str, tmp_path: Path) -> None:
    before = Path(db).read_bytes()
    line = one_error_line(ckptdb(db, "sql", query))
    assert line.startswith("refused: ") or line.startswith("SQL error: no such function"), line
    assert Path(db).read_bytes() == before
    assert not Path("/tmp/other.db").exists() and not Path("/tmp/copy.db").exists()


# Each of these ran before: READ ONLY stops writes to tables, not functions with side effects.
POSTGRES_REFUSED = {
    "pg_terminate_backend": "SELECT pg_terminate_backend({pid})",
    "pg_cancel_backend": "SELECT pg_cancel_backend({pid})",
    "qualified": "SELECT pg_catalog.pg_terminate_backend({pid})",
    "quoted": 'SELECT "pg_terminate_backend"({pid})',
    "in a subquery": "SELECT (SELECT pg_terminate_backend({pid}))",
    "in a CTE": "WITH k AS (SELECT pg_terminate_backend({pid})) SELECT * FROM k",
    "in FROM": "SELECT * FROM pg_terminate_backend({pid})",
    "in a lateral join": "SELECT * FROM checkpoints, LATERAL (SELECT pg_terminate_backend({pid})) k",
    "in EXPLAIN ANALYZE": "EXPLAIN ANALYZE SELECT pg_terminate_backend({pid})",
    "in a filter": "SELECT count(*) FILTER (WHERE pg_terminate_backend({pid})) FROM checkpoints",
    "in ORDER BY": "SELECT id FROM checkpoints ORDER BY pg_terminate_backend({pid})",
    "pg_reload_conf": "SELECT pg_reload_conf()",
    "pg_rotate_logfile": "SELECT pg_rotate_logfile()",
    "pg_switch_wal": "SELECT pg_switch_wal()",
    "pg_create_restore_point": "SELECT pg_create_restore_point('x')",
    "pg_read_file": "SELECT pg_read_file('postgresql.conf')",
    "pg_read_binary_file": "SELECT pg_read_binary_file('postgresql.conf')",
    "pg_ls_dir": "SELECT pg_ls_dir('.')",
    "lo_import": "SELECT lo_import('/etc/passwd')",
    "lo_export": "SELECT lo_export(1, '/tmp/x')",
    "dblink": "SELECT * FROM dblink('dbname=postgres', 'select 1') AS t(x int)",
    "set_config": "SELECT set_config('work_mem', '1MB', false)",
    "pg_advisory_lock": "SELECT pg_advisory_lock(1)",
    "nextval": "SELECT nextval('s')",
    "setval": "SELECT setval('s', 1)",
    "txid_current": "SELECT txid_current()",
    "pg_sleep": "SELECT pg_sleep(1)",
    "query_to_xml": "SELECT query_to_xml('select pg_reload_conf()', true, true, '')",
    "ts_stat": "SELECT * FROM ts_stat('select pg_reload_conf()::text::tsvector')",
    "pg_notify": "SELECT pg_notify('c', 'x')",
    "another schema": "SELECT public.lower('x')",
}


@pytest.fixture
def bystander(db: str) -> Iterator[Any]:
    """Another session on the same server, with its backend pid: it must outlive every refusal."""
    if not is_postgres(db):
        pytest.skip("PostgreSQL only")
    import asyncpg

    from ckptdb.sql.postgres.urls import asyncpg_dsn

    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(asyncpg_dsn(db)))
    try:
        yield loop, conn
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def _server_facts(loop: asyncio.AbstractEventLoop, conn: Any) -> tuple[Any, ...]:
    async def read() -> tuple[Any, ...]:
        row = await conn.fetchrow(
            "SELECT pg_backend_pid(), pg_walfile_name(pg_current_wal_lsn()), "
            "pg_conf_load_time(), current_setting('work_mem')"
        )
        return tuple(row)

    return loop.run_until_complete(read())


@pytest.mark.engine("postgres")
@pytest.mark.parametrize("query", POSTGRES_REFUSED.values(), ids=POSTGRES_REFUSED.keys())
def test_postgres_refuses_functions_with_side_effects(db: str, bystander: Any, query: str) -> None:
    loop, conn = bystander
    before = _server_facts(loop, conn)  # the bystander's pid, the WAL file, the last config load
    line = one_error_line(ckptdb(db, "sql", query.format(pid=before[0])))
    assert line.startswith("refused: `sql` calls only functions without side effects"), line
    assert line.endswith("is not one of them: nothing was run")
    # Nothing ran: the other session is alive and answers, the server is on the same WAL file and
    # has not reloaded its configuration.
    assert _server_facts(loop, conn) == before


@pytest.mark.engine("postgres")
def test_postgres_refusal_happens_before_the_server_sees_the_query(db: str, bystander: Any) -> None:
    """With a configuration change waiting, pg_reload_conf() would apply it: it stays pending."""
    loop, conn = bystander
    read = "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
    before = loop.run_until_complete(conn.fetchval(read))
    pending = "9MB" if before == "7168" else "7MB"
    loop.run_until_complete(conn.execute(f"ALTER SYSTEM SET work_mem = '{pending}'"))
    try:
        line = one_error_line(ckptdb(db, "sql", "SELECT pg_reload_conf()"))
        assert "pg_reload_conf() is not one of them" in line
        assert loop.run_until_complete(conn.fetchval(read)) == before
    finally:  # the server as it was, whatever happened above
        loop.run_until_complete(conn.execute("ALTER SYSTEM RESET work_mem"))
        loop.run_until_complete(conn.execute("SELECT pg_reload_conf()"))


@pytest.mark.engine("postgres")
def test_postgres_reads_strings_as_the_check_did(db: str, bystander: Any) -> None:
    """With standard_conforming_strings off, `'a\\'` does not end a string for the server; the
    call that the check saw inside a later string would run. `ckptdb sql` turns it on."""
    loop, conn = bystander
    pid = _server_facts(loop, conn)[0]
    name = loop.run_until_complete(conn.fetchval("SELECT current_database()"))
    smuggled = f"SELECT 'a\\' AS x, ' , pg_terminate_backend({pid}) , ' AS y --'"
    loop.run_until_complete(conn.execute(f'ALTER DATABASE "{name}" SET standard_conforming_strings = off'))
    try:
        result = ckptdb(db, "sql", smuggled)
        assert (result.exit_code, result.stderr) == (0, ""), result.stderr
        assert json.loads(result.stdout) == {"x": "a\\", "y": f" , pg_terminate_backend({pid}) , "}
        assert _server_facts(loop, conn)[0] == pid  # the bystander is alive
    finally:  # on a connection of its own: a failed run has terminated the bystander
        _execute(db, f'ALTER DATABASE "{name}" RESET standard_conforming_strings')


ORDINARY = {
    "sqlite": [
        "SELECT graph_name, count(*) AS n FROM checkpoint_summary GROUP BY 1 ORDER BY 1",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) SELECT sum(x) FROM n",
        "SELECT json_extract(state_snapshot, '$.values.task') AS t FROM checkpoints WHERE id = 'a-1'",
        "SELECT upper(id), length(graph_name), strftime('%Y', 'now') > '2000' FROM checkpoints",
        "SELECT key FROM checkpoints, json_each(state_snapshot, '$.values')",
        "SELECT name FROM pragma_table_info('checkpoints')",
        "PRAGMA table_info(checkpoints)",
    ],
    "postgres": [
        "SELECT graph_name, count(*) AS n FROM checkpoint_summary GROUP BY 1 ORDER BY 1",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) SELECT sum(x) FROM n",
        "SELECT state_snapshot -> 'values' ->> 'task' AS t FROM checkpoints WHERE id = 'a-1'",
        "SELECT json_extract_path_text(state_snapshot, 'values', 'task') FROM checkpoints",
        "SELECT upper(id), length(graph_name), date_trunc('day', now()), extract(year FROM now()) "
        "FROM checkpoints",
        "SELECT key FROM checkpoints, json_each(state_snapshot -> 'values')",
        "SELECT substring(id FROM 1 FOR 1), position('-' IN id), trim(BOTH ' ' FROM id), "
        "coalesce(NULL, id), greatest(1, 2), now() AT TIME ZONE 'UTC' FROM checkpoints",
        "SELECT row_number() OVER (ORDER BY id), string_agg(id, ',') OVER () FROM checkpoints",
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'checkpoints'",
        "SELECT count(*) FROM generate_series(1, 10)",
        "SELECT pg_size_pretty(pg_total_relation_size('checkpoints')), pg_typeof(1)",
        "SHOW work_mem",
        "EXPLAIN SELECT * FROM checkpoints WHERE id = 'x'",
        "VALUES (1, 'x')",
        "TABLE checkpoint_summary",
    ],
}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(query, marks=pytest.mark.engine(engine), id=f"{engine}-{number}")
        for engine, queries in ORDINARY.items()
        for number, query in enumerate(queries)
    ],
)
def test_ordinary_queries_still_work(db: str, query: str) -> None:
    result = ckptdb(db, "sql", query, "-f", "jsonl")
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    assert result.stdout.strip(), "no rows"


# -- Ctrl-C ----------------------------------------------------------------------------------------

ENDLESS = {  # runs until stopped, in constant memory
    "sqlite": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "postgres": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
    "SELECT count(*) FROM r, generate_series(1, 1000000000) g",
}


def _running_query_pids(db: str) -> list[int]:
    """PostgreSQL backends of `ckptdb sql` still running a query."""
    import asyncpg

    from ckptdb.sql.postgres.urls import asyncpg_dsn

    async def read() -> list[int]:
        conn = await asyncpg.connect(asyncpg_dsn(db))
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ckptdb-sql' AND state = 'active'"
            )
            return [row[0] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"hung: {what}"
        time.sleep(0.05)


def _endless_query(db: str, engine: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ckptdb", "--db", db, "sql", ENDLESS[engine]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        # A shell that starts tests in the background ignores SIGINT, and a child inherits that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_stops_a_query_that_would_never_end(db: str, engine: str) -> None:
    process = _endless_query(db, engine)
    try:
        if engine == "postgres":
            _wait_until(lambda: _running_query_pids(db), "the query never started on the server")
        else:
            # SQLite shows no running query from outside: the database open, then a second of
            # CPU spent after that (the query: opening took a few milliseconds) says it runs.
            fds = Path(f"/proc/{process.pid}/fd")
            real = os.path.realpath(db)

            def opened() -> bool:
                return any(os.path.realpath(fd) == real for fd in fds.iterdir())

            _wait_until(opened, "the database was never opened")
            start = _cpu_seconds(process.pid)
            _wait_until(lambda: _cpu_seconds(process.pid) > start + 1.0, "the query never ran")
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=GUARD_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GUARD_S:.0f} s after SIGINT: the query ignored Ctrl-C")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    interrupted = "interrupted: the query was stopped; nothing was changed\n"
    assert (process.returncode, out, err) == (130, "", interrupted)
    if engine == "postgres":  # cancelled on the server, not left running there
        _wait_until(lambda: not _running_query_pids(db), "the server still runs the query")


@pytest.mark.engine("postgres")
def test_a_killed_client_does_not_leave_its_query_running_on_the_server(db: str) -> None:
    process = _endless_query(db, "postgres")
    try:
        _wait_until(lambda: _running_query_pids(db), "the query never started on the server")
    finally:
        process.kill()  # SIGKILL: no cancel request, the socket just closes
        process.communicate()
    try:
        _wait_until(lambda: not _running_query_pids(db), "the server still runs the killed client's query")
    finally:
        _terminate(_running_query_pids(db), db)  # a failed run leaves no runaway behind


def _terminate(pids: list[int], db: str) -> None:
    for pid in pids:
        _execute(db, f"SELECT pg_terminate_backend({int(pid)})")


def _execute(db: str, statement: str) -> None:
    """One statement on a new connection of the test's own."""
    import asyncpg

    from ckptdb.sql.postgres.urls import asyncpg_dsn

    async def run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(db))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())
