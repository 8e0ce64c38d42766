"""Audiences on PostgreSQL (the interface and its guarantees: ``gateway/storage/audiences.py``).

A batch of entries goes in as one array per column (``unnest``): one statement whatever its size.
"""

from __future__ import annotations

import asyncpg

from ..audiences import AudienceRow
from ..errors import NameTaken
from .db import Database, columns, rows_changed, unnest
from .tasks import results_sql

_COLUMNS = "id, name, source, size, created_at, source_task_id"
SWEEP_CHUNK = 50_000
_MAX_ID = 2**63 - 1  # "before no id" is "before this one"

_BEGIN = "INSERT INTO audiences(workspace_id, name, source, source_task_id, created_at) VALUES ($1,$2,$3,$4,$5) RETURNING id"
_ADD = (
    "INSERT INTO audience_members(audience_id, seq, raw, e164, kind)"
    f" SELECT * FROM {unnest('bigint', 'integer', 'text', 'text', 'integer')}"
)


async def _begin(conn: asyncpg.Connection, ws: int, name: str, source: str, source_task_id: int | None, now: float) -> int:
    return await conn.fetchval(_BEGIN, ws, name, source, source_task_id, now)


async def _complete(conn: asyncpg.Connection, audience_id: int, size: int) -> None:
    # the first occurrence of a number is kept; later ones are duplicates
    await conn.execute(
        """UPDATE audience_members SET kind=3 WHERE audience_id=$1 AND kind=0 AND seq NOT IN (
               SELECT MIN(seq) FROM audience_members WHERE audience_id=$1 AND kind=0 GROUP BY e164)""",
        audience_id,
    )
    await conn.execute("UPDATE audiences SET size=$1, ready=1 WHERE id=$2", size, audience_id)


async def _discard(conn: asyncpg.Connection, audience_id: int) -> None:
    await conn.execute("DELETE FROM audience_members WHERE audience_id=$1", audience_id)
    await conn.execute("DELETE FROM audiences WHERE id=$1", audience_id)


async def _remove_chunk(conn: asyncpg.Connection, audience_id: int) -> bool:
    status = await conn.execute(
        "DELETE FROM audience_members WHERE audience_id=$1 AND seq IN"
        " (SELECT seq FROM audience_members WHERE audience_id=$1 LIMIT $2)", audience_id, SWEEP_CHUNK)
    done = rows_changed(status) < SWEEP_CHUNK
    if done:
        await conn.execute("DELETE FROM audiences WHERE id=$1 AND ready=0", audience_id)
    return done


async def _delete(conn: asyncpg.Connection, audience_id: int) -> None:
    await conn.execute("UPDATE audiences SET deleted=1 WHERE id=$1", audience_id)
    # the entries themselves go once no task is still reading them
    await conn.execute(
        """DELETE FROM audience_members WHERE audience_id=$1 AND NOT EXISTS (
               SELECT 1 FROM tasks WHERE audience_id=$1 AND status IN ('moderating','scheduled','sending'))""",
        audience_id,
    )


async def _from_results(conn: asyncpg.Connection, ws: int, task_id: int, name: str, results: list[int], now: float) -> int:
    audience_id = await _begin(conn, ws, name, "task", task_id, now)
    status = await conn.execute(
        "INSERT INTO audience_members(audience_id, seq, raw, e164, kind)"
        " SELECT $1, ROW_NUMBER() OVER (ORDER BY id) - 1, number, number, 0 FROM messages"
        f" WHERE task_id=$2{results_sql(results)}",
        audience_id, task_id,
    )
    await conn.execute("UPDATE audiences SET size=$1, ready=1 WHERE id=$2", rows_changed(status), audience_id)
    return audience_id


class PostgresAudienceStore:
    def __init__(self, db: Database):
        self.db = db

    async def begin(self, workspace_id: int, name: str, source: str, source_task_id: int | None, now: float) -> int:
        try:
            row = await self.db.returning(_BEGIN, (workspace_id, name, source, source_task_id, now))
        except asyncpg.UniqueViolationError:
            raise NameTaken(name) from None
        return row[0]

    async def add_entries(self, rows: list[tuple]) -> None:
        if rows:
            await self.db.execute(_ADD, columns(rows, 5))

    async def complete(self, audience_id: int, size: int) -> None:
        await self.db.write(_complete, audience_id, size)

    async def discard(self, audience_id: int) -> None:
        await self.db.write(_discard, audience_id)

    async def unready(self) -> list[int]:
        return [aid for (aid,) in await self.db.fetchall("SELECT id FROM audiences WHERE ready=0 ORDER BY id")]

    async def remove_unready(self, audience_id: int) -> None:
        while not await self.db.write(_remove_chunk, audience_id):
            pass

    async def get(self, workspace_id: int, audience_id: int) -> AudienceRow | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM audiences WHERE id=$1 AND workspace_id=$2 AND ready=1 AND deleted=0",
            (audience_id, workspace_id),
        )
        return AudienceRow(*row) if row is not None else None

    async def page(self, workspace_id: int, limit: int, before: int | None) -> list[AudienceRow]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM audiences WHERE workspace_id=$1 AND ready=1 AND deleted=0 AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            (workspace_id, before if before is not None else _MAX_ID, limit),
        )
        return [AudienceRow(*r) for r in rows]

    async def delete(self, audience_id: int) -> None:
        await self.db.write(_delete, audience_id)

    async def from_task_results(self, workspace_id: int, task_id: int, name: str, results: list[int], now: float) -> int:
        try:
            return await self.db.write(_from_results, workspace_id, task_id, name, results, now)
        except asyncpg.UniqueViolationError:
            raise NameTaken(name) from None
