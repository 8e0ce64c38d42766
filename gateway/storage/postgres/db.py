"""PostgreSQL through asyncpg: a pool of connections, versioned migrations, batched writes.

Why a pool and not SQLite's one writer: PostgreSQL takes row locks, so two transactions that touch
different rows (two tasks' batches, a receipt flush and a dispatch) commit side by side, and the
consistency SQLite got from one writer thread comes here from each operation being one
transaction. Several gateway instances share the database the same way (leases.py decides who
works on what).

Why asyncpg (over psycopg 3): measured by ``python -m loadtests.pg_floor`` (docs/benchmarks.md,
"PostgreSQL: the floor"), it writes rows faster through both COPY and ``unnest`` arrays
(1.1–1.6× psycopg 3's async connection, taking turns in the same run).

Batched writes: rows go in as columns (one array parameter per column, ``unnest``) or through
``COPY`` (``copy_rows``), never a statement per row: a round trip per row would cost more than
the row.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Sequence, TypeVar

import asyncpg

from ..errors import StorageUnavailable
from .schema import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)

# the advisory lock under which migrations run: instances starting together migrate once (any
# number works as long as every instance uses the same one; this one is derived from a name)
MIGRATION_LOCK = zlib.crc32(b"smslab.schema_migrations")

# SQLSTATE classes of failures that are the database's own trouble, not the statement's: 53 (disk
# full, out of memory, too many connections), 57 (the server shutting down), 58 (an I/O error),
# 08 (the connection). /healthz reports them and the services see StorageUnavailable.
_UNAVAILABLE_CLASSES = ("53", "57", "58", "08")


def unnest(*types: str, start: int = 1) -> str:
    """``unnest($1::bigint[], $2::text[], …)`` for columns of these types: rows go in as one array
    per column, parsed once by the server, whatever their number."""
    return "unnest(" + ", ".join(f"${start + i}::{t}[]" for i, t in enumerate(types)) + ")"


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as columns, the shape ``unnest`` takes (``width`` so that no rows still gives
    ``width`` empty columns)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows)]


async def copy_rows(conn: asyncpg.Connection, table: str, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Append rows to ``table`` with COPY (binary): the fastest way in, but it returns nothing
    (no ids) and fails whole on a conflict."""
    await conn.copy_records_to_table(table, columns=list(names), records=rows)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection coming back: nothing beyond asyncpg's own rollback of an
    open transaction. Why: the default reset is a round trip per release (``pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL``), the most frequent statement of a pipeline run (1,493 of
    about 6,000 for 200,000 numbers), and smslab leaves no session state to undo: no LISTEN, no
    SET, no cursor outside a transaction, and the one session advisory lock (``migrate``) is
    released in a ``finally``."""


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, asyncpg.InterfaceError)):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _UNAVAILABLE_CLASSES


class Database:
    def __init__(self, url: str, migrations: Sequence[str] = MIGRATIONS, min_size: int = 1, max_size: int = 10):
        self.url = url
        self.migrations = migrations
        self.min_size = min_size
        self.max_size = max_size
        self.pool: asyncpg.Pool | None = None
        # the last write that failed on the database itself, until one commits again (/healthz)
        self.write_error: str | None = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size,
                                              reset=_keep_session)
        try:
            async with self.pool.acquire() as conn:
                await migrate(conn, self.migrations)
        except BaseException:
            await self.pool.close()
            self.pool = None
            raise

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    @contextlib.asynccontextmanager
    async def _guarded(self, writing: bool) -> AsyncIterator[None]:
        """Database trouble (a lost connection, a full disk) comes out as ``StorageUnavailable``
        and, for a write, is kept in ``write_error`` until a write succeeds again."""
        assert self.pool is not None, "the database is not open"
        try:
            yield
        except BaseException as exc:
            if _unavailable(exc):
                if writing:
                    self.write_error = str(exc) or type(exc).__name__
                raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
            raise
        if writing:
            self.write_error = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on a connection of its own: committed when the block ends, rolled
        back if it raises."""
        async with self._guarded(writing=True):
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    yield conn

    async def write(self, fn: Callable[..., Awaitable[T]], *args: Any,
                    on_commit: Callable[[T], None] | None = None) -> T:
        """``await fn(conn, *args)`` inside one transaction, the form SQLite's ``Database.write``
        has (there ``fn`` is synchronous and runs on the writer's thread; here it awaits its
        statements on the event loop). ``on_commit(result)`` runs once the COMMIT succeeded and
        never after a rollback, so state kept beside the database changes only with it."""
        async with self.transaction() as conn:
            result = await fn(conn, *args)
        if on_commit is not None:
            try:
                on_commit(result)
            except Exception:  # the transaction stands; what observes it must not undo that
                log.exception("an on_commit callback failed")
        return result

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(conn, *args)`` in one read-only transaction: every statement of ``fn`` sees
        the same snapshot."""
        async with self._guarded(writing=False):
            async with self.pool.acquire() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(conn, *args)

    # Single statements run outside an explicit transaction (PostgreSQL commits each on its
    # own): one round trip instead of three (BEGIN, the statement, COMMIT).
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        async with self._guarded(writing=False):
            return await self.pool.fetch(sql, *params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> asyncpg.Record | None:
        async with self._guarded(writing=False):
            return await self.pool.fetchrow(sql, *params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """A single write statement, committed on its own; returns the rows it changed."""
        async with self._guarded(writing=True):
            status = await self.pool.execute(sql, *params)
        return rows_changed(status)

    async def returning(self, sql: str, params: Sequence[Any] = ()) -> asyncpg.Record | None:
        """A single write statement with ``RETURNING``, committed on its own; its first row."""
        async with self._guarded(writing=True):
            return await self.pool.fetchrow(sql, *params)


def rows_changed(status: str) -> int:
    """The count in a command tag (``UPDATE 3``, ``INSERT 0 5``); 0 for one without."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def migrate(conn: asyncpg.Connection, migrations: Sequence[str] = MIGRATIONS, *,
                  table: str = "schema_migrations", lock: int = MIGRATION_LOCK) -> list[int]:
    """Apply the migrations this database has not had yet, in order, each in its own transaction
    with its row in ``table``; returns the versions applied (none: already current).

    Under a session advisory lock, so that instances starting together wait for the first one
    and then find nothing left to do, instead of racing to create the same tables.

    ``table`` and ``lock`` name another track of migrations in the same database: a plugin's own
    tables (the simulated carrier's ``sim_*``, simulator/core/books_postgres.py) version apart
    from the gateway's schema."""
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            " version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch(f"SELECT version FROM {table}")}
        if done and max(done) > len(migrations):
            raise RuntimeError(f"the database has schema version {max(done)}, newer than this smslab knows"
                               f" ({len(migrations)}): run a newer smslab on it")
        applied = []
        for version, script in enumerate(migrations, start=1):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(f"INSERT INTO {table}(version) VALUES ($1)", version)
            applied.append(version)
            log.info("database migrated to version %d (%s)", version, table)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)
