"""The PostgreSQL backend (``smslab serve --db postgresql://…``): several gateway instances on one
database act as one gateway.

It mirrors ``SqliteStorage``: each area of the service has its module here, built on the one
``Database`` (a connection pool, db.py) this storage opens; the area objects are what the
services are given. The schema is versioned (schema.py) and migrated at ``open()``.
"""

from __future__ import annotations

from .audiences import PostgresAudienceStore
from .check import PostgresCheckStore
from .db import Database
from .health import PostgresHealthStore
from .inbound import PostgresInboundStore
from .leases import PostgresLeaseStore
from .lifecycle import PostgresLifecycleStore
from .messages import PostgresMessageStore
from .platform_store import PlatformStore
from .state import PostgresServiceStateStore
from .tasks import PostgresTaskStore
from .tokens import PostgresTokenStore
from .unmatched import PostgresUnmatchedStore


class PostgresStorage:
    backend = "postgres"

    def __init__(self, url: str):
        self.url = url
        self.db = Database(url)
        self.leases = PostgresLeaseStore(self.db)
        self.tasks = PostgresTaskStore(self.db)
        self.audiences = PostgresAudienceStore(self.db)
        self.tokens = PostgresTokenStore(self.db)
        self.unmatched = PostgresUnmatchedStore(self.db)
        self.health = PostgresHealthStore(self.db)
        self.inbound = PostgresInboundStore(self.db)
        self.check = PostgresCheckStore(self.db)
        self.messages = PostgresMessageStore(self.db)
        self.lifecycle = PostgresLifecycleStore(self.db)
        self.state = PostgresServiceStateStore(self.db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    @property
    def write_error(self) -> str | None:
        """The last write that failed on the database itself (lost, full), until one commits."""
        return self.db.write_error

    def platform_store(self, namespace: str) -> PlatformStore:
        return PlatformStore(self.db, namespace)
