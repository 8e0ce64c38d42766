"""The PostgreSQL backend (``smslab serve --db postgresql://…``): several gateway instances on one
database act as one gateway.

It mirrors ``SqliteStorage``: each area of the service has its module here, built on the one
``Database`` (a connection pool, db.py) this storage opens; the area objects are what the
services are given. The schema is versioned (schema.py) and migrated at ``open()``.
"""

from __future__ import annotations

from ..base import Storage
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


class PostgresStorage(Storage):
    backend = "postgres"

    def __init__(self, url: str):
        self.url = url
        super().__init__(Database(url), {
            "leases": PostgresLeaseStore,
            "tasks": PostgresTaskStore,
            "audiences": PostgresAudienceStore,
            "tokens": PostgresTokenStore,
            "unmatched": PostgresUnmatchedStore,
            "health": PostgresHealthStore,
            "inbound": PostgresInboundStore,
            "check": PostgresCheckStore,
            "messages": PostgresMessageStore,
            "lifecycle": PostgresLifecycleStore,
            "state": PostgresServiceStateStore,
        }, PlatformStore)
