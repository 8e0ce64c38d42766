"""Unmatched receipts in SQLite (the interface: ``gateway/storage/unmatched.py``)."""

from __future__ import annotations

from ..unmatched import UnmatchedReceipt


class SqliteUnmatchedStore:
    def __init__(self, db):
        self.db = db

    async def page(self, workspace_id: int, with_unowned: bool, platform: str | None, after: int | None,
                   limit: int) -> tuple[int, list[UnmatchedReceipt]]:
        scope = "(workspace_id = ? OR workspace_id IS NULL)" if with_unowned else "workspace_id = ?"
        where, args = ["matched=0", scope], [workspace_id]
        if platform:
            where.append("platform=?")
            args.append(platform)
        (total,) = await self.db.fetchone(f"SELECT COUNT(*) FROM unmatched_receipts WHERE {' AND '.join(where)}", args)
        rows = await self.db.fetchall(
            "SELECT id, platform, platform_id, part, status, code, message, at, received_at FROM unmatched_receipts"
            f" WHERE {' AND '.join(where)} AND id > ? ORDER BY id LIMIT ?",
            (*args, after if after is not None else -1, limit),
        )
        return total, [UnmatchedReceipt(*r) for r in rows]
