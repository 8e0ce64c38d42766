"""``/healthz``'s probe on PostgreSQL (the interface: ``gateway/storage/health.py``)."""

from __future__ import annotations

from .db import Database


class PostgresHealthStore:
    def __init__(self, db: Database):
        self.db = db

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")
