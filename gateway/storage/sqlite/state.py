"""The service-state area on SQLite (``gateway.storage.state.ServiceStateStore``)."""

from __future__ import annotations

from .db import Database


class SqliteServiceStateStore:
    def __init__(self, db: Database):
        self.db = db

    async def virtual_now(self) -> float | None:
        saved = await self.db.fetchone("SELECT value FROM service_state WHERE key='virtual_now'")
        return None if saved is None else float(saved[0])

    async def save_virtual_now(self, now: float) -> None:
        await self.db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('virtual_now', ?)", (repr(now),))
