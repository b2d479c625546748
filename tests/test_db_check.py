"""`ckptdb db check`: every damaged row listed (where loading stops at the first), the engine's own
check on SQLite, one-line errors when it cannot run; on both engines."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from ckptdb import StoreError, open_store
from ckptdb.check import check_database
from ckptdb.cli import main
from ckptdb.sql.revision import HEAD

SOUND = "checkpoints  300: 300 readable, 0 damaged\n"
FIRST, SECOND, THIRD = (  # the first three fixture ids, in id order
    "00cd4345-947d-4ffc-8437-4b5ab42e8f9f",
    "014f0f5d-d459-4637-a027-69208158528e",
    "019c4687-20ad-4a91-b204-02543b813535",
)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def sql(target: str, statement: str) -> None:
    """A hand edit, as a person at the sqlite3 or psql prompt would make it."""
    url = f"sqlite:///{target}" if "://" not in target else target.replace("://", "+psycopg://", 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


@pytest.fixture
def fixtures_target(db_target: str, fixture_dir: Path) -> str:
    assert cli("--db", db_target, "import", "-q", str(fixture_dir)).exit_code == 0
    return db_target


def _engine_line(target: str) -> str:
    if "://" in target:
        return "engine       no client-side check on this engine (PostgreSQL: the amcheck extension)\n"
    return "engine       ok (integrity_check)\n"


def test_a_sound_database_passes(fixtures_target: str) -> None:
    result = cli("--db", fixtures_target, "db", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines(keepends=True)
    assert lines[0].startswith("database     ") and lines[0].endswith(f"(schema {HEAD}, up to date)\n")
    assert lines[1:] == [_engine_line(fixtures_target), SOUND]
    assert result.stderr == ""


def test_every_hand_damaged_row_is_listed_and_the_rest_counted(fixtures_target: str) -> None:
    sql(fixtures_target, f"UPDATE checkpoints SET step_count = -5 WHERE id = '{FIRST}'")
    sql(fixtures_target, f"UPDATE checkpoints SET created_at = 'yesterday' WHERE id = '{SECOND}'")
    with pytest.raises(StoreError, match=r"row is damaged .*`ckptdb db check` lists every damaged row"):
        asyncio.run(_load(fixtures_target, SECOND))
    result = cli("--db", fixtures_target, "db", "check")
    assert result.exit_code == 3
    assert result.stdout.splitlines(keepends=True)[1:] == [
        _engine_line(fixtures_target),
        f"damaged      {FIRST}: field 'step_count': expected an unsigned integer up to 2^64-1, got -5\n",
        f"damaged      {SECOND}: ValueError: "
        "'yesterday' is not an RFC 3339 time like 2026-11-03T09:50:52.350Z\n",
        "checkpoints  300: 298 readable, 2 damaged\n",
    ]
    assert result.stderr == "damaged rows: delete one (`ckptdb rm ID`), fix it in SQL, or restore a backup\n"
    report = asyncio.run(check_database(fixtures_target, max_listed=1))
    assert [row.checkpoint_id for row in report.damaged] == [FIRST]
    assert report.damaged_count == 2 and not report.ok
    assert cli("--db", fixtures_target, "rm", FIRST, SECOND).exit_code == 0
    after = cli("--db", fixtures_target, "db", "check")
    assert after.exit_code == 0
    assert after.stdout.endswith("checkpoints  298: 298 readable, 0 damaged\n")


async def _load(target: str, checkpoint_id: str) -> None:
    async with await open_store(target) as store:
        await store.load(checkpoint_id)


def test_invalid_json_in_an_sqlite_row_is_listed(tmp_path: Path, fixture_dir: Path) -> None:
    # SQLite only: PostgreSQL's json column refuses text that is not JSON at the UPDATE.
    db = str(tmp_path / "c.db")
    assert cli("--db", db, "import", "-q", str(fixture_dir)).exit_code == 0
    sql(db, f"UPDATE checkpoints SET state_snapshot = '{{broken' WHERE id = '{THIRD}'")
    result = cli("--db", db, "db", "check")
    assert result.exit_code == 3
    assert f"damaged      {THIRD}: JSONDecodeError: " in result.stdout


def _overwrite_page(db: Path, page: int) -> None:
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\xff" * page_size)


def test_a_damaged_index_is_found_by_the_engine_check_alone(tmp_path: Path, fixture_dir: Path) -> None:
    # SQLite only (as the next test): the file is ours to damage; a PostgreSQL server's files are not.
    db = tmp_path / "c.db"
    assert cli("--db", str(db), "import", "-q", str(fixture_dir)).exit_code == 0
    with sqlite3.connect(db) as conn:
        sql = "SELECT rootpage FROM sqlite_master WHERE name = 'ix_checkpoints_graph_name_created_at_id'"
        root = conn.execute(sql).fetchone()[0]
    _overwrite_page(db, root)  # every row still reads by id: only the engine's check can tell
    result = cli("--db", str(db), "db", "check")
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[1].startswith("engine       ") and "malformed" in lines[1]
    assert lines[-1] == "checkpoints  300: 300 readable, 0 damaged"
    assert result.stderr.startswith("the database file is damaged: restore a backup")


def test_a_damaged_table_stops_the_walk_without_a_traceback(tmp_path: Path, fixture_dir: Path) -> None:
    db = tmp_path / "c.db"
    assert cli("--db", str(db), "import", "-q", str(fixture_dir)).exit_code == 0
    _overwrite_page(db, db.stat().st_size // 2 // 4096)
    result = cli("--db", str(db), "db", "check")
    assert result.exit_code == 3
    assert isinstance(result.exception, SystemExit)
    assert "engine       ok" not in result.stdout
    assert " read before the damage: " in result.stdout.splitlines()[-1]
    assert result.stderr.startswith("the database file is damaged: restore a backup")


def test_quick_check(fixtures_target: str) -> None:
    quick = cli("--db", fixtures_target, "db", "check", "--quick")
    assert quick.exit_code == 0
    if "://" not in fixtures_target:
        assert "engine       ok (quick_check)\n" in quick.stdout


def test_a_missing_or_old_database_is_one_line(tmp_path: Path) -> None:
    missing = cli("--db", str(tmp_path / "nope.db"), "db", "check")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1
    assert not (tmp_path / "nope.db").exists()


def test_export_skips_a_damaged_row_and_writes_the_rest(fixtures_target: str, tmp_path: Path) -> None:
    sql(fixtures_target, f"UPDATE checkpoints SET created_at = 'yesterday' WHERE id = '{SECOND}'")
    result = cli("--db", fixtures_target, "export", str(tmp_path / "out"))
    assert result.exit_code == 3
    lines = [re.sub(r"\(\d+\.\d s\)", "(T s)", line) for line in result.stdout.splitlines()]
    assert (
        lines[-1] == "300 checkpoints: 299 exported, 0 overwritten, 0 unchanged, 0 conflict, 1 skipped (T s)"
    )
    assert lines[:-1] == [
        f"skipped   id '{SECOND}': damaged row, not exported (ValueError: 'yesterday' is not an RFC 3339 "
        "time like 2026-11-03T09:50:52.350Z): `ckptdb db check` lists every one"
    ]
    assert len(list((tmp_path / "out").iterdir())) == 299
    assert not (tmp_path / "out" / f"{SECOND}.json").exists()


def test_a_row_that_decodes_but_echo_cannot_hold_is_named_by_show_and_skipped_by_export(
    fixtures_target: str, tmp_path: Path
) -> None:
    sql(fixtures_target, f"UPDATE checkpoints SET step_count = -5 WHERE id = '{FIRST}'")
    shown = cli("--db", fixtures_target, "show", FIRST)
    assert shown.exit_code == 1
    assert shown.stderr == (
        f"Error: checkpoint '{FIRST}': the stored row is damaged (field 'step_count': expected an unsigned "
        "integer up to 2^64-1, got -5); `ckptdb db check` lists every damaged row; fix or delete it, or "
        "restore a backup\n"
    )
    exported = cli("--db", fixtures_target, "export", str(tmp_path / "out"))
    assert exported.exit_code == 3
    assert f"skipped   id '{FIRST}': damaged row, not exported (field 'step_count'" in exported.stdout
    assert len(list((tmp_path / "out").iterdir())) == 299
