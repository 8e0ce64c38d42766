"""The service-state area on PostgreSQL (``gateway.storage.state.ServiceStateStore``)."""

from __future__ import annotations

import time

from ..state import StateReads
from .db import Database


class PostgresServiceStateStore(StateReads):
    def __init__(self, db: Database):
        self.db = db

    async def save_virtual_now(self, now: float) -> None:
        # repr: the float to the last bit, as SQLite's store keeps it; the wall time it was saved
        # at lets the other instances follow a clock that flows
        await self.db.execute(
            "INSERT INTO service_state(key, value) VALUES ('virtual_now', $1), ('virtual_saved_at', $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (repr(float(now)), repr(time.time())),
        )

    async def save_leader_url(self, url: str) -> None:
        await self.db.execute(
            "INSERT INTO service_state(key, value) VALUES ('leader_url', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (url,))
