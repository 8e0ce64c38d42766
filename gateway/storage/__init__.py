"""The gateway's storage: every SQL statement the service runs lives under this folder.

``open_storage(target)`` gives the backend a target names: a path (or ``sqlite:///path``) opens
the embedded SQLite backend (``sqlite/``), ``postgresql://…`` the PostgreSQL one
(``postgres/``). The services above talk to the areas a backend exposes (tasks, audiences,
messages and receipts, tokens, inbound messages and opt-outs, service state) and to the errors in
``errors.py``; they never see a connection.
"""

from __future__ import annotations

from .errors import NameTaken, StorageUnavailable, StoreError

__all__ = ["NameTaken", "StorageUnavailable", "StoreError", "is_postgres", "open_storage", "shown"]


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def shown(target: str) -> str:
    """``target`` as it may be printed or logged: a URL's password replaced by ``***``."""
    if not is_postgres(target):
        return target
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(target)
    if parts.password is None:
        return target
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(target: str) -> str:
    return target[len("sqlite://"):] if target.startswith("sqlite://") else target


def open_storage(target: str):
    """The (not yet opened) storage for ``target``; ``await storage.open()`` before use."""
    if is_postgres(target):
        from .postgres import PostgresStorage

        return PostgresStorage(target)
    from .sqlite import SqliteStorage

    return SqliteStorage(sqlite_path(target))
