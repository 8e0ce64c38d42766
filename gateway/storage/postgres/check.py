"""The check area on PostgreSQL: both queries in one read-only, repeatable-read transaction.

One snapshot, because the service (or several instances of it) may be writing meanwhile: a batch
recorded between reading the tasks and grouping the rows would otherwise look like a mismatch.
The rule that compares them is the backends' shared one (``gateway/storage/check.py``).
"""

from __future__ import annotations

import time

import asyncpg

from ..check import CountCheck, ResultRows, TaskCounters, compare
from .db import Database

_TASKS = (
    "SELECT id, sent, succeeded, failed, segments,"
    " CASE WHEN details_purged <> 0 THEN 'purged'"
    "      WHEN details_expire_at IS NOT NULL AND details_expire_at <= $1 THEN 'expired'"
    "      ELSE 'checked' END"
    " FROM tasks ORDER BY id"
)
_SAVED_NOW = "SELECT value FROM service_state WHERE key = 'virtual_now'"
_GROUPS = "SELECT task_id, result, COUNT(*), SUM(parts) FROM messages GROUP BY task_id, result"


def _saved_now(value: str) -> float:
    """The saved instant as SQLite's ``CAST(value AS REAL)`` reads it (text that is no number: 0)."""
    try:
        return float(value)
    except ValueError:
        return 0.0


async def _count(conn: asyncpg.Connection, now: float | None) -> CountCheck:
    if now is None:
        saved = await conn.fetchrow(_SAVED_NOW)
        now = _saved_now(saved[0]) if saved is not None else time.time()
    tasks = [TaskCounters(*row) for row in await conn.fetch(_TASKS, float(now))]
    groups = [ResultRows(*row) for row in await conn.fetch(_GROUPS)]
    return compare(tasks, groups)


class PostgresCheckStore:
    def __init__(self, db: Database):
        self.db = db

    async def count_mismatches(self, now: float | None = None) -> CountCheck:
        return await self.db.read(_count, now)
