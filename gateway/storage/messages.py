"""The message area: the pipeline's hot path (dispatch records, receipts, the timeout sweep and the
purge) as coarse operations, each one transaction and one hop to the database.

Every operation that changes message rows takes the fresh-message cache (``fresh.py``) that the
one writer path for results (``gateway.pipeline.results.MessageResults``) owns: the store keeps it
true inside its own transactions, so no caller has to remember to invalidate it. A backend that
has no use for the cache may ignore it (an entry missing is never wrong, only slower), and one
whose rows other processes change too (several instances on one database) must.

The rules the rows follow (the receipt fold, the deadline) are ``gateway.domain.receipt_fold``;
a store applies them, it does not decide them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Protocol

import msgspec

from gateway.domain import receipt_fold as F
from gateway.domain import results as R
from gateway.platform import Receipt

from .fresh import FreshMessages


class Tally:
    """What one application of receipts did, per task, for counters and metrics."""

    def __init__(self) -> None:
        self.succeeded: dict[int, int] = defaultdict(int)
        self.failed: dict[int, int] = defaultdict(int)
        self.late: dict[int, int] = defaultdict(int)
        self.duplicate: dict[int, int] = defaultdict(int)
        self.unmatched: list[tuple[str, Receipt]] = []
        self.unmatched_at: list[int] = []  # their places in the applied list
        self.unmatched_ws: list[int | None] = []  # the workspace each was posted by (None: by its platform)
        self.held: list[int] = []  # places of receipts left waiting for their acknowledgement (see ReceiptSink)
        self.last_final: dict[int, float] = {}  # per task: the latest time a number became final
        self.applied = 0
        self.lags: list[float] = []

    def hold_expected(self, expected: dict[str, set[str]]) -> None:
        """Move the unmatched receipts that name an id in ``expected`` (its acknowledgement is
        being recorded right now) to ``held``: they are not kept aside, the sink offers them again
        once the record committed."""
        kept, kept_at, kept_ws = [], [], []
        for (platform, receipt), index, ws in zip(self.unmatched, self.unmatched_at, self.unmatched_ws):
            if receipt.platform_id in expected.get(platform, ()):
                self.held.append(index)
            else:
                kept.append((platform, receipt))
                kept_at.append(index)
                kept_ws.append(ws)
        self.unmatched, self.unmatched_at, self.unmatched_ws = kept, kept_at, kept_ws

    def merge(self, other: "Tally", offset: int) -> None:
        """Add what ``other`` did, whose receipts came ``offset`` places into the applied list."""
        for mine, theirs in ((self.succeeded, other.succeeded), (self.failed, other.failed),
                             (self.late, other.late), (self.duplicate, other.duplicate)):
            for task, n in theirs.items():
                mine[task] += n
        self.unmatched += other.unmatched
        self.unmatched_at += [offset + i for i in other.unmatched_at]
        self.unmatched_ws += other.unmatched_ws
        for task, at in other.last_final.items():
            self.final_at(task, at)
        self.applied += other.applied

    def count(self, msg, outcome: tuple, timed_out_at: float | None = None) -> None:
        """Apply one receipt's ``receipt_fold.fold`` outcome to the message row it folded (an
        object with ``task_id``, ``result``, ``delivered``, ``failed``, ``late``, ``reasons``,
        ``receipt_at`` and ``dirty``) and count it here: the same for every backend, so what a
        fold means for the counters is written once. ``timed_out_at``: the number's deadline as
        the backend stores it to the last bit, when that can differ from the fold's own."""
        did, result, delivered, failed, late, reasons, final_at = outcome
        task = msg.task_id
        if did == F.DUPLICATE:
            self.duplicate[task] += 1
            return
        if did == F.LATE:
            self.late[task] += 1
            return
        msg.result, msg.delivered, msg.failed, msg.late, msg.reasons = result, delivered, failed, late, reasons
        msg.dirty = True
        if did == F.TIMED_OUT:  # the number failed at its deadline, this receipt is late
            msg.receipt_at = None
            self.failed[task] += 1
            self.late[task] += 1
            self.final_at(task, final_at if timed_out_at is None else timed_out_at)
            return
        self.applied += 1
        if final_at is not None:
            msg.receipt_at = final_at
            self.final_at(task, final_at)
            (self.succeeded if result == R.SUCCEEDED else self.failed)[task] += 1

    def final_at(self, task_id: int, at: float) -> None:
        last = self.last_final.get(task_id)
        if last is None or at > last:
            self.last_final[task_id] = at

    @property
    def tasks(self) -> set[int]:
        return set(self.succeeded) | set(self.failed) | set(self.late) | set(self.duplicate)




class Member(msgspec.Struct, array_like=True, gc=False):
    """One audience entry as the dispatcher reads it (a struct built in C: a batch's worth per
    read): ``kind`` 0 is a sendable number, else why not (gateway.pipeline.dispatcher.KIND_NAMES)."""

    seq: int
    e164: str | None  # None for an empty entry
    kind: int


class BatchRecord(NamedTuple):
    """What one dispatch batch leaves behind: its acknowledged numbers as message rows
    ``(task_id, number, parts, platform_id)``, and the task's cursor and counts after it."""

    task_id: int
    platform: str
    parts: int
    rows: list[tuple]
    submitted_at: float
    cursor: int
    accepted: int
    skipped: str  # the JSON object of skip counts
    timeout: float  # the receipt timeout, for receipts that overtook the acknowledgement


class MessageStore(Protocol):
    async def read_members(self, audience_id: int, after_seq: int, limit: int) -> list[Member]:
        """Up to ``limit`` audience entries after ``after_seq``, in ``seq`` order, read without
        waiting for the writer (a snapshot: an audience never changes once stored)."""

    async def record_batch(self, batch: BatchRecord, fresh: FreshMessages | None) -> None:
        """Atomically: the batch's rows become pending messages submitted at
        ``batch.submitted_at`` and count as sent (and their parts as segments), the cursor and
        skip counts move, and receipts kept aside as unmatched that name these ids are applied
        (by the receipt fold) and marked matched. When the rows are recorded as inserted,
        ``fresh`` learns them after the commit. Raises ``StorageUnavailable`` with nothing
        written, and ``StaleBatch`` with nothing written when the task's stored cursor is not
        before ``batch.cursor`` (the batch was recorded already, by another instance that took
        the task over): the guard that keeps a number from being counted twice."""

    async def apply_receipts(self, items: list[tuple[str, Receipt]], timeout: float, now: float,
                             expected: dict[str, set[str]], fresh: FreshMessages | None,
                             scoped: dict[int, list[tuple[str, Receipt]]] | None) -> "Tally":
        """Atomically fold receipts ``(platform, receipt)`` into their messages and their
        tasks' counters (``domain.receipt_fold``), so ``sent = succeeded + failed + pending``
        holds at every commit. Receipts naming no message are kept as unmatched (received at
        ``now``) unless their id is in ``expected`` for their platform (being recorded): those
        are left out and reported in ``Tally.held``. ``scoped`` receipts (by workspace) reach
        only that workspace's messages; their places follow ``items``. Raises
        ``StorageUnavailable`` with nothing written."""

    async def tasks_to_sweep(self, submitted_before: float) -> list[int]:
        """Tasks sending or failed, details kept, with numbers still pending and a dispatch
        started before ``submitted_before`` (so some of them may have timed out)."""

    async def sweep_timeouts(self, task_id: int, submitted_before: float, reasons: str, now: float,
                             fresh: FreshMessages | None) -> int:
        """Atomically fail the task's pending numbers submitted before ``submitted_before``
        (result failed, late, ``reasons``) and add them to its ``failed`` count, with ``now``
        as its latest result time. Returns how many; ``fresh`` forgets its entries."""

    async def tasks_to_purge(self, now: float) -> list[int]:
        """Tasks whose details expired at or before ``now`` and are still kept."""

    async def purge(self, task_id: int, chunk: int, fresh: FreshMessages | None) -> bool:
        """Delete up to ``chunk`` of the task's message rows in one transaction; when none are
        left, mark its details purged. Returns True once the task is purged."""
