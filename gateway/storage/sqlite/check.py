"""The check area on SQLite: both queries in one read transaction on the reader connection.

One read transaction, because the service may be writing meanwhile: a batch recorded between
reading the tasks and grouping the rows would otherwise look like a mismatch. In WAL mode the
snapshot costs the writer nothing (it never waits for a reader).
"""

from __future__ import annotations

import sqlite3
import time

from ..check import CountCheck, ResultRows, TaskCounters, compare
from .db import Database

_TASKS = (
    "SELECT id, sent, succeeded, failed, segments,"
    " CASE WHEN details_purged THEN 'purged'"
    "      WHEN details_expire_at IS NOT NULL AND details_expire_at <= ? THEN 'expired'"
    "      ELSE 'checked' END"
    " FROM tasks ORDER BY id"
)
_SAVED_NOW = "SELECT CAST(value AS REAL) FROM service_state WHERE key = 'virtual_now'"
_GROUPS = "SELECT task_id, result, COUNT(*), SUM(parts) FROM messages GROUP BY task_id, result"


def _count(conn: sqlite3.Connection, now: float | None) -> CountCheck:
    conn.execute("BEGIN")
    try:
        if now is None:
            saved = conn.execute(_SAVED_NOW).fetchall()
            now = saved[0][0] if saved else time.time()
        tasks = [TaskCounters(*row) for row in conn.execute(_TASKS, (now,)).fetchall()]
        groups = [ResultRows(*row) for row in conn.execute(_GROUPS).fetchall()]
    finally:
        conn.execute("COMMIT")
    return compare(tasks, groups)


class SqliteCheckStore:
    def __init__(self, db: Database):
        self.db = db

    async def count_mismatches(self, now: float | None = None) -> CountCheck:
        return await self.db.read(_count, now)
