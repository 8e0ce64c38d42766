"""Leases on PostgreSQL (the contract is gateway/storage/leases.py).

Each operation is one statement, so the row lock it takes is the whole of its synchronisation:
``acquire`` is an upsert whose condition PostgreSQL re-checks on the row's latest version after
waiting for a concurrent writer; ``claim_one`` picks its row ``FOR UPDATE SKIP LOCKED``, so a
second claimer passes over a row the first is taking instead of queueing behind it.
"""

from __future__ import annotations

from typing import Sequence

from ..leases import Lease
from .db import Database

_ACQUIRE = (
    "INSERT INTO leases(name, holder, expires_at) VALUES ($1, $2, $3::float8 + $4::float8)"
    " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
    " WHERE leases.holder IS NULL OR leases.holder = EXCLUDED.holder OR leases.expires_at <= $3::float8"
    " RETURNING name"
)
_RENEW = "UPDATE leases SET expires_at = $3::float8 + $4::float8 WHERE name = $1 AND holder = $2"
_RELEASE = "UPDATE leases SET holder = NULL, expires_at = NULL WHERE name = $1 AND holder = $2"
_RELEASE_ALL = "UPDATE leases SET holder = NULL, expires_at = NULL WHERE holder = $1"
# names never leased get their (free) row first, committed on its own: inserted inside the claim's
# transaction, a second claimer inserting the same name would wait for the first to commit
_KNOWN = "INSERT INTO leases(name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING"
_CLAIM = (
    "UPDATE leases SET holder = $2, expires_at = $3::float8 + $4::float8 WHERE name = ("
    " SELECT name FROM leases WHERE name = ANY($1::text[])"
    " AND (holder IS NULL OR expires_at <= $3::float8)"
    " ORDER BY array_position($1::text[], name) LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING name"
)
_GET = "SELECT name, holder, expires_at FROM leases WHERE name = $1"


class PostgresLeaseStore:
    def __init__(self, db: Database):
        self.db = db

    async def acquire(self, name: str, holder: str, now: float, seconds: float) -> bool:
        return await self.db.returning(_ACQUIRE, (name, holder, now, seconds)) is not None

    async def renew(self, name: str, holder: str, now: float, seconds: float) -> bool:
        return await self.db.execute(_RENEW, (name, holder, now, seconds)) == 1

    async def release(self, name: str, holder: str) -> bool:
        return await self.db.execute(_RELEASE, (name, holder)) == 1

    async def release_all(self, holder: str) -> int:
        return await self.db.execute(_RELEASE_ALL, (holder,))

    async def claim_one(self, candidates: Sequence[str], holder: str, now: float, seconds: float) -> str | None:
        names = list(dict.fromkeys(candidates))
        if not names:
            return None
        await self.db.execute(_KNOWN, (names,))
        row = await self.db.returning(_CLAIM, (names, holder, now, seconds))
        return row[0] if row is not None else None

    async def get(self, name: str) -> Lease | None:
        row = await self.db.fetchone(_GET, (name,))
        return Lease(*row) if row is not None else None

