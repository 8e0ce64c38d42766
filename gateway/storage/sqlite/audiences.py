"""Audiences in SQLite (the interface and its guarantees: ``gateway/storage/audiences.py``)."""

from __future__ import annotations

import sqlite3

from ..audiences import AudienceRow
from ..errors import NameTaken
from .tasks import results_sql

_COLUMNS = "id, name, source, size, created_at, source_task_id"
SWEEP_CHUNK = 50_000


def _begin(conn: sqlite3.Connection, ws: int, name: str, source: str, source_task_id: int | None, now: float) -> int:
    return conn.execute(
        "INSERT INTO audiences(workspace_id, name, source, source_task_id, created_at) VALUES (?,?,?,?,?)",
        (ws, name, source, source_task_id, now),
    ).lastrowid


def _add(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    conn.executemany("INSERT INTO audience_members(audience_id, seq, raw, e164, kind) VALUES (?,?,?,?,?)", rows)


def _complete(conn: sqlite3.Connection, audience_id: int, size: int) -> None:
    # the first occurrence of a number is kept; later ones are duplicates
    conn.execute(
        """UPDATE audience_members SET kind=3 WHERE audience_id=:a AND kind=0 AND seq NOT IN (
               SELECT MIN(seq) FROM audience_members WHERE audience_id=:a AND kind=0 GROUP BY e164)""",
        {"a": audience_id},
    )
    conn.execute("UPDATE audiences SET size=?, ready=1 WHERE id=?", (size, audience_id))


def _discard(conn: sqlite3.Connection, audience_id: int) -> None:
    conn.execute("DELETE FROM audience_members WHERE audience_id=?", (audience_id,))
    conn.execute("DELETE FROM audiences WHERE id=?", (audience_id,))


def _remove_chunk(conn: sqlite3.Connection, audience_id: int) -> bool:
    cur = conn.execute(
        "DELETE FROM audience_members WHERE audience_id=? AND seq IN"
        " (SELECT seq FROM audience_members WHERE audience_id=? LIMIT ?)", (audience_id, audience_id, SWEEP_CHUNK))
    done = cur.rowcount < SWEEP_CHUNK
    if done:
        conn.execute("DELETE FROM audiences WHERE id=? AND ready=0", (audience_id,))
    return done


def _delete(conn: sqlite3.Connection, audience_id: int) -> None:
    conn.execute("UPDATE audiences SET deleted=1 WHERE id=?", (audience_id,))
    # the entries themselves go once no task is still reading them
    conn.execute(
        """DELETE FROM audience_members WHERE audience_id=? AND NOT EXISTS (
               SELECT 1 FROM tasks WHERE audience_id=? AND status IN ('moderating','scheduled','sending'))""",
        (audience_id, audience_id),
    )


def _from_results(conn: sqlite3.Connection, ws: int, task_id: int, name: str, results: list[int], now: float) -> int:
    audience_id = _begin(conn, ws, name, "task", task_id, now)
    cur = conn.execute(
        "INSERT INTO audience_members(audience_id, seq, raw, e164, kind)"
        " SELECT ?, ROW_NUMBER() OVER (ORDER BY id) - 1, number, number, 0 FROM messages"
        f" WHERE task_id=?{results_sql(results)}",
        (audience_id, task_id),
    )
    conn.execute("UPDATE audiences SET size=?, ready=1 WHERE id=?", (cur.rowcount, audience_id))
    return audience_id


class SqliteAudienceStore:
    def __init__(self, db):
        self.db = db

    async def begin(self, workspace_id: int, name: str, source: str, source_task_id: int | None, now: float) -> int:
        try:
            return await self.db.write(_begin, workspace_id, name, source, source_task_id, now)
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None

    async def add_entries(self, rows: list[tuple]) -> None:
        if rows:
            await self.db.write(_add, rows)

    async def complete(self, audience_id: int, size: int) -> None:
        await self.db.write(_complete, audience_id, size)

    async def discard(self, audience_id: int) -> None:
        await self.db.write(_discard, audience_id)

    async def unready(self) -> list[int]:
        return [aid for (aid,) in await self.db.fetchall("SELECT id FROM audiences WHERE ready=0")]

    async def remove_unready(self, audience_id: int) -> None:
        while not await self.db.write(_remove_chunk, audience_id):
            pass

    async def get(self, workspace_id: int, audience_id: int) -> AudienceRow | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM audiences WHERE id=? AND workspace_id=? AND ready=1 AND deleted=0", (audience_id, workspace_id)
        )
        return AudienceRow(*row) if row is not None else None

    async def page(self, workspace_id: int, limit: int, before: int | None) -> list[AudienceRow]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM audiences WHERE workspace_id=? AND ready=1 AND deleted=0 AND id < ? ORDER BY id DESC LIMIT ?",
            (workspace_id, before if before is not None else 1 << 62, limit),
        )
        return [AudienceRow(*r) for r in rows]

    async def delete(self, audience_id: int) -> None:
        await self.db.write(_delete, audience_id)

    async def from_task_results(self, workspace_id: int, task_id: int, name: str, results: list[int], now: float) -> int:
        try:
            return await self.db.write(_from_results, workspace_id, task_id, name, results, now)
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
