"""The embedded backend: one SQLite file in WAL mode (see db.py for why two connections).

Each area of the service has its module here (tasks.py, audiences.py, …), built on the one
``Database`` this storage opens; the area objects are what the services are given.
"""

from __future__ import annotations

from ..base import Storage
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


class SqliteStorage(Storage):
    backend = "sqlite"

    def __init__(self, path: str):
        self.path = path
        super().__init__(Database(path), {
            "tasks": SqliteTaskStore,
            "audiences": SqliteAudienceStore,
            "tokens": SqliteTokenStore,
            "unmatched": SqliteUnmatchedStore,
            "health": SqliteHealthStore,
            "inbound": SqliteInboundStore,
            "check": SqliteCheckStore,
            "messages": SqliteMessageStore,
            "lifecycle": SqliteLifecycleStore,
            "state": SqliteServiceStateStore,
        }, PlatformStore)
