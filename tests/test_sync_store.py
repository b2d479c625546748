"""The synchronous store (`ckptdb.connect`) on each SQL engine: a plain script in a real
subprocess, one store shared by WSGI-style threads, calls from inside a running event loop, a
store opened before `fork()`, and the same errors, schema gate and first-use creation as
`open_store`. (The store contract suite runs on it too: `sync-*` in conftest.STORE_FACTORIES.)
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ckptdb import (
    Checkpoint,
    CkptdbError,
    InterruptType,
    SchemaError,
    StoreError,
    SyncSqlCheckpointStore,
    Timestamp,
    connect,
    migrate,
    open_store,
)
from ckptdb.sql import rows as sqlrows
from ckptdb.sql.revision import HEAD, KNOWN_REVISIONS

BASE = 1_793_667_827_000_000_000
REPO = Path(__file__).resolve().parents[1]


def make(checkpoint_id: str, i: int = 0, graph: str = "g") -> Checkpoint:
    return Checkpoint(
        id=checkpoint_id,
        graph_name=graph,
        current_node="n",
        state_snapshot={"i": i, "messages": [f"m{i}"]},
        path=["start", "n"],
        step_count=i,
        created_at=Timestamp(BASE + i * 1_000),
        pending_action=None,
        interrupt_type=InterruptType.BEFORE_NODE,
        extra={},
    )


@pytest.fixture
def sync_store(db_target: str) -> Iterator[SyncSqlCheckpointStore]:
    with connect(db_target) as opened:
        yield opened


def run_in_thread(work: Callable[[], Any]) -> Any:
    """`work()` on a thread of its own; a hang fails (after 60 s) instead of hanging the suite."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(("ok", work()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the call waited (for a lock?) instead of answering"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


# -- a plain script --------------------------------------------------------------------------------


def test_a_sync_script_in_a_subprocess(db_target: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        import ckptdb
        from ckptdb import Checkpoint, InterruptType, Timestamp

        def make(i):
            return Checkpoint(id=f"c{i}", graph_name="g", current_node="n", state_snapshot={"i": i},
                              path=["n"], step_count=i, created_at=Timestamp(1_793_667_827_000_000_000 + i),
                              pending_action=None, interrupt_type=InterruptType.BEFORE_NODE, extra={})

        with ckptdb.connect(sys.argv[1]) as store:
            store.save(make(1))
            store.save_many([make(i) for i in range(2, 6)])
            store.delete("c2")
            print(store.load("c1").state_snapshot["i"], store.count(), store.latest("g").id,
                  ",".join(info.id for info in store.list()), store.query(limit=2).next_cursor is not None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, db_target], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "4", "c5", "c5,c4,c3,c1", "True"]

    async def read_back() -> list[str]:  # what the script wrote, as the async store sees it
        async with await open_store(db_target) as store:
            return [info.id for info in await store.list()]

    assert asyncio.run(read_back()) == ["c5", "c4", "c3", "c1"]


# -- threads ---------------------------------------------------------------------------------------

THREADS = 8
SAVES = 1000


def test_eight_threads_saving_and_readers_beside_them(sync_store: SyncSqlCheckpointStore) -> None:
    """A WSGI server's threads on one store: 8 x 1,000 saves and 2 reading threads; every row
    arrives exactly as saved, and no call fails."""
    store = sync_store
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0, 0]

    def saver(k: int) -> None:
        try:
            for j in range(SAVES):
                store.save(make(f"t{k}-{j}", k * SAVES + j, graph=f"g{k}"))
        except BaseException as exc:
            errors.append(exc)

    def reader(r: int) -> None:
        try:
            while not done.is_set():
                page = store.query(limit=20)
                for info in page.items:
                    loaded = store.load(info.id)
                    assert loaded is not None and loaded.id == info.id
                store.count()
                reads[r] += 1
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(r,)) for r in range(2)]
    savers = [threading.Thread(target=saver, args=(k,)) for k in range(THREADS)]
    for thread in (*readers, *savers):
        thread.start()
    for thread in savers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert all(reads), reads
    assert store.count() == THREADS * SAVES
    for k in range(THREADS):
        latest = store.latest(f"g{k}")
        assert latest is not None and latest.id == f"t{k}-{SAVES - 1}"
    for k in range(THREADS):
        for j in range(0, SAVES, 97):
            loaded = store.load(f"t{k}-{j}")
            assert (
                loaded is not None and loaded.to_json() == make(f"t{k}-{j}", k * SAVES + j, f"g{k}").to_json()
            )


@pytest.mark.engine("sqlite")
def test_concurrent_saves_share_commits(engine: str, tmp_path: Path) -> None:
    """At synchronous=FULL (an fsync per commit) saves that queue behind a commit share the next one."""
    with connect(tmp_path / "full.db", synchronous="FULL") as store:
        saves = store.backend._saves  # type: ignore[attr-defined]
        before = saves.transactions
        threads = [
            threading.Thread(target=lambda k=k: [store.save(make(f"f{k}-{j}", j)) for j in range(100)])
            for k in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count() == THREADS * 100
        assert saves.transactions - before < THREADS * 100


def test_a_failing_save_fails_no_other_in_its_group(sync_store: SyncSqlCheckpointStore) -> None:
    """A row the database refuses, committed in a group with good ones, fails alone."""
    store = sync_store
    backend = store.backend
    good = [make(f"ok{i}", i) for i in range(6)]
    errors: dict[str, BaseException] = {}

    def save_row(name: str, row: tuple[Any, ...]) -> None:
        barrier.wait()
        try:
            backend.save_rows(sqlrows.UPSERT, [row])
        except BaseException as exc:
            errors[name] = exc

    rows = {cp.id: sqlrows.to_row(cp) for cp in good}
    bad = list(sqlrows.to_row(make("bad")))
    bad[sqlrows.COLUMNS.index("interrupt_type")] = None  # NOT NULL: the database refuses this row
    rows["bad"] = tuple(bad)
    barrier = threading.Barrier(len(rows) + 1)
    with backend._saves.lock:  # type: ignore[attr-defined]  # hold the writer: all of them queue up
        threads = [threading.Thread(target=save_row, args=item) for item in rows.items()]
        for thread in threads:
            thread.start()
        barrier.wait()
        while len(backend._saves._queue) < len(rows):  # type: ignore[attr-defined]
            pass
    for thread in threads:
        thread.join()
    assert set(errors) == {"bad"}, errors
    assert isinstance(errors["bad"], StoreError)
    assert sorted(info.id for info in store.list()) == sorted(cp.id for cp in good)


def test_reads_do_not_wait_behind_the_writer(sync_store: SyncSqlCheckpointStore) -> None:
    """While the writer connection is held (a commit under way), loads and queries answer."""
    store = sync_store
    store.save(make("r1", 1))
    with store.backend._saves.lock:  # type: ignore[attr-defined]
        loaded = run_in_thread(lambda: store.load("r1"))
        assert loaded is not None and loaded.id == "r1"
        assert run_in_thread(store.count) == 1
        assert [i.id for i in run_in_thread(lambda: store.query(limit=5).items)] == ["r1"]


@pytest.mark.engine("sqlite")
def test_reads_do_not_wait_for_another_process_writing(engine: str, tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    with connect(db, busy_timeout_ms=0) as store:
        store.save(make("r1", 1))
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM checkpoints")
        try:
            loaded = run_in_thread(lambda: store.load("r1"))
            assert loaded is not None  # the snapshot before the other transaction
        finally:
            other.execute("ROLLBACK")
            other.close()


# -- a running event loop --------------------------------------------------------------------------


async def test_calls_from_inside_a_running_event_loop(db_target: str) -> None:
    """What a notebook cell does: synchronous calls while a loop runs on this very thread."""
    asyncio.get_running_loop()
    with connect(db_target) as store:
        store.save(make("in-loop", 1))
        store.save_many([make(f"in-loop{i}", i) for i in range(2, 5)])
        loaded = store.load("in-loop")
        assert loaded is not None and loaded.id == "in-loop"
        assert store.count() == 4
        assert [i.id for i in store.iter_query()] == ["in-loop4", "in-loop3", "in-loop2", "in-loop"]
        await asyncio.sleep(0)  # the loop goes on working beside the store
        store.delete("in-loop")
        assert store.load("in-loop") is None


# -- fork ------------------------------------------------------------------------------------------


def _child_uses(store: SyncSqlCheckpointStore, target: str) -> str:
    """In a forked child: what the inherited store answers, then a store of the child's own."""
    try:
        store.load("before-fork")
        answer = "the inherited store answered"
    except StoreError as exc:
        answer = str(exc)
    store.close()  # must touch nothing of the parent's
    del store
    gc.collect()
    with connect(target) as own:
        own.save(make("from-child", 7))
    return answer


def _fork_child_main(store: SyncSqlCheckpointStore, target: str, queue: Any) -> None:
    queue.put(_child_uses(store, target))


def _check_parent_after_fork(store: SyncSqlCheckpointStore, answer: str) -> None:
    assert "before a fork" in answer and "open a new store in this process" in answer, answer
    assert "\n" not in answer
    # The parent's connections (this thread's reader, the writer) were not disturbed.
    loaded = store.load("before-fork")
    assert loaded is not None
    store.save(make("after-fork", 8))
    assert store.load("from-child") is not None
    assert sorted(i.id for i in store.list()) == ["after-fork", "before-fork", "from-child"]


def in_forked_child(work: Callable[[], str]) -> str:
    """`work()` in a child made by a bare os.fork(), which exits without running anything of the
    parent's; what it returned (its exit status must be 0)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            os.write(write, work().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_store_opened_before_os_fork(sync_store: SyncSqlCheckpointStore, db_target: str) -> None:
    store = sync_store
    store.save(make("before-fork", 1))
    answer = in_forked_child(lambda: _child_uses(store, db_target))
    _check_parent_after_fork(store, answer)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method")
def test_a_store_inherited_by_multiprocessing(sync_store: SyncSqlCheckpointStore, db_target: str) -> None:
    store = sync_store
    store.save(make("before-fork", 1))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_fork_child_main, args=(store, db_target, queue))
    process.start()
    answer = queue.get(timeout=120)
    process.join(120)
    assert process.exitcode == 0
    _check_parent_after_fork(store, answer)


# -- opening: the same gate as open_store ---------------------------------------------------------


def _async_error(target: str, **options: Any) -> BaseException:
    async def attempt() -> None:
        store = await open_store(target, **options)
        await store.close()

    with pytest.raises(CkptdbError) as caught:
        asyncio.run(attempt())
    return caught.value


def _sync_error(target: str, **options: Any) -> BaseException:
    with pytest.raises(CkptdbError) as caught:
        connect(target, **options).close()
    return caught.value


def _same_error(target: str, **options: Any) -> BaseException:
    sync, async_ = _sync_error(target, **options), _async_error(target, **options)
    assert type(sync) is type(async_)
    assert str(sync) == str(async_)
    assert "\n" not in str(sync)
    return sync


def test_first_use_creates_and_migrates(db_target: str) -> None:
    with connect(db_target) as store:
        assert store.count() == 0
    assert migrate.current(db_target) == HEAD


def test_an_older_schema_is_refused_with_what_to_run(db_target: str) -> None:
    migrate.upgrade(db_target, KNOWN_REVISIONS[-2])
    error = _same_error(db_target)
    assert isinstance(error, SchemaError) and "db upgrade" in str(error)
    assert migrate.current(db_target) == KNOWN_REVISIONS[-2]  # nothing was changed


def test_another_tools_table_is_refused(engine: str, db_target: str) -> None:
    if engine == "sqlite":
        with sqlite3.connect(db_target) as conn:
            conn.execute("CREATE TABLE checkpoints (thread_id TEXT)")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(db_target, autocommit=True) as conn:
            conn.execute("CREATE TABLE checkpoints (thread_id TEXT)")
    error = _same_error(db_target)
    assert "did not create" in str(error)


def test_bad_options_are_refused_alike(db_target: str) -> None:
    assert "unknown option 'nonsense'" in str(_same_error(db_target, nonsense=1))
    assert "synchronous must be" in str(_same_error(db_target, synchronous="SOMETIMES"))
    assert "create must be True or False" in str(_same_error(db_target, create="yes"))


@pytest.mark.engine("sqlite")
def test_create_false_refuses_a_missing_file(engine: str, tmp_path: Path) -> None:
    error = _same_error(str(tmp_path / "missing.db"), create=False)
    assert isinstance(error, StoreError) and "nothing was created" in str(error)
    assert not (tmp_path / "missing.db").exists()


def test_readonly_refuses_writes(db_target: str) -> None:
    with connect(db_target) as store:
        store.save(make("ro", 1))
    with connect(db_target, readonly=True) as store:
        assert store.load("ro") is not None
        with pytest.raises(CkptdbError, match="read-only"):
            store.save(make("ro2", 2))
        with pytest.raises(CkptdbError, match="read-only"):
            store.delete("ro")
    with connect(db_target) as store:
        assert [i.id for i in store.list()] == ["ro"]


def test_a_closed_store_says_so(db_target: str) -> None:
    store = connect(db_target)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.load("x")
    with pytest.raises(StoreError, match="closed"):
        store.save(make("x"))
