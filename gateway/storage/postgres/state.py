"""The service-state area on PostgreSQL (``gateway.storage.state.ServiceStateStore``)."""

from __future__ import annotations

from .db import Database


class PostgresServiceStateStore:
    def __init__(self, db: Database):
        self.db = db

    async def virtual_now(self) -> float | None:
        saved = await self.db.fetchone("SELECT value FROM service_state WHERE key='virtual_now'")
        return None if saved is None else float(saved[0])

    async def save_virtual_now(self, now: float) -> None:
        # repr: the float to the last bit, as SQLite's store keeps it
        await self.db.execute(
            "INSERT INTO service_state(key, value) VALUES ('virtual_now', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (repr(float(now)),),
        )
