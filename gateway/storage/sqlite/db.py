"""SQLite through aiosqlite: one writer connection, one reader connection, WAL.

Why two connections: WAL lets readers (API pages) run while the writer commits a receipt batch,
and one writer connection guarded by a lock makes every transaction a unit that no other
coroutine can interleave with (aiosqlite shares one connection's transaction between all
coroutines that use it, so the lock is what keeps a receipt flush and a dispatch batch apart).

``synchronous=NORMAL`` in WAL mode survives a crash of the process (kill -9) with every
committed transaction; only an OS crash or power loss can lose the last few.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
import sqlite3
from typing import Any, AsyncIterator, Callable, Iterable, Sequence, TypeVar

import aiosqlite

from ..errors import StorageUnavailable
from .checkpoint import SAFETY_PAGES, Checkpointer
from .schema import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)


def _unavailable(exc: sqlite3.OperationalError) -> StorageUnavailable:
    """SQLite's own refusals (a full disk, an I/O error, a lock held too long) in the service's
    words: callers above the storage catch ``StorageUnavailable``, never a driver's exception."""
    return StorageUnavailable(str(exc))


def _in_transaction(conn: aiosqlite.Connection, fn: Callable[..., T], args: tuple,
                    on_commit: Callable[[T], None] | None = None) -> T:
    raw: sqlite3.Connection = conn._connection  # runs on aiosqlite's own thread
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = fn(raw, *args)
        raw.execute("COMMIT")
    except BaseException:
        _rollback(raw)
        raise
    if on_commit is not None:
        try:
            on_commit(result)
        except Exception:  # the transaction stands; what observes it must not undo that
            log.exception("an on_commit callback failed")
    return result


def _rollback(raw: sqlite3.Connection) -> None:
    """Roll back what is still open. SQLite itself rolls back a transaction that ran out of disk
    (SQLITE_FULL) or hit an I/O error; a ROLLBACK then would fail and hide the real error."""
    if raw.in_transaction:
        raw.execute("ROLLBACK")


def _call_with_connection(conn: aiosqlite.Connection, fn: Callable[..., T], args: tuple) -> T:
    return fn(conn._connection, *args)

def _query(conn: aiosqlite.Connection, sql: str, params: Sequence[Any], take: Callable[[sqlite3.Cursor], T]) -> T:
    cursor = conn._connection.execute(sql, params)
    try:
        return take(cursor)
    finally:
        cursor.close()


_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA busy_timeout=10000",
)


class Database:
    def __init__(self, path: str | Path, migrations: Sequence[str] = MIGRATIONS, cache_mib: int = 64):
        self.path = str(path)
        self.migrations = migrations
        self.cache_mib = cache_mib  # page cache per connection: a share of the server's memory
        self.writer: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._checkpointer: Checkpointer | None = None
        # the last write transaction that failed on the storage itself (a full disk, I/O), until
        # one commits again: /healthz reports it
        self.write_error: str | None = None

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.writer = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in (*_PRAGMAS, f"PRAGMA cache_size=-{self.cache_mib * 1024}"):
            await self.writer.execute(pragma)
        await self._migrate()
        self.reader = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in (*_PRAGMAS[1:], f"PRAGMA cache_size=-{self.cache_mib * 1024}"):
            await self.reader.execute(pragma)
        await self.reader.execute("PRAGMA query_only=ON")
        if self.path != ":memory:":
            # checkpoints on their own thread (see checkpoint.py); the writer's only past a high mark
            await self.writer.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        for conn in (self.reader, self.writer):
            if conn is not None:
                await conn.close()
        self.reader = self.writer = None

    async def _migrate(self) -> None:
        assert self.writer is not None
        async with self.writer.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()
        for number, script in enumerate(self.migrations[version:], start=version + 1):
            await self.writer.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; nothing else writes until it commits or rolls back."""
        async with self._write_lock:
            conn = self.writer
            assert conn is not None
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._failed(exc)
                raise _unavailable(exc) from exc
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                await conn._execute(_rollback, conn._connection)
                self._failed(exc)
                if isinstance(exc, sqlite3.OperationalError):
                    raise _unavailable(exc) from exc
                raise
            self._committed()

    async def write(self, fn: Callable[..., T], *args: Any, on_commit: Callable[[T], None] | None = None) -> T:
        """Run ``fn(conn, *args)`` on the writer's thread inside one transaction: a single hop
        to aiosqlite's thread however many statements ``fn`` runs. ``conn`` is the plain
        ``sqlite3.Connection``. This is the hot-path form of ``transaction()``: each awaited
        aiosqlite call costs a thread round trip (~100 µs), which a batch of rows must not pay
        per statement.

        The lock is taken only while a ``transaction()`` or ``outside_transaction()`` holds it.
        Otherwise the job goes straight into the writer thread's queue: the thread runs queued
        jobs one after another, each a whole transaction, so none can interleave with another,
        and the next one starts the moment the last commits instead of after a round trip
        through the event loop (which, busy with Python, may take milliseconds). A
        ``transaction()`` that starts later queues its BEGIN behind the jobs already queued.

        ``on_commit(result)``, if given, runs on the writer's thread right after the COMMIT and
        before the next job: state kept beside the database (the receipt sink's fresh messages)
        changes exactly when what it mirrors is committed, never on a rollback."""
        assert self.writer is not None
        try:
            if not self._write_lock.locked():
                result = await self.writer._execute(_in_transaction, self.writer, fn, args, on_commit)
            else:
                async with self._write_lock:
                    result = await self.writer._execute(_in_transaction, self.writer, fn, args, on_commit)
        except sqlite3.OperationalError as exc:
            self._failed(exc)
            raise _unavailable(exc) from exc
        self._committed()
        return result

    async def outside_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the writer's thread under the write lock but without an
        implicit transaction, for statements SQLite refuses inside one (ATTACH, VACUUM)."""
        async with self._write_lock:
            assert self.writer is not None
            try:
                result = await self.writer._execute(_call_with_connection, self.writer, fn, args)
            except sqlite3.OperationalError as exc:
                self._failed(exc)
                raise _unavailable(exc) from exc
        self._committed()
        return result

    def _committed(self) -> None:
        self.write_error = None
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (sqlite3.OperationalError, StorageUnavailable)):
            self.write_error = str(exc)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the reader's thread (a consistent WAL snapshot per statement)."""
        assert self.reader is not None
        try:
            return await self.reader._execute(_call_with_connection, self.reader, fn, args)
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc

    # A query runs whole in one hop to the reader's thread: executed, fetched and its statement
    # reset before anything else runs on that connection. With aiosqlite's cursor (execute, then
    # fetch, then close: three hops), another coroutine's query could run in between, inside the
    # read transaction of the still-open statement, and miss a commit made just before it: a task
    # created and then read back as "not found".
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        assert self.reader is not None
        try:
            return await self.reader._execute(_query, self.reader, sql, params, sqlite3.Cursor.fetchall)
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        assert self.reader is not None
        try:
            return await self.reader._execute(_query, self.reader, sql, params, sqlite3.Cursor.fetchone)
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """A single write statement in its own transaction; returns the rows changed."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, params)
            return cur.rowcount

    @staticmethod
    async def all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        async with conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    @staticmethod
    async def one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> tuple | None:
        async with conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()
