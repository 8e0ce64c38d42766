"""The service-state area on SQLite (``gateway.storage.state.ServiceStateStore``)."""

from __future__ import annotations

import time

from .db import Database


class SqliteServiceStateStore:
    def __init__(self, db: Database):
        self.db = db

    async def virtual_now(self) -> float | None:
        saved = await self.db.fetchone("SELECT value FROM service_state WHERE key='virtual_now'")
        return None if saved is None else float(saved[0])

    async def save_virtual_now(self, now: float) -> None:
        await self.db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('virtual_now', ?), ('virtual_saved_at', ?)",
                              (repr(now), repr(time.time())))

    async def virtual_clock(self) -> tuple[float, float] | None:
        rows = dict(await self.db.fetchall(
            "SELECT key, value FROM service_state WHERE key IN ('virtual_now', 'virtual_saved_at')"))
        if "virtual_now" not in rows:
            return None
        return float(rows["virtual_now"]), float(rows.get("virtual_saved_at", "0"))

    async def leader_url(self) -> str | None:
        row = await self.db.fetchone("SELECT value FROM service_state WHERE key='leader_url'")
        return None if row is None else row[0]

    async def save_leader_url(self, url: str) -> None:
        await self.db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('leader_url', ?)", (url,))
