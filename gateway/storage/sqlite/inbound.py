"""The inbound area on SQLite (tables ``inbound_messages`` and ``opt_outs``, migration 11).

Reads go through the reader connection, writes are one ``db.write`` each (one hop to the
writer's thread whatever a batch of replies holds).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from ..inbound import InboundPage, InboundRecord, NewInbound, OptOutPage, OptOutRecord, StoredInbound
from . import bulk
from .db import Database

_INBOUND_COLUMNS = "id, workspace_id, platform, sender, recipient, text, at, received_at, platform_id, opted_out"
_OPT_OUT_COLUMNS = "number, source, keyword, inbound_id, created_at"
_MAX_ID = 2**63 - 1  # SQLite's largest rowid: "before no id" is "before this one"


def _inbound(row: tuple) -> InboundRecord:
    return InboundRecord(*row[:9], bool(row[9]))


class SqliteInboundStore:
    def __init__(self, db: Database):
        self.db = db

    async def store_replies(self, workspace_id: int | None, platform: str, replies: list[NewInbound],
                            now: float) -> list[StoredInbound]:
        return await self.db.write(_store_replies, workspace_id, platform, replies, now)

    async def inbound_page(self, workspace_id: int, admin: bool, limit: int, before_id: int | None,
                           sender_digits: str = "", platform: str | None = None) -> InboundPage:
        where = ["(workspace_id = ? OR workspace_id IS NULL)" if admin else "workspace_id = ?"]
        args: list[Any] = [workspace_id]
        if sender_digits:
            where.append("sender LIKE ?")
            args.append(f"%{sender_digits}%")
        if platform:
            where.append("platform = ?")
            args.append(platform)
        clause = " AND ".join(where)
        (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM inbound_messages WHERE {clause}", args)
        rows = await self.db.fetchall(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE {clause} AND id < ? ORDER BY id DESC LIMIT ?",
            (*args, before_id if before_id is not None else _MAX_ID, limit + 1),
        )
        return InboundPage([_inbound(r) for r in rows[:limit]], total, len(rows) > limit)

    async def inbound_by_platform_id(self, workspace_id: int | None, platform: str,
                                     platform_id: str) -> InboundRecord | None:
        row = await self.db.fetchone(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE platform = ? AND platform_id = ? AND workspace_id IS ?",
            (platform, platform_id, workspace_id))
        return None if row is None else _inbound(row)

    async def opt_outs_page(self, workspace_id: int, limit: int, after: str | None, digits: str = "") -> OptOutPage:
        where, args = "workspace_id = ?", [workspace_id]
        if digits:
            where += " AND number LIKE ?"
            args.append(f"%{digits}%")
        (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM opt_outs WHERE {where}", args)
        rows = await self.db.fetchall(
            f"SELECT {_OPT_OUT_COLUMNS} FROM opt_outs WHERE {where} AND number > ? ORDER BY number LIMIT ?",
            (*args, after or "", limit + 1),
        )
        return OptOutPage([OptOutRecord(*r) for r in rows[:limit]], total, len(rows) > limit)

    async def add_opt_out(self, workspace_id: int, number: str, now: float) -> tuple[OptOutRecord, bool]:
        return await self.db.write(_add_opt_out, workspace_id, number, now)

    async def remove_opt_out(self, workspace_id: int, number: str) -> bool:
        return await self.db.write(_remove_opt_out, workspace_id, number)

    async def has_opt_outs(self, workspace_id: int) -> bool:
        (found,) = await self.db.fetchone("SELECT EXISTS(SELECT 1 FROM opt_outs WHERE workspace_id = ?)", (workspace_id,))
        return bool(found)

    async def opted_out(self, workspace_id: int, numbers: Iterable[str]) -> set[str]:
        rows = await self.db.fetchall(
            "SELECT number FROM opt_outs WHERE workspace_id = ? AND number IN (SELECT value FROM json_each(?))",
            (workspace_id, bulk.encode(list(numbers))),
        )
        return {number for (number,) in rows}


# -- transactions, each run whole on the writer's thread ---------------------------------------------
def _store_replies(conn: sqlite3.Connection, workspace_id: int | None, platform: str, replies: list[NewInbound],
                   now: float) -> list[StoredInbound]:
    stored = []
    for index, (sender, recipient, text, at, platform_id, keyword) in enumerate(replies):
        opted = keyword is not None
        cur = conn.execute(
            "INSERT INTO inbound_messages(workspace_id, platform, sender, recipient, text, at, received_at, platform_id,"
            " opted_out) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (workspace_id, platform, sender, recipient, text, at, now, platform_id, int(opted)),
        )
        if cur.rowcount == 0:
            continue
        inbound_id = cur.lastrowid
        if opted:
            # a number on the list already keeps its first entry (the reply still says it opted out)
            conn.execute(
                "INSERT INTO opt_outs(workspace_id, number, source, inbound_id, keyword, created_at)"
                " VALUES (?,?,'reply',?,?,?) ON CONFLICT DO NOTHING",
                (workspace_id, sender, inbound_id, keyword, now),
            )
        stored.append(StoredInbound(index, inbound_id, opted))
    return stored


def _add_opt_out(conn: sqlite3.Connection, workspace_id: int, number: str, now: float) -> tuple[OptOutRecord, bool]:
    cur = conn.execute(
        "INSERT INTO opt_outs(workspace_id, number, source, created_at) VALUES (?,?,'api',?) ON CONFLICT DO NOTHING",
        (workspace_id, number, now),
    )
    row = conn.execute(f"SELECT {_OPT_OUT_COLUMNS} FROM opt_outs WHERE workspace_id = ? AND number = ?",
                       (workspace_id, number)).fetchone()
    return OptOutRecord(*row), cur.rowcount > 0


def _remove_opt_out(conn: sqlite3.Connection, workspace_id: int, number: str) -> bool:
    return conn.execute("DELETE FROM opt_outs WHERE workspace_id = ? AND number = ?", (workspace_id, number)).rowcount > 0
