"""Each platform plugin's own store on PostgreSQL: the same API and guarantees as
``gateway/storage/sqlite/platform_store.py`` (one statement, so one transaction, per call however
many keys it names), with the keys and values as ``unnest`` arrays instead of JSON text.

Keys compare bytewise (the column is ``COLLATE "C"``), as SQLite's do, so ``scan`` pages through
keys in the same order on both backends.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..base import check_platform_store_keys
from .db import Database

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_PUT = (
    "INSERT INTO platform_store(namespace, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS u(k, v)"
    " ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value"
)
_GET = "SELECT key, value FROM platform_store WHERE namespace = $1 AND key = ANY($2::text[])"
_DELETE = "DELETE FROM platform_store WHERE namespace = $1 AND key = ANY($2::text[])"
# ``key >= prefix`` lets the primary key start at the prefix; ``starts_with`` ends the walk's
# matches (a LIKE pattern would need the prefix's % and _ escaped)
_SCAN = (
    "SELECT key, value FROM platform_store WHERE namespace = $1 AND key >= $2 AND key > $3 AND starts_with(key, $2)"
    " ORDER BY key LIMIT $4"
)


class PlatformStore:
    def __init__(self, db: Database, namespace: str):
        self.db = db
        self.namespace = namespace

    async def put_many(self, items: dict[str, Any]) -> None:
        """Set each key to its value (anything JSON can hold); a key with NUL is refused
        (``check_platform_store_keys``)."""
        if items:
            check_platform_store_keys(items)
            values = [_encode(value).decode() for value in items.values()]
            await self.db.execute(_PUT, (self.namespace, list(items), values))

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The values of the keys that are set."""
        if not keys:
            return {}
        rows = await self.db.fetchall(_GET, (self.namespace, list(keys)))
        return {key: _decode(value) for key, value in rows}

    async def delete_many(self, keys: list[str]) -> None:
        if keys:
            await self.db.execute(_DELETE, (self.namespace, list(keys)))

    async def scan(self, prefix: str = "", limit: int = 1000, after: str = "") -> list[tuple[str, Any]]:
        """Keys starting with ``prefix`` above ``after``, in order, at most ``limit``."""
        rows = await self.db.fetchall(_SCAN, (self.namespace, prefix, after, limit))
        return [(key, _decode(value)) for key, value in rows]
