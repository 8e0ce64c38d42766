"""The message area on PostgreSQL (``gateway.storage.messages.MessageStore``): dispatch records,
receipts, the timeout sweep and the purge, each one transaction with a constant number of
statements whatever the batch's size.

The fresh-message cache is not used (``uses_fresh_cache = False``): several instances may share
the database, and a row this process remembers as just recorded may have been changed by another
one since. Rows are read, locked, in the transaction that changes them (receipts.py).

A transaction that deadlocks with another instance's (PostgreSQL picks one of the two and rolls it
back) is run again: each operation here is a function of the rows it reads, so a retry is safe.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg

from gateway.platform import Receipt

from ..errors import StaleBatch
from ..fresh import FreshMessages
from ..messages import BatchRecord, Member, Tally
from .db import Database, rows_changed
from .receipts import apply_receipts, commit_receipts, lock_results

T = TypeVar("T")

_RETRIES = 5  # deadlocks and serialization failures, each rolled back whole before the next try

# COPY rather than INSERT … unnest: 75.7k against 59.6k rows/s in batches of 1,000 (loadtests.pg_floor)
_COPY_COLUMNS = ("task_id", "number", "parts", "result", "platform_id", "submitted_at")


async def write_retrying(db: Database, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``db.write(fn, *args)``, run again when PostgreSQL rolled it back for a deadlock or a
    serialization failure with another transaction (another instance's, on a shared database)."""
    for attempt in range(_RETRIES):
        try:
            return await db.write(fn, *args)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if attempt == _RETRIES - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


class PostgresMessageStore:
    uses_fresh_cache = False

    def __init__(self, db: Database):
        self.db = db

    async def read_members(self, audience_id: int, after_seq: int, limit: int) -> list[Member]:
        rows = await self.db.fetchall(
            "SELECT seq, e164, kind FROM audience_members WHERE audience_id=$1 AND seq>$2 ORDER BY seq LIMIT $3",
            (audience_id, after_seq, limit),
        )
        return [Member(seq, e164, kind) for seq, e164, kind in rows]

    async def record_batch(self, batch: BatchRecord, fresh: FreshMessages | None) -> None:
        try:
            await write_retrying(self.db, record_batch, *batch)
        except _TaskGone:  # deleted meanwhile: nothing to record
            pass

    async def apply_receipts(self, items: list[tuple[str, Receipt]], timeout: float, now: float,
                             expected: dict[str, set[str]], fresh: FreshMessages | None,
                             scoped: dict[int, list[tuple[str, Receipt]]] | None) -> Tally:
        return await write_retrying(self.db, commit_receipts, items, timeout, now, expected, scoped)

    async def tasks_to_sweep(self, submitted_before: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status IN ('sending', 'failed') AND details_purged=0"
            " AND dispatch_started_at IS NOT NULL AND dispatch_started_at < $1 AND sent > succeeded + failed"
            " ORDER BY id",
            (float(submitted_before),),
        )
        return [task_id for (task_id,) in rows]

    async def sweep_timeouts(self, task_id: int, submitted_before: float, reasons: str, now: float,
                             fresh: FreshMessages | None) -> int:
        return await write_retrying(self.db, _sweep_timeouts, task_id, float(submitted_before), reasons, float(now))

    async def tasks_to_purge(self, now: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE details_purged=0 AND details_expire_at IS NOT NULL AND details_expire_at <= $1"
            " ORDER BY id",
            (float(now),),
        )
        return [task_id for (task_id,) in rows]

    async def purge(self, task_id: int, chunk: int, fresh: FreshMessages | None) -> bool:
        return await write_retrying(self.db, _purge, task_id, chunk)


# -- transactions, each given its connection inside the transaction ----------------------------
async def _sweep_timeouts(conn: asyncpg.Connection, task_id: int, submitted_before: float, reasons: str,
                          now: float) -> int:
    # a row a receipt changed meanwhile is checked again as committed (result=0 no longer
    # holds): it is neither failed twice nor counted twice
    count = rows_changed(await conn.execute(
        "UPDATE messages SET result=2, late=1, reasons=$1 WHERE task_id=$2 AND result=0 AND result <> 1 AND submitted_at < $3",
        reasons, task_id, submitted_before,
    ))
    if count:
        await conn.execute(
            "UPDATE tasks SET failed=failed+$1, last_result_at=GREATEST(last_result_at, $2::float8) WHERE id=$3",
            count, now, task_id,
        )
    return count


async def _purge(conn: asyncpg.Connection, task_id: int, chunk: int) -> bool:
    count = rows_changed(await conn.execute(
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE task_id=$1 LIMIT $2)", task_id, chunk
    ))
    if count < chunk:
        await conn.execute("UPDATE tasks SET details_purged=1 WHERE id=$1", task_id)
        return True
    return False


class _TaskGone(Exception):
    """The task of a batch being recorded no longer exists: the transaction (its COPY) is undone."""


async def record_batch(conn: asyncpg.Connection, task_id: int, platform_name: str, parts: int, rows: list[tuple],
                       now: float, cursor: int, accepted: int, skipped: str, timeout: float) -> None:
    """One transaction per batch: the acknowledged numbers become pending message rows (COPY) and
    count as sent, the cursor moves past the batch with the skip counts as they stood after it,
    and receipts that overtook the acknowledgement are applied and marked matched.

    The COPY comes before the result locks (``lock_results``), so that a receipt flush waiting
    for them waits for the counters and the look for receipts kept aside, not for the rows."""
    now = float(now)
    if rows:
        await conn.copy_records_to_table(
            "messages", columns=_COPY_COLUMNS, records=[(r[0], r[1], r[2], 0, r[3], now) for r in rows])
    await lock_results(conn, (platform_name,))  # see lock_results: receipts that overtook this batch
    # the counters, and whether any receipt is waiting at all (one probe of the partial index),
    # only while the stored cursor is before this batch: a batch another instance already
    # recorded (it took the task over from this one) is refused whole (StaleBatch), its rows with it
    moved = await conn.fetchrow(
        "UPDATE tasks SET cursor=$1, accepted=$2, skipped=$3, sent=sent+$4, segments=segments+$5 WHERE id=$6"
        " AND cursor < $1 RETURNING workspace_id, EXISTS(SELECT 1 FROM unmatched_receipts WHERE matched=0)",
        cursor, accepted, skipped, len(rows), len(rows) * parts, task_id,
    )
    if moved is None:
        if await conn.fetchval("SELECT EXISTS(SELECT 1 FROM tasks WHERE id=$1)", task_id):
            raise StaleBatch(task_id, cursor)
        raise _TaskGone(task_id)
    workspace_id, waiting = moved
    if not rows or not waiting:
        return
    # a receipt posted with a workspace's token matches only that workspace's numbers
    early = await conn.fetch(
        "SELECT id, platform_id, part, status, code, message, at FROM unmatched_receipts"
        " WHERE matched=0 AND platform=$1 AND platform_id = ANY($2::text[])"
        " AND (workspace_id IS NULL OR workspace_id = $3) ORDER BY id FOR UPDATE",
        platform_name, [r[3] for r in rows], workspace_id,
    )
    if early:
        items = [(platform_name, Receipt(platform_id=e[1], part=e[2], status=e[3], code=e[4], message=e[5], at=e[6]))
                 for e in early]
        await apply_receipts(conn, items, timeout)
        await conn.execute("UPDATE unmatched_receipts SET matched=1 WHERE id = ANY($1::bigint[])", [e[0] for e in early])
