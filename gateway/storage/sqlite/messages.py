"""The message area on SQLite (``gateway.storage.messages.MessageStore``): dispatch records,
receipts, the timeout sweep and the purge, each one transaction on the writer's thread.

The transaction functions (``record_batch``, ``receipts.commit_receipts``) take the plain
``sqlite3.Connection`` so that benchmarks and tests can run them directly.
"""

from __future__ import annotations

import json
import sqlite3
from operator import attrgetter

import msgspec

from gateway.platform import Receipt

from ..errors import StaleBatch
from ..fresh import FreshMessages
from ..messages import BatchRecord, Member, Tally
from . import bulk
from .db import Database
from .receipts import apply_receipts, commit_receipts


class SqliteMessageStore:
    def __init__(self, db: Database):
        self.db = db

    async def read_members(self, audience_id: int, after_seq: int, limit: int) -> list[Member]:
        return await self.db.read(read_members, audience_id, after_seq, limit)

    async def record_batch(self, batch: BatchRecord, fresh: FreshMessages | None) -> None:
        platform_ids = [row[3] for row in batch.rows]

        def remember(first_id: int | None) -> None:  # on the writer's thread, right after the COMMIT
            if first_id is not None and fresh is not None:
                fresh.add(batch.platform, platform_ids, first_id, batch.task_id, batch.submitted_at, batch.parts)

        await self.db.write(record_batch, *batch, on_commit=remember)

    async def apply_receipts(self, items: list[tuple[str, Receipt]], timeout: float, now: float,
                             expected: dict[str, set[str]], fresh: FreshMessages | None,
                             scoped: dict[int, list[tuple[str, Receipt]]] | None) -> Tally:
        return await self.db.write(commit_receipts, items, timeout, now, expected, fresh, scoped)

    async def tasks_to_sweep(self, submitted_before: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE status IN ('sending', 'failed') AND details_purged=0"
            " AND dispatch_started_at IS NOT NULL AND dispatch_started_at < ? AND sent > succeeded + failed",
            (submitted_before,),
        )
        return [task_id for (task_id,) in rows]

    async def sweep_timeouts(self, task_id: int, submitted_before: float, reasons: str, now: float,
                             fresh: FreshMessages | None) -> int:
        return await self.db.write(_sweep_timeouts, task_id, submitted_before, reasons, now, fresh)

    async def tasks_to_purge(self, now: float) -> list[int]:
        rows = await self.db.fetchall(
            "SELECT id FROM tasks WHERE details_purged=0 AND details_expire_at IS NOT NULL AND details_expire_at <= ?", (now,)
        )
        return [task_id for (task_id,) in rows]

    async def purge(self, task_id: int, chunk: int, fresh: FreshMessages | None) -> bool:
        return await self.db.write(_purge, task_id, chunk, fresh)


# -- transactions, each run whole on the database thread ----------------------------------------
def _sweep_timeouts(conn: sqlite3.Connection, task_id: int, submitted_before: float, reasons: str, now: float,
                    fresh: FreshMessages | None) -> int:
    # ``result <> 1`` lets SQLite walk the partial index of unsettled numbers
    count = conn.execute(
        "UPDATE messages SET result=2, late=1, reasons=? WHERE task_id=? AND result=0 AND result <> 1 AND submitted_at < ?",
        (reasons, task_id, submitted_before),
    ).rowcount
    if count:
        if fresh is not None:
            fresh.clear()
        conn.execute(
            "UPDATE tasks SET failed=failed+?, last_result_at=MAX(COALESCE(last_result_at, ?), ?) WHERE id=?",
            (count, now, now, task_id),
        )
    return count


def _purge(conn: sqlite3.Connection, task_id: int, chunk: int, fresh: FreshMessages | None) -> bool:
    count = conn.execute(
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE task_id=? LIMIT ?)", (task_id, chunk)
    ).rowcount
    if fresh is not None:
        fresh.clear()
    if count < chunk:
        conn.execute("UPDATE tasks SET details_purged=1 WHERE id=?", (task_id,))
        return True
    return False


def read_members(conn: sqlite3.Connection, audience_id: int, cursor: int, limit: int) -> list[Member]:
    rows = bulk.fetch(
        conn,
        "SELECT json_group_array(json_array(seq, e164, kind)) FROM"
        " (SELECT seq, e164, kind FROM audience_members WHERE audience_id=? AND seq>? ORDER BY seq LIMIT ?)",
        (audience_id, cursor, limit),
        _decode_members,
    )
    rows.sort(key=_seq)
    return rows


_decode_members = msgspec.json.Decoder(list[Member]).decode
_seq = attrgetter("seq")


def record_batch(conn: sqlite3.Connection, task_id: int, platform_name: str, parts: int, rows: list[tuple],
                 now: float, cursor: int, accepted: int, skipped: str, timeout: float) -> int | None:
    """One transaction per batch: the acknowledged numbers become pending message rows and count
    as sent, the cursor moves past the batch with the skip counts as they stood after it, and
    receipts that overtook the acknowledgement are applied.

    Returns the id of the first row when the rows are fresh and their ids follow each other in
    the order of ``rows`` (the receipt sink then need not read them back: fresh.py), else None."""
    # the counters first, and only while the stored cursor is before this batch: a batch recorded
    # already (StaleBatch: another dispatcher of the task got there first) is refused whole
    moved = conn.execute(
        "UPDATE tasks SET cursor=?, accepted=?, skipped=?, sent=sent+?, segments=segments+? WHERE id=? AND cursor < ?",
        (cursor, accepted, skipped, len(rows), len(rows) * parts, task_id, cursor),
    ).rowcount
    if not moved:
        if conn.execute("SELECT EXISTS(SELECT 1 FROM tasks WHERE id=?)", (task_id,)).fetchone()[0]:
            raise StaleBatch(task_id, cursor)
        return None  # the task is gone: nothing to count its numbers in
    first_id = None
    numbers_by_id = {row[3]: row[1] for row in rows}  # every row has this task and its parts
    if len(numbers_by_id) == len(rows):
        (top,) = conn.execute("SELECT MAX(id) FROM messages").fetchone()
        # one JSON object, platform id → number: json_each hands out each key and value as it
        # parsed them, where an array of rows is parsed again for every ->> (1.7 against 2.6 µs
        # per row, measured on 200,000 rows)
        last = conn.execute(
            "INSERT INTO messages(task_id, number, parts, result, platform_id, submitted_at)"
            " SELECT ?, value, ?, 0, key, ? FROM json_each(?)",
            (task_id, parts, now, bulk.encode(numbers_by_id)),
        ).lastrowid
        # SQLite gives each new row the table's largest id plus one, so one INSERT's rows are
        # numbered in the order json_each walks the object (the order of ``rows``); checked here
        # rather than assumed
        if rows and last == (top or 0) + len(rows):
            first_id = last - len(rows) + 1
    else:  # a platform answered two numbers with one id: still one row each
        conn.execute(
            "INSERT INTO messages(task_id, number, parts, result, platform_id, submitted_at)"
            " SELECT value->>0, value->>1, value->>2, 0, value->>3, ? FROM json_each(?)",
            (now, bulk.encode(rows)),
        )
    # receipts that overtook this acknowledgement were kept aside as unmatched; one probe of the
    # partial index first, since usually nothing is waiting at all
    if not rows or not conn.execute("SELECT EXISTS(SELECT 1 FROM unmatched_receipts WHERE matched=0)").fetchone()[0]:
        return first_id
    # a receipt posted with a workspace's token matches only that workspace's numbers
    early = conn.execute(
        "SELECT id, platform_id, part, status, code, message, at FROM unmatched_receipts"
        " WHERE matched=0 AND platform=? AND platform_id IN (SELECT value FROM json_each(?))"
        " AND (workspace_id IS NULL OR workspace_id = (SELECT workspace_id FROM tasks WHERE id=?)) ORDER BY id",
        (platform_name, json.dumps([r[3] for r in rows]), task_id),
    ).fetchall()
    if early:
        items = [(platform_name, Receipt(platform_id=e[1], part=e[2], status=e[3], code=e[4], message=e[5], at=e[6])) for e in early]
        apply_receipts(conn, items, timeout)
        conn.executemany("UPDATE unmatched_receipts SET matched=1 WHERE id=?", [(e[0],) for e in early])
        return None  # some rows are no longer as inserted
    return first_id
