"""The receipt sink: the one writer path for message results and their task's counters.

Receipts from every platform queue in memory and are flushed together, by size or after a few
milliseconds, in one transaction: one SELECT of the messages they name, the results folded in
Python, one executemany UPDATE, one counter UPDATE per task. ``deliver`` returns only when the
transaction holding its receipts has committed (group commit), so a webhook acknowledged to a
platform is never lost. Counters change in the same transaction as the rows they count, which
is what keeps ``sent = succeeded + failed + pending`` true at every commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import defaultdict, deque
from typing import Any, Awaitable, Callable

from gateway.domain import results as R
from gateway.platform import Receipt

log = logging.getLogger(__name__)


class _Message:
    __slots__ = ("id", "task_id", "parts", "result", "submitted_at", "receipt_at", "delivered", "failed", "reasons", "late", "dirty")

    def __init__(self, row: tuple):
        (self.id, self.task_id, self.parts, self.result, self.submitted_at, self.receipt_at,
         self.delivered, self.failed, reasons, self.late) = row
        self.reasons = reasons
        self.dirty = False


class Tally:
    """What one application of receipts did, per task, for counters and metrics."""

    def __init__(self) -> None:
        self.succeeded: dict[int, int] = defaultdict(int)
        self.failed: dict[int, int] = defaultdict(int)
        self.late: dict[int, int] = defaultdict(int)
        self.duplicate: dict[int, int] = defaultdict(int)
        self.unmatched: list[tuple[str, Receipt]] = []
        self.last_final: dict[int, float] = {}  # per task: the latest time a number became final
        self.applied = 0
        self.lags: list[float] = []

    def final_at(self, task_id: int, at: float) -> None:
        if at > self.last_final.get(task_id, float("-inf")):
            self.last_final[task_id] = at

    @property
    def tasks(self) -> set[int]:
        return set(self.succeeded) | set(self.failed) | set(self.late) | set(self.duplicate)


def apply_receipts(conn: sqlite3.Connection, items: list[tuple[str, Receipt]], timeout: float) -> Tally:
    """Fold receipts into message rows and task counters inside the caller's transaction.

    Runs on the database thread (see ``Database.write``): one SELECT for the whole batch, the
    folding in Python, one executemany UPDATE, one counter UPDATE per task."""
    tally = Tally()
    ids = list({r.platform_id for _, r in items})
    messages: dict[str, _Message] = {}
    if ids:
        rows = conn.execute(
            "SELECT id, task_id, parts, result, submitted_at, receipt_at, delivered_mask, failed_mask, reasons, late, platform_id"
            " FROM messages WHERE platform_id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        ).fetchall()
        for row in rows:
            messages[row[10]] = _Message(row[:10])
    task_platforms: dict[int, str] = {}
    if messages:
        task_ids = list({m.task_id for m in messages.values()})
        task_platforms = dict(
            conn.execute("SELECT id, platform FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(task_ids),)).fetchall()
        )

    for platform, receipt in items:
        msg = messages.get(receipt.platform_id)
        if msg is None or task_platforms.get(msg.task_id) != platform:
            tally.unmatched.append((platform, receipt))
            continue
        _fold(msg, receipt, timeout, tally)

    dirty = [m for m in messages.values() if m.dirty]
    if dirty:
        conn.executemany(
            "UPDATE messages SET result=?, receipt_at=?, delivered_mask=?, failed_mask=?, reasons=?, late=? WHERE id=?",
            [(m.result, m.receipt_at, m.delivered, m.failed, m.reasons, m.late, m.id) for m in dirty],
        )
    for task_id in tally.tasks:
        conn.execute(
            "UPDATE tasks SET succeeded=succeeded+?, failed=failed+?, late_receipts=late_receipts+?,"
            " duplicate_receipts=duplicate_receipts+?, last_result_at=MAX(COALESCE(last_result_at, ?), ?) WHERE id=?",
            (tally.succeeded.get(task_id, 0), tally.failed.get(task_id, 0), tally.late.get(task_id, 0),
             tally.duplicate.get(task_id, 0), tally.last_final.get(task_id), tally.last_final.get(task_id), task_id),
        )
    return tally


def _commit_receipts(conn: sqlite3.Connection, items: list[tuple[str, Receipt]], timeout: float, now: float) -> Tally:
    tally = apply_receipts(conn, items, timeout)
    if tally.unmatched:
        conn.executemany(
            "INSERT INTO unmatched_receipts(platform, platform_id, part, status, code, message, at, received_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [(p, r.platform_id, r.part, r.status, r.code, r.message, r.at, now) for p, r in tally.unmatched],
        )
    return tally


def _add_reason(msg: _Message, code: str, text: str) -> None:
    reasons = json.loads(msg.reasons) if msg.reasons else []
    reasons.append([code, text])
    msg.reasons = json.dumps(reasons, ensure_ascii=False)


def _fold(msg: _Message, receipt: Receipt, timeout: float, tally: Tally) -> None:
    task = msg.task_id
    deadline = msg.submitted_at + timeout
    if msg.result == R.PENDING and receipt.at > deadline:
        # the receipt came after the timeout: the number failed at its deadline, this one is late
        msg.result = R.FAILED
        msg.late = 1
        msg.receipt_at = None
        _add_reason(msg, R.RECEIPT_TIMEOUT, R.RECEIPT_TIMEOUT_TEXT)
        msg.dirty = True
        tally.failed[task] += 1
        tally.late[task] += 1
        tally.final_at(task, deadline)
        return
    if msg.late:
        tally.late[task] += 1
        return
    before = msg.result
    delivered, failed, what = R.apply_part(msg.parts, msg.delivered, msg.failed, receipt.part, receipt.status == "delivered")
    if what == R.DUPLICATE:
        tally.duplicate[task] += 1
        return
    msg.delivered, msg.failed = delivered, failed
    if receipt.status == "failed":
        _add_reason(msg, receipt.code or "UNKNOWN", receipt.message or "")
    msg.dirty = True
    tally.applied += 1
    if before == R.PENDING:
        after = R.result_of(msg.parts, delivered, failed)
        if after != R.PENDING:
            msg.result = after
            msg.receipt_at = receipt.at
            tally.final_at(task, receipt.at)
            (tally.succeeded if after == R.SUCCEEDED else tally.failed)[task] += 1


class ReceiptSink:
    def __init__(self, database, clock, config, on_committed: Callable[[dict[str, list[Receipt]], Tally], Awaitable[Any]]):
        self.db = database
        self.clock = clock
        self.config = config
        self.on_committed = on_committed
        self._queue: deque[tuple[str, list[Receipt], asyncio.Future]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="receipt-sink")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for _, _, fut in self._queue:
            if not fut.done():
                fut.set_exception(RuntimeError("the service is shutting down"))

    async def deliver(self, platform: str, receipts: list[Receipt]) -> None:
        """Queue receipts and return once they are committed."""
        if not receipts:
            return
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((platform, receipts, fut))
        self._queued += len(receipts)
        self._wake.set()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._queued < self.config.receipt_flush_max:
                await asyncio.sleep(self.config.receipt_flush_interval)
            self._wake.clear()
            batch, count = [], 0
            while self._queue and count < self.config.receipt_flush_max:
                entry = self._queue.popleft()
                batch.append(entry)
                count += len(entry[1])
            self._queued -= count
            if self._queue:
                self._wake.set()
            if not batch:
                continue
            try:
                by_platform, tally = await self._flush(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the transaction rolled back: nothing half-applied
                log.exception("receipt flush failed")
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, _, fut in batch:  # committed: acknowledge before observers run
                if not fut.done():
                    fut.set_result(None)
            await self.on_committed(by_platform, tally)

    async def _flush(self, batch):
        items = [(platform, r) for platform, receipts, _ in batch for r in receipts]
        now = self.clock.now()
        tally = await self.db.write(_commit_receipts, items, self.config.receipt_timeout, now)
        by_platform: dict[str, list[Receipt]] = defaultdict(list)
        for platform, receipt in items:
            by_platform[platform].append(receipt)
        tally.lags = [now - r.at for _, r in items]
        return by_platform, tally
