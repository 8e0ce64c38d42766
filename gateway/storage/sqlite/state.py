"""The service-state area on SQLite (``gateway.storage.state.ServiceStateStore``)."""

from __future__ import annotations

import time

from ..state import StateReads
from .db import Database


class SqliteServiceStateStore(StateReads):
    def __init__(self, db: Database):
        self.db = db

    async def save_virtual_now(self, now: float) -> None:
        await self.db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('virtual_now', ?), ('virtual_saved_at', ?)",
                              (repr(now), repr(time.time())))

    async def save_leader_url(self, url: str) -> None:
        await self.db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES ('leader_url', ?)", (url,))
