"""The embedded backend: one SQLite file in WAL mode (see db.py for why two connections).

Each area of the service has its module here (tasks.py, audiences.py, …), built on the one
``Database`` this storage opens; the area objects are what the services are given.
"""

from __future__ import annotations

from .audiences import SqliteAudienceStore
from .check import SqliteCheckStore
from .db import Database
from .health import SqliteHealthStore
from .inbound import SqliteInboundStore
from .lifecycle import SqliteLifecycleStore
from .messages import SqliteMessageStore
from .platform_store import PlatformStore
from .state import SqliteServiceStateStore
from .tasks import SqliteTaskStore
from .tokens import SqliteTokenStore
from .unmatched import SqliteUnmatchedStore


class SqliteStorage:
    backend = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self.db = Database(path)
        self.tasks = SqliteTaskStore(self.db)
        self.audiences = SqliteAudienceStore(self.db)
        self.tokens = SqliteTokenStore(self.db)
        self.unmatched = SqliteUnmatchedStore(self.db)
        self.health = SqliteHealthStore(self.db)
        self.inbound = SqliteInboundStore(self.db)
        self.check = SqliteCheckStore(self.db)
        self.messages = SqliteMessageStore(self.db)
        self.lifecycle = SqliteLifecycleStore(self.db)
        self.state = SqliteServiceStateStore(self.db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    @property
    def write_error(self) -> str | None:
        """The last write that failed on the storage itself (a full disk), until one commits."""
        return self.db.write_error

    def platform_store(self, namespace: str) -> PlatformStore:
        return PlatformStore(self.db, namespace)
