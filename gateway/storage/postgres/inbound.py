"""The inbound area on PostgreSQL (tables ``inbound_messages`` and ``opt_outs``; the interface and
its guarantees: ``gateway/storage/inbound.py``).

A batch of replies is one statement: the replies go in as arrays, each gets its id from the
sequence in list order, and the opt-outs their keywords ask for are written from the replies that
were actually stored (a reply already known is skipped, and so is its opt-out). Opt-out numbers
compare bytewise (``COLLATE "C"`` in the schema), as in SQLite, so pages walk the same order.
"""

from __future__ import annotations

from typing import Any, Iterable

import asyncpg

from ..inbound import InboundPage, InboundRecord, NewInbound, OptOutPage, OptOutRecord, StoredInbound
from .db import Database, columns, rows_changed

_INBOUND_COLUMNS = "id, workspace_id, platform, sender, recipient, text, at, received_at, platform_id, opted_out"
_OPT_OUT_COLUMNS = "number, source, keyword, inbound_id, created_at"
_MAX_ID = 2**63 - 1  # "before no id" is "before this one"

# $1 workspace, $2 platform, $3 now, then one array per field of NewInbound. ``src`` is
# materialized once (nextval is volatile), so each reply keeps the id it drew; ON CONFLICT skips
# a reply whose (platform, platform_id) is stored, earlier in this same batch included; the
# opt-outs are inserted in list order, so a number named twice keeps its first entry.
_STORE_REPLIES = """
WITH src AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('inbound_messages', 'id')) AS id, u.*
    FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[], $8::text[], $9::text[])
         WITH ORDINALITY AS u(sender, recipient, text, at, platform_id, keyword, idx)
    ORDER BY u.idx
),
ins AS (
    INSERT INTO inbound_messages(id, workspace_id, platform, sender, recipient, text, at, received_at, platform_id, opted_out)
    SELECT id, $1, $2, sender, recipient, text, at, $3, platform_id, (keyword IS NOT NULL)::int FROM src ORDER BY idx
    ON CONFLICT DO NOTHING
    RETURNING id
),
opt AS (
    INSERT INTO opt_outs(workspace_id, number, source, inbound_id, keyword, created_at)
    SELECT $1, src.sender, 'reply', src.id, src.keyword, $3 FROM src JOIN ins ON ins.id = src.id
    WHERE src.keyword IS NOT NULL ORDER BY src.idx
    ON CONFLICT DO NOTHING
)
SELECT src.idx, src.id, src.keyword IS NOT NULL FROM src JOIN ins ON ins.id = src.id ORDER BY src.idx
"""


def _inbound(row) -> InboundRecord:
    return InboundRecord(*tuple(row)[:9], bool(row[9]))


async def _fetch(conn: asyncpg.Connection, sql: str, params: tuple) -> list:
    return await conn.fetch(sql, *params)


async def _inbound_page(conn: asyncpg.Connection, clause: str, args: list, before_id: int, limit: int) -> InboundPage:
    total = await conn.fetchval(f"SELECT COUNT(*) FROM inbound_messages WHERE {clause}", *args)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE {clause} AND id < ${n + 1} ORDER BY id DESC LIMIT ${n + 2}",
        *args, before_id, limit + 1,
    )
    return InboundPage([_inbound(r) for r in rows[:limit]], total, len(rows) > limit)


async def _opt_outs_page(conn: asyncpg.Connection, where: str, args: list, after: str, limit: int) -> OptOutPage:
    total = await conn.fetchval(f"SELECT COUNT(*) FROM opt_outs WHERE {where}", *args)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT {_OPT_OUT_COLUMNS} FROM opt_outs WHERE {where} AND number > ${n + 1} ORDER BY number LIMIT ${n + 2}",
        *args, after, limit + 1,
    )
    return OptOutPage([OptOutRecord(*r) for r in rows[:limit]], total, len(rows) > limit)


async def _add_opt_out(conn: asyncpg.Connection, workspace_id: int, number: str, now: float) -> tuple[OptOutRecord, bool]:
    status = await conn.execute(
        "INSERT INTO opt_outs(workspace_id, number, source, created_at) VALUES ($1,$2,'api',$3) ON CONFLICT DO NOTHING",
        workspace_id, number, now,
    )
    row = await conn.fetchrow(f"SELECT {_OPT_OUT_COLUMNS} FROM opt_outs WHERE workspace_id = $1 AND number = $2",
                              workspace_id, number)
    return OptOutRecord(*row), rows_changed(status) > 0


class PostgresInboundStore:
    def __init__(self, db: Database):
        self.db = db

    async def store_replies(self, workspace_id: int | None, platform: str, replies: list[NewInbound],
                            now: float) -> list[StoredInbound]:
        if not replies:
            return []
        params = (workspace_id, platform, now, *columns([tuple(r) for r in replies], 6))
        rows = await self.db.write(_fetch, _STORE_REPLIES, params)
        return [StoredInbound(idx - 1, inbound_id, opted) for idx, inbound_id, opted in rows]

    async def inbound_page(self, workspace_id: int, admin: bool, limit: int, before_id: int | None,
                           sender_digits: str = "", platform: str | None = None) -> InboundPage:
        where = ["(workspace_id = $1 OR workspace_id IS NULL)" if admin else "workspace_id = $1"]
        args: list[Any] = [workspace_id]
        if sender_digits:
            args.append(f"%{sender_digits}%")
            where.append(f"sender LIKE ${len(args)}")
        if platform:
            args.append(platform)
            where.append(f"platform = ${len(args)}")
        return await self.db.read(_inbound_page, " AND ".join(where), args,
                                  before_id if before_id is not None else _MAX_ID, limit)

    async def inbound_by_platform_id(self, workspace_id: int | None, platform: str,
                                     platform_id: str) -> InboundRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE platform = $1 AND platform_id = $2"
            " AND workspace_id IS NOT DISTINCT FROM $3",
            (platform, platform_id, workspace_id))
        return None if row is None else _inbound(row)

    async def opt_outs_page(self, workspace_id: int, limit: int, after: str | None, digits: str = "") -> OptOutPage:
        where, args = "workspace_id = $1", [workspace_id]
        if digits:
            where += " AND number LIKE $2"
            args.append(f"%{digits}%")
        return await self.db.read(_opt_outs_page, where, args, after or "", limit)

    async def add_opt_out(self, workspace_id: int, number: str, now: float) -> tuple[OptOutRecord, bool]:
        return await self.db.write(_add_opt_out, workspace_id, number, now)

    async def remove_opt_out(self, workspace_id: int, number: str) -> bool:
        return await self.db.execute("DELETE FROM opt_outs WHERE workspace_id = $1 AND number = $2", (workspace_id, number)) > 0

    async def has_opt_outs(self, workspace_id: int) -> bool:
        row = await self.db.fetchone("SELECT EXISTS(SELECT 1 FROM opt_outs WHERE workspace_id = $1)", (workspace_id,))
        return bool(row[0])

    async def opted_out(self, workspace_id: int, numbers: Iterable[str]) -> set[str]:
        rows = await self.db.fetchall(
            "SELECT number FROM opt_outs WHERE workspace_id = $1 AND number = ANY($2::text[])",
            (workspace_id, list(numbers)),
        )
        return {number for (number,) in rows}
