"""What every backend hands the services: one store per area, the platforms' namespaced stores,
and the database's health. ``SqliteStorage`` and ``PostgresStorage`` differ only in the classes
they name; the services see this shape, typed by the areas' Protocols."""

from __future__ import annotations

from typing import Any, Iterable

from .audiences import AudienceStore
from .check import CheckStore
from .health import HealthStore
from .inbound import InboundStore
from .leases import LeaseStore
from .lifecycle import LifecycleStore
from .messages import MessageStore
from .state import ServiceStateStore
from .tasks import TaskStore
from .tokens import TokenStore
from .unmatched import UnmatchedStore


class Storage:
    backend: str
    tasks: TaskStore
    audiences: AudienceStore
    tokens: TokenStore
    unmatched: UnmatchedStore
    health: HealthStore
    inbound: InboundStore
    check: CheckStore
    messages: MessageStore
    lifecycle: LifecycleStore
    state: ServiceStateStore
    # leases exist where several instances can share the database (PostgreSQL); None on SQLite
    leases: LeaseStore | None = None

    def __init__(self, db: Any, areas: dict[str, type], platform_store: type):
        self.db = db  # the backend's own database object: for its stores, never for the services
        for name, store in areas.items():
            setattr(self, name, store(db))
        self._platform_store = platform_store

    async def open(self) -> None:
        """Connect, and bring the schema up to date (migrations)."""
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    @property
    def write_error(self) -> str | None:
        """The last write the database itself refused (a full disk, a lost server), until one
        commits again: /healthz reports it."""
        return self.db.write_error

    def platform_store(self, namespace: str):
        """A platform plugin's own keys and values (``PlatformContext.store``)."""
        return self._platform_store(self.db, namespace)


def check_platform_store_keys(keys: Iterable[str]) -> None:
    """A platform store's key is text without NUL, on every backend: SQLite's JSON functions end
    a key there (it would be stored cut short), PostgreSQL's text refuses it."""
    if "\0" in "".join(keys):
        raise ValueError("a platform store key cannot hold NUL")
