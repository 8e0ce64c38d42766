"""Each platform plugin's own store: keys and JSON values in a namespace of its own.

A platform keeps state that must survive a restart (the SMPP plugin: which SMSC ids each
idempotency key got, so a resubmission after a crash is answered without sending again). It gets
it here (``PlatformContext.store``) rather than tables of its own in the gateway's database: the
gateway can change how it stores things (SQLite, PostgreSQL) without every plugin following, and
one plugin cannot read or break another's or the gateway's rows.

Every call is one transaction however many keys it names, so a platform writes its batch of a
thousand keys at the cost of one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..base import check_platform_store_keys
from . import bulk


class PlatformStore:
    def __init__(self, db, namespace: str):
        self.db = db
        self.namespace = namespace

    async def put_many(self, items: dict[str, Any]) -> None:
        """Set each key to its value (anything JSON can hold); a key with NUL is refused
        (``check_platform_store_keys``)."""
        if items:
            check_platform_store_keys(items)
            await self.db.write(_put, self.namespace, bulk.encode({key: [value] for key, value in items.items()}))

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The values of the keys that are set."""
        if not keys:
            return {}
        return dict(await self.db.read(_get, self.namespace, bulk.encode(keys)))

    async def delete_many(self, keys: list[str]) -> None:
        if keys:
            await self.db.write(_delete, self.namespace, bulk.encode(keys))

    async def scan(self, prefix: str = "", limit: int = 1000, after: str = "") -> list[tuple[str, Any]]:
        """Keys starting with ``prefix`` above ``after``, in order, at most ``limit``."""
        return await self.db.read(_scan, self.namespace, prefix, after, limit)


def _put(conn, namespace: str, items: bytes) -> None:
    """``items``: one JSON object, encoded once, of each key and its value wrapped in an array.
    ``json_each`` gives each member's array as the JSON text it came as, and the value's text is
    that between the brackets, byte for byte what the encoder wrote. Unwrapped, a top-level
    number would come back as an SQL REAL, rendered with 15 digits, and ``true`` as 1. Encoding
    each value apart, and the pairs around them, cost a third more per row on the event loop's
    thread (the SMPP plugin writes three rows per number)."""
    conn.execute("INSERT OR REPLACE INTO platform_store(namespace, key, value)"
                 " SELECT ?, key, substr(value, 2, length(value) - 2) FROM json_each(?)", (namespace, items))


def _get(conn, namespace: str, keys: bytes) -> list[tuple[str, Any]]:
    rows = conn.execute("SELECT key, value FROM platform_store WHERE namespace = ? AND key IN (SELECT value FROM json_each(?))",
                        (namespace, keys)).fetchall()
    return [(key, msgspec.json.decode(value)) for key, value in rows]


def _delete(conn, namespace: str, keys: bytes) -> None:
    conn.execute("DELETE FROM platform_store WHERE namespace = ? AND key IN (SELECT value FROM json_each(?))", (namespace, keys))


def _scan(conn, namespace: str, prefix: str, after: str, limit: int) -> list[tuple[str, Any]]:
    rows = conn.execute(
        "SELECT key, value FROM platform_store WHERE namespace = ? AND key >= ? AND key > ? AND substr(key, 1, ?) = ?"
        " ORDER BY key LIMIT ?", (namespace, prefix, after, len(prefix), prefix, limit)).fetchall()
    return [(key, msgspec.json.decode(value)) for key, value in rows]
