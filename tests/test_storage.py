"""The Database wrapper: what one coroutine commits, its next read sees, whatever else reads."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from gateway.storage.sqlite.db import Database


async def test_a_commit_is_visible_to_the_next_read_while_other_reads_run(tmp_path):
    db = Database(tmp_path / "s.db")
    await db.open()
    stop = False

    async def other_reads():
        while not stop:
            await db.fetchall("SELECT key, value FROM service_state")
            await db.fetchone("SELECT COUNT(*) FROM tasks")

    others = [asyncio.create_task(other_reads()) for _ in range(4)]
    try:
        for i in range(300):
            await db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('k', ?)", (str(i),))
            assert await db.fetchone("SELECT value FROM service_state WHERE key='k'") == (str(i),), i
    finally:
        stop = True
        await asyncio.gather(*others)
        await db.close()


async def test_the_wal_is_checkpointed_off_the_writer_and_closing_never_waits_on_it(tmp_path):
    """The writer's own automatic checkpoint sits far above the 1,000 pages of SQLite's
    default; a background connection copies committed pages back instead (checkpoint.py)."""
    import sqlite3

    from gateway.storage.sqlite.checkpoint import SAFETY_PAGES

    db = Database(tmp_path / "c.db")
    await db.open()
    try:
        assert await db.writer.execute_fetchall("PRAGMA wal_autocheckpoint") == [(SAFETY_PAGES,)]
        for i in range(50):
            await db.execute("INSERT INTO service_state(key, value) VALUES (?, ?)", (f"k{i}", "x" * 3000))
        # the background thread gathers commits for 50 ms and may have checkpointed once while
        # the rows were still coming: wait (at most 10 s) until the database file alone, copied
        # without its WAL, holds every row
        def rows_in_the_file_alone() -> int:
            (tmp_path / "alone.db").write_bytes((tmp_path / "c.db").read_bytes())
            alone = sqlite3.connect(tmp_path / "alone.db")
            try:
                return alone.execute("SELECT COUNT(*) FROM service_state WHERE key LIKE 'k%'").fetchone()[0]
            finally:
                alone.close()

        for _ in range(500):
            if db._checkpointer.checkpoints and rows_in_the_file_alone() == 50:
                break
            await asyncio.sleep(0.02)
        assert db._checkpointer.checkpoints and rows_in_the_file_alone() == 50
    finally:
        await db.close()
    # stop right after a commit, many times: the thread always ends
    for _ in range(20):
        db = Database(tmp_path / "c.db")
        await db.open()
        await db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('k', 'v')")
        await asyncio.wait_for(db.close(), 5)


async def test_whole_transaction_writes_queue_in_order_and_never_enter_a_held_transaction(tmp_path):
    """``write`` jobs skip the lock when no multi-step ``transaction()`` holds it: they run on
    the writer's thread in the order they were called, and one called while a transaction is
    open runs only after that transaction commits."""
    db = Database(tmp_path / "q.db")
    await db.open()
    try:
        def append(conn, i):
            conn.execute("INSERT INTO service_state(key, value) VALUES (?, ?)", (f"n{i:03d}", str(i)))
            return conn.execute("SELECT COUNT(*) FROM service_state WHERE key LIKE 'n%'").fetchone()[0]

        counts = await asyncio.gather(*(db.write(append, i) for i in range(100)))
        assert counts == list(range(1, 101))  # each saw exactly the ones called before it

        def sees_t(conn):
            return conn.execute("SELECT value FROM service_state WHERE key='t'").fetchone()

        async with db.transaction() as conn:
            await conn.execute("INSERT INTO service_state(key, value) VALUES ('t', 'half')")
            queued = asyncio.ensure_future(db.write(sees_t))
            await asyncio.sleep(0.05)  # give it every chance to run inside this transaction
            assert not queued.done()
            await conn.execute("UPDATE service_state SET value='whole' WHERE key='t'")
        assert await queued == ("whole",)
    finally:
        await db.close()


async def test_on_commit_runs_on_the_writer_after_the_commit_and_never_after_a_rollback(tmp_path):
    """What mirrors the database beside it (the sink's fresh messages) changes exactly when the
    transaction commits: before any other job runs, and not at all when the job fails."""
    import threading

    db = Database(tmp_path / "c.db")
    await db.open()
    try:
        heard = []

        def insert(conn, key):
            conn.execute("INSERT INTO service_state(key, value) VALUES (?, 'v')", (key,))
            return key

        def on_commit(result):
            # committed already: a fresh connection sees the row
            other = sqlite3.connect(tmp_path / "c.db")
            try:
                seen = other.execute("SELECT COUNT(*) FROM service_state WHERE key=?", (result,)).fetchone()[0]
            finally:
                other.close()
            heard.append((result, seen, threading.current_thread() is not threading.main_thread()))

        def fails(conn):
            conn.execute("INSERT INTO service_state(key, value) VALUES ('never', 'v')")
            raise ValueError("no")

        def sees_heard(conn):
            return list(heard)

        first = db.write(insert, "a", on_commit=on_commit)
        second = db.write(sees_heard)  # queued right behind: on_commit has run by then
        assert await first == "a"
        assert await second == [("a", 1, True)]
        with pytest.raises(ValueError):
            await db.write(fails, on_commit=on_commit)
        assert heard == [("a", 1, True)]
        assert await db.fetchone("SELECT COUNT(*) FROM service_state WHERE key='never'") == (0,)

        def broken(result):
            raise RuntimeError("an observer's bug")

        assert await db.write(insert, "b", on_commit=broken) == "b"  # logged; the commit stands
        assert await db.fetchone("SELECT COUNT(*) FROM service_state WHERE key='b'") == (1,)
    finally:
        await db.close()


async def test_a_full_disk_is_reported_as_storage_unavailable_at_every_edge(tmp_path):
    """SQLite's own refusals reach the services as ``StorageUnavailable`` (never a sqlite3 error),
    through write, transaction and execute alike, and /healthz's ``write_error`` says why until a
    write commits again."""
    from gateway.storage.errors import StorageUnavailable

    db = Database(tmp_path / "full.db")
    await db.open()
    try:
        await db.writer.execute("PRAGMA max_page_count=1")  # not even an update in place fits

        def insert(conn):
            conn.execute("INSERT INTO service_state(key, value) VALUES ('k', ?)", ("x" * 100_000,))

        with pytest.raises(StorageUnavailable):
            await db.write(insert)
        assert db.write_error and "full" in db.write_error
        with pytest.raises(StorageUnavailable):
            await db.execute("INSERT INTO service_state(key, value) VALUES ('k', ?)", ("x" * 100_000,))
        with pytest.raises(StorageUnavailable):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO service_state(key, value) VALUES ('k', ?)", ("x" * 100_000,))
        with pytest.raises(sqlite3.IntegrityError):  # only the storage's own failures are translated
            await db.write(lambda conn: conn.execute("INSERT INTO tasks(id) VALUES (NULL)"))
        await db.writer.execute("PRAGMA max_page_count=1073741823")
        await db.write(insert)
        assert db.write_error is None
    finally:
        await db.close()
