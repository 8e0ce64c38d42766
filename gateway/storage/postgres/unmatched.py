"""Unmatched receipts on PostgreSQL (the interface: ``gateway/storage/unmatched.py``): the count
and the page read in one snapshot, so the total always covers the page."""

from __future__ import annotations

import asyncpg

from ..unmatched import UnmatchedReceipt
from .db import Database


async def _page(conn: asyncpg.Connection, where: str, args: list, after: int, limit: int) -> tuple[int, list[UnmatchedReceipt]]:
    total = await conn.fetchval(f"SELECT COUNT(*) FROM unmatched_receipts WHERE {where}", *args)
    n = len(args)
    rows = await conn.fetch(
        "SELECT id, platform, platform_id, part, status, code, message, at, received_at FROM unmatched_receipts"
        f" WHERE {where} AND id > ${n + 1} ORDER BY id LIMIT ${n + 2}",
        *args, after, limit,
    )
    return total, [UnmatchedReceipt(*r) for r in rows]


class PostgresUnmatchedStore:
    def __init__(self, db: Database):
        self.db = db

    async def page(self, workspace_id: int, with_unowned: bool, platform: str | None, after: int | None,
                   limit: int) -> tuple[int, list[UnmatchedReceipt]]:
        scope = "(workspace_id = $1 OR workspace_id IS NULL)" if with_unowned else "workspace_id = $1"
        where, args = ["matched=0", scope], [workspace_id]
        if platform:
            where.append("platform=$2")
            args.append(platform)
        return await self.db.read(_page, " AND ".join(where), args, after if after is not None else -1, limit)
