"""``/healthz``'s probe in SQLite (the interface: ``gateway/storage/health.py``)."""

from __future__ import annotations


class SqliteHealthStore:
    def __init__(self, db):
        self.db = db

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")
