"""`ckptdb db check`: is the database sound, and can every stored checkpoint be read back?

Loading a damaged row fails at that row (a store never returns half a checkpoint), and an export
stops there. Before a backup, a copy to PostgreSQL or an export, an operator wants the whole list
instead: this walks every row once, streamed (memory stays flat), reports each one that cannot be
read back as a valid echo checkpoint, and adds what the engine's own consistency check finds.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

from ckptdb.echo_json import MAX_DEPTH, check_json_value
from ckptdb.errors import DamagedRowError, InvalidCheckpointError, StoreError, UnavailableError
from ckptdb.sql import inspection, langgraph
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.inspection import IntegrityCheck, WalStatus
from ckptdb.sql.langgraph_inspection import check_threads
from ckptdb.sql.revision import HEAD
from ckptdb.sql.store import open_store

ProgressCallback = Callable[[int, int], None]
"""Called as (rows checked, rows in total)."""


@dataclass(frozen=True, slots=True)
class DamagedRow:
    checkpoint_id: str
    reason: str


@dataclass(slots=True)
class CheckReport:
    database: str
    revision: str
    engine: IntegrityCheck
    checkpoints: int = 0
    engine_problems: list[str] = field(default_factory=list)
    """The engine check's problems, and damage that stopped reading the rows."""
    damaged: list[DamagedRow] = field(default_factory=list)
    """The first `max_listed` damaged rows, by id; `damaged_count` counts them all."""
    damaged_count: int = 0
    read_all: bool = True
    """False when damage to the file stopped the walk over the rows part-way."""
    wal: WalStatus | None = None
    """SQLite: the WAL, and whether a reader starves its checkpoints (a warning, not damage)."""
    langgraph_checkpoints: int = 0
    """Checkpoints of LangGraph's saver (`ckptdb.langgraph`) in the same database."""
    langgraph_problem_count: int = 0
    langgraph_problems: list[str] = field(default_factory=list)
    """The first `max_listed` of them: a checkpoint whose value or list items are not all stored."""
    thread_problem_count: int = 0
    """Threads whose row in the LangGraph thread table disagrees with their checkpoints."""
    thread_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.engine_problems
            and not self.damaged_count
            and not self.langgraph_problem_count
            and not self.thread_problem_count
        )


def damage(row: tuple[object, ...]) -> str | None:
    """Why a stored row cannot be read back as a valid checkpoint, or None when it can."""
    try:
        checkpoint = sqlrows.from_row(row)  # decodes and checks the typed fields
        check_json_value(checkpoint.state_snapshot, MAX_DEPTH)  # what saving would refuse: too deep
        check_json_value(checkpoint.pending_action, MAX_DEPTH)
    except DamagedRowError as exc:
        return exc.reason
    except InvalidCheckpointError as exc:
        return str(exc)
    return None


async def check_database(
    target: str | Path,
    *,
    quick: bool = False,
    max_listed: int = 100,
    progress: ProgressCallback | None = None,
) -> CheckReport:
    """Check an existing database, read-only (never creates or changes one; refuses a schema this
    ckptdb cannot read)."""
    async with await open_store(target, readonly=True) as store:
        engine = await store.integrity_check(quick=quick)
        report = CheckReport(store.target.display(), HEAD, engine, engine_problems=list(engine.problems))
        total = 0
        try:
            total = await store.count()
            async with aclosing(store.stream_rows()) as rows:
                async for row in rows:
                    report.checkpoints += 1
                    reason = damage(row)
                    if reason is not None:
                        report.damaged_count += 1
                        if len(report.damaged) < max_listed:
                            report.damaged.append(DamagedRow(str(row[sqlrows.ID]), reason))
                    if progress is not None and report.checkpoints % 1000 == 0:
                        progress(report.checkpoints, total)
        except UnavailableError:  # an outage (a lost connection), not damage: the check did not run
            raise
        except StoreError as exc:  # the file is damaged past the rows read so far
            report.read_all = False
            report.engine_problems.append(f"reading stopped after {report.checkpoints} rows: {exc}")
        if progress is not None:
            progress(report.checkpoints, total)
        if report.read_all:
            counts = await langgraph.check_tables(store, max_listed)
            report.langgraph_checkpoints, report.langgraph_problem_count, report.langgraph_problems = counts
            report.thread_problem_count, report.thread_problems = await check_threads(store, max_listed)
        report.wal = await inspection.wal_status(store)
    return report
