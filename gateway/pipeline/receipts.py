"""The receipt sink: the one writer path for message results and their task's counters.

Receipts from every platform queue in memory and are flushed together (group commit: up to
``receipt_flush_max`` at once, at once when the writer is free and a batch is waiting, after a
few milliseconds when only a few single receipts arrived) in one transaction: the messages they
name taken from those just recorded (``fresh.py``) or read in one SELECT, the results folded in
Python, an UPDATE per kind of change, one counter UPDATE per task. ``deliver`` returns only when
the transaction holding its receipts has committed (group commit), so a webhook acknowledged to
a platform is never lost. Counters change in the same transaction as the rows they count, which
is what keeps ``sent = succeeded + failed + pending`` true at every commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import defaultdict, deque
from itertools import repeat
from typing import Any, Awaitable, Callable, Iterable

import msgspec

from gateway.domain import results as R
from gateway.platform import Receipt
from gateway.storage.sqlite import bulk

from .fresh import FreshMessages

log = logging.getLogger(__name__)


class _Message(msgspec.Struct, array_like=True, gc=False):
    """A message row as read for folding, decoded straight from the SELECT's JSON array (a
    struct built in C: thousands per flush). ``key`` is the place of its platform id in the
    list the SELECT was given. A message no receipt has reached yet (pending, one part, nothing
    delivered, failed or late: nearly every row a flush reads) comes as its first four values
    only, the rest taking these defaults, with ``fresh`` set; ``fresh`` is cleared as soon as
    the fold changes it. ``receipt_at`` is not read: it only ever goes from NULL to the time the
    number became final, which the fold sets (``None``: unchanged).

    ``submitted_at`` is read as SQLite renders a REAL in JSON, to 15 significant digits (the
    exact rendering costs a third of the SELECT); the fold asks for the exact value only when a
    receipt's time is within that rounding of the deadline (``_Deadlines``)."""

    key: int
    id: int
    task_id: int
    submitted_at: float
    parts: int = 1
    result: int = 0
    delivered: int = 0
    failed: int = 0
    reasons: str | None = None
    late: int = 0
    fresh: bool = True
    receipt_at: float | None = None
    dirty: bool = False


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

    def final_at(self, task_id: int, at: float) -> None:
        last = self.last_final.get(task_id)
        if last is None or at > last:
            self.last_final[task_id] = at

    @property
    def tasks(self) -> set[int]:
        return set(self.succeeded) | set(self.failed) | set(self.late) | set(self.duplicate)


# The join walks the given ids in order and finds each through ``messages_platform_id``; a
# row carries its id's place (``j.key``) rather than the id's text.
_SELECT_MESSAGES = (
    "SELECT json_group_array(CASE WHEN m.parts=1 AND m.result=0 AND m.delivered_mask=0 AND m.failed_mask=0 AND m.late=0"
    " THEN json_array(j.key, m.id, m.task_id, m.submitted_at)"
    " ELSE json_array(j.key, m.id, m.task_id, m.submitted_at, m.parts, m.result, m.delivered_mask, m.failed_mask,"
    " m.reasons, m.late, json('false')) END)"
    " FROM json_each(?) AS j JOIN messages AS m ON m.platform_id = j.value"
)
_decode_messages = msgspec.json.Decoder(list[_Message]).decode

# One statement per kind of change (result, masks, reasons, late), the rows given as one JSON
# object from message id to receipt time. ``json_each`` parses an object once and hands out each
# member's key and value as they are; an array of arrays would be parsed again for every ``->>``
# (measured on 200,000 rows: 2.0 µs per row against 3.0).
_UPDATE_KIND_SETTING_RECEIPT_AT = (
    "UPDATE messages SET result=?, delivered_mask=?, failed_mask=?, reasons=?, late=?, receipt_at={}"
    " FROM json_each(?) AS u WHERE messages.id = CAST(u.key AS INTEGER)"
)
_UPDATE_KIND = _UPDATE_KIND_SETTING_RECEIPT_AT.format("u.value")
_UPDATE_KIND_KEEP = _UPDATE_KIND_SETTING_RECEIPT_AT.format("COALESCE(u.value, messages.receipt_at)")
_UPDATE_ROWS = (
    "UPDATE messages SET result=u.value->>1, receipt_at=COALESCE(u.value->>2, messages.receipt_at),"
    " delivered_mask=u.value->>3, failed_mask=u.value->>4, reasons=u.value->>5, late=u.value->>6"
    " FROM json_each(?) AS u WHERE messages.id = u.value->>0"
)
_KINDS_MAX = 8  # beyond this many kinds of change in one flush, rows go through the general form


# How far a deadline worked out from a 15-digit ``submitted_at`` may be from the exact one, per
# unit of |deadline| + |submitted_at|; written out inline in the fold's hot path
_ROUNDING = 1e-13


class _Deadlines:
    """A message's receipt deadline, exact. The SELECT's ``submitted_at`` may be off in its 16th
    significant digit, so a receipt within ``_ROUNDING`` (relative) of the deadline it gives is judged
    against the exact time, read from the row (rare: a receipt timed to the deadline itself)."""

    __slots__ = ("conn", "timeout")

    def __init__(self, conn: sqlite3.Connection, timeout: float):
        self.conn = conn
        self.timeout = timeout

    def is_late(self, msg: _Message, at: float) -> bool:
        deadline = msg.submitted_at + self.timeout
        margin = _ROUNDING * (abs(deadline) + abs(msg.submitted_at))
        if at > deadline + margin:
            return True
        if at < deadline - margin:
            return False
        return at > self.exact(msg)

    def exact(self, msg: _Message) -> float:
        """The deadline to the last bit, as the time a late number failed at."""
        (msg.submitted_at,) = self.conn.execute("SELECT submitted_at FROM messages WHERE id=?", (msg.id,)).fetchone()
        return msg.submitted_at + self.timeout


def apply_receipts(conn: sqlite3.Connection, items: list[tuple[str, Receipt]], timeout: float,
                   fresh: FreshMessages | None = None, workspace: int | None = None) -> Tally:
    """Fold receipts into message rows and task counters inside the caller's transaction.

    Runs on the database thread (see ``Database.write``): the messages just recorded come from
    ``fresh``, the others from one SELECT for the whole batch; the folding in Python, an UPDATE
    per kind of change, one counter UPDATE per task.

    ``workspace`` scopes the receipts to the messages of that workspace's tasks (receipts posted
    with a workspace's token: platform ids such as ``sim-{task}-{seq}`` can be guessed, and a
    token must not reach another workspace's numbers); a message of another workspace is as
    unknown as one that does not exist. Scoped receipts never come with ``fresh``."""
    assert workspace is None or fresh is None
    tally = Tally()
    messages: dict[str, _Message] = {}
    others: dict[str, list[_Message]] = {}  # the same platform id on a message of another platform
    delivered: dict[int, float] = {}  # message id → receipt time: fresh messages the usual receipt delivered
    rest: Iterable[tuple[int, tuple[str, Receipt]]]
    if fresh:
        rest, owner, also = _take_fresh(items, fresh, timeout, tally, messages, others, delivered)
        if also:
            ids = list(dict.fromkeys([r.platform_id for _, (p, r) in rest
                                      if owner.get(r.platform_id) != p and (p, r.platform_id) not in also]))
        else:
            ids = list(dict.fromkeys([r.platform_id for _, (p, r) in rest if owner.get(r.platform_id) != p]))
    else:
        rest = enumerate(items)
        ids = list(dict.fromkeys([r.platform_id for _, r in items]))
    if ids:
        taken = ({*delivered, *(m.id for m in messages.values()), *(m.id for ms in others.values() for m in ms)}
                 if fresh else ())
        for msg in bulk.fetch(conn, _SELECT_MESSAGES, (bulk.encode(ids),), _decode_messages):
            if msg.id in taken:  # here from ``fresh`` already (a receipt of another platform names its id too)
                continue
            pid = ids[msg.key]
            if pid in messages:
                others.setdefault(pid, []).append(msg)
            else:
                messages[pid] = msg
    task_platforms: dict[int, str] = {}
    if messages:
        task_ids = list({m.task_id for m in messages.values()} | {m.task_id for ms in others.values() for m in ms})
        if workspace is None:
            task_platforms = dict(conn.execute(
                "SELECT id, platform FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (bulk.encode(task_ids),)).fetchall())
        else:  # another workspace's message gets no platform, so no receipt matches it
            task_platforms = dict(conn.execute(
                "SELECT id, platform FROM tasks WHERE id IN (SELECT value FROM json_each(?)) AND workspace_id=?",
                (bulk.encode(task_ids), workspace)).fetchall())

    deadlines = _Deadlines(conn, timeout)
    succeeded = tally.succeeded
    last_final = tally.last_final
    applied = 0
    for index, (platform, receipt) in rest:
        msg = messages.get(receipt.platform_id)
        if msg is not None and task_platforms.get(msg.task_id) != platform:
            msg = next((m for m in others.get(receipt.platform_id, ()) if task_platforms.get(m.task_id) == platform), None)
        if msg is None:
            tally.unmatched.append((platform, receipt))
            tally.unmatched_at.append(index)
            tally.unmatched_ws.append(workspace)
            continue
        if msg.fresh and receipt.status == "delivered" and not receipt.part:
            at = receipt.at
            sub = msg.submitted_at
            deadline = sub + timeout
            if at < deadline - _ROUNDING * (abs(deadline) + abs(sub)) or not deadlines.is_late(msg, at):
                # the usual receipt: the whole of a one-part message delivered in time (``_fold`` in short)
                msg.fresh = False
                msg.delivered = 1
                msg.result = R.SUCCEEDED
                msg.receipt_at = at
                msg.dirty = True
                applied += 1
                task = msg.task_id
                succeeded[task] += 1
                last = last_final.get(task)
                if last is None or at > last:
                    last_final[task] = at
                continue
        _fold(msg, receipt, deadlines, tally)
    tally.applied += applied

    # rows as they changed, in a statement per kind of change (result, masks, reasons, late:
    # a number delivered, or failed with a given reason), or past a handful of kinds in the
    # general form
    kinds: dict[tuple, dict[int, float | None]] = defaultdict(dict)  # kind → message id → receipt time
    if delivered:
        kinds[_DELIVERED_WHOLE] = delivered
    for m in messages.values() if not others else [*messages.values(), *(m for ms in others.values() for m in ms)]:
        if m.dirty:
            kinds[(m.result, m.delivered, m.failed, m.reasons, m.late)][m.id] = m.receipt_at
    if len(kinds) <= _KINDS_MAX:
        for (result, delivered_mask, failed_mask, reasons, late), times in kinds.items():
            # a receipt time of None leaves the stored one as it is (the number was final before)
            sql = _UPDATE_KIND_KEEP if None in times.values() else _UPDATE_KIND
            conn.execute(sql, (result, delivered_mask, failed_mask, reasons, late, bulk.encode(times)))
    else:
        rows = [(mid, kind[0], at, *kind[1:]) for kind, times in kinds.items() for mid, at in times.items()]
        conn.execute(_UPDATE_ROWS, (bulk.encode(rows),))
    for task_id in tally.tasks:
        conn.execute(
            "UPDATE tasks SET succeeded=succeeded+?, failed=failed+?, late_receipts=late_receipts+?,"
            " duplicate_receipts=duplicate_receipts+?, last_result_at=MAX(COALESCE(last_result_at, ?), ?) WHERE id=?",
            (tally.succeeded.get(task_id, 0), tally.failed.get(task_id, 0), tally.late.get(task_id, 0),
             tally.duplicate.get(task_id, 0), tally.last_final.get(task_id), tally.last_final.get(task_id), task_id),
        )
    return tally


_DELIVERED_WHOLE = (R.SUCCEEDED, 1, 0, None, 0)  # the kind of change of a one-part message delivered: result, masks, reasons, late


def _take_fresh(items: list[tuple[str, Receipt]], fresh: FreshMessages, timeout: float, tally: Tally,
                messages: dict[str, _Message], others: dict[str, list[_Message]], delivered: dict[int, float]):
    """The receipts' messages that ``fresh`` holds, taken from it. The usual receipt (the whole
    of a one-part message delivered in time, the first to name it in this flush) is applied
    here, without a ``_Message``: its message id and time go to ``delivered``, its count to the
    tally. Any other receipt of a fresh message finds the message in ``messages`` (or
    ``others``) at its fresh state, or at the state the usual receipt left it in.

    Returns the receipts still to fold, with their places in ``items``; per platform id, the
    platform whose fresh message it named first; and any (platform, id) of another platform's
    fresh message naming the same id (rare)."""
    by_platform = fresh.rows  # popped directly, not through a method: a call per receipt costs a tenth of this loop
    usual: dict[str, tuple[int, int, float, float]] = {}  # platform id → (message id, task, submitted_at, at)
    owner: dict[str, str] = {}
    also: set[tuple[str, str]] = set()
    rest: list[tuple[int, tuple[str, Receipt]]] = []
    succeeded = tally.succeeded
    last_final = tally.last_final
    for index, pair in enumerate(items):
        platform, receipt = pair
        pid = receipt.platform_id
        first = owner.get(pid)
        if first is None:
            rows = by_platform.get(platform)
            row = rows.pop(pid, None) if rows else None
            if row is None:
                rest.append((index, pair))
                continue
            owner[pid] = platform
            mid, task, sub, parts = row
            at = receipt.at
            deadline = sub + timeout
            if (parts == 1 and not receipt.part and receipt.status == "delivered"
                    and at < deadline - _ROUNDING * (abs(deadline) + abs(sub))):
                usual[pid] = (mid, task, sub, at)
                delivered[mid] = at
                succeeded[task] += 1
                last = last_final.get(task)
                if last is None or at > last:
                    last_final[task] = at
                continue
            messages[pid] = _Message(-1, mid, task, sub, parts, fresh=parts == 1)
        elif first == platform:
            done = usual.pop(pid, None)
            if done is not None:  # named again: from here on folded, from the state the first one left
                mid, task, sub, at = done
                del delivered[mid]
                messages[pid] = _Message(-1, mid, task, sub, 1, R.SUCCEEDED, 1, fresh=False, receipt_at=at, dirty=True)
                tally.applied += 1
        elif (platform, pid) not in also:
            rows = by_platform.get(platform)
            row = rows.pop(pid, None) if rows else None
            if row is not None:
                also.add((platform, pid))
                others.setdefault(pid, []).append(_Message(-1, *row, fresh=row[3] == 1))
        rest.append((index, pair))
    tally.applied += len(usual)
    return rest, owner, also


def _commit_receipts(conn: sqlite3.Connection, items: list[tuple[str, Receipt]], timeout: float, now: float,
                     expected: dict[str, set[str]] | None = None, fresh: FreshMessages | None = None,
                     scoped: dict[int, list[tuple[str, Receipt]]] | None = None) -> Tally:
    """Apply receipts; those naming no stored message are kept aside as unmatched, except the
    ones naming an id in ``expected`` (its acknowledgement is being recorded): their indexes go
    to ``tally.held`` and nothing is written for them.

    ``scoped`` holds receipts posted with a workspace's token, by workspace; they come after
    ``items`` in the places the tally reports. Their messages are dropped from ``fresh`` first
    (they are read back and changed by the scoped fold, so the memory copy would go stale)."""
    tally = apply_receipts(conn, items, timeout, fresh)
    offset = len(items)
    for workspace, group in (scoped or {}).items():
        if fresh is not None:
            for platform, receipt in group:
                rows = fresh.rows.get(platform)
                if rows:
                    rows.pop(receipt.platform_id, None)
        tally.merge(apply_receipts(conn, group, timeout, workspace=workspace), offset)
        offset += len(group)
    if tally.unmatched and expected:
        kept, kept_at, kept_ws = [], [], []
        for (platform, receipt), index, ws in zip(tally.unmatched, tally.unmatched_at, tally.unmatched_ws):
            if receipt.platform_id in expected.get(platform, ()):
                tally.held.append(index)
            else:
                kept.append((platform, receipt))
                kept_at.append(index)
                kept_ws.append(ws)
        tally.unmatched, tally.unmatched_at, tally.unmatched_ws = kept, kept_at, kept_ws
    if tally.unmatched:
        conn.executemany(
            "INSERT INTO unmatched_receipts(platform, platform_id, part, status, code, message, at, received_at, workspace_id)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [(p, r.platform_id, r.part, r.status, r.code, r.message, r.at, now, ws)
             for (p, r), ws in zip(tally.unmatched, tally.unmatched_ws)],
        )
    return tally


def _add_reason(msg: _Message, code: str, text: str, part: int | None = None) -> None:
    """Reasons are kept per receipt, with the part a receipt names (a failed four-part message may
    show four reasons, and the console says which part each came from)."""
    reasons = bulk.decode(msg.reasons) if msg.reasons else []
    reasons.append([code, text] if part is None else [code, text, part])
    msg.reasons = bulk.encode(reasons).decode()


def _fold(msg: _Message, receipt: Receipt, deadlines: _Deadlines, tally: Tally) -> None:
    task = msg.task_id
    msg.fresh = False  # whatever happens next, later receipts for it take this path too
    if msg.result == R.PENDING and deadlines.is_late(msg, receipt.at):
        deadline = deadlines.exact(msg)
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
        _add_reason(msg, receipt.code or "UNKNOWN", receipt.message or "", receipt.part)
    msg.dirty = True
    tally.applied += 1
    if before == R.PENDING:
        after = R.result_of(msg.parts, delivered, failed)
        if after != R.PENDING:
            msg.result = after
            msg.receipt_at = receipt.at
            tally.final_at(task, receipt.at)
            (tally.succeeded if after == R.SUCCEEDED else tally.failed)[task] += 1


class _Delivery:
    """One ``deliver`` call: answered once each of its receipts is committed, applied or kept
    aside as unmatched."""

    __slots__ = ("fut", "pending")

    def __init__(self, fut: asyncio.Future, pending: int):
        self.fut = fut
        self.pending = pending


class ReceiptSink:
    """Group commit of receipts, with a waiting room for receipts that overtake their message.

    A platform may report a receipt before the gateway has recorded the acknowledgement of its
    submission: the dispatcher submits a batch, and the carrier's receipts can arrive while the
    batch's message rows are still being written. The dispatcher tells the sink which platform
    ids it is about to record (``expect``) and when they are recorded (``recorded``). A receipt
    that names no stored message but an expected id waits in memory and is applied by the next
    flush after its batch is recorded; its ``deliver`` call returns then, so nothing is
    acknowledged before it is durable. Receipts for ids nobody expects are kept aside in
    ``unmatched_receipts`` at once, as before (and the dispatcher still matches those when a
    later acknowledgement names them).

    Receipts posted with a workspace's token (``deliver(..., workspace=)``) are applied only to
    that workspace's messages (see ``apply_receipts``). A flush that fails for any reason but
    the storage itself (a bad receipt from a plugin, say) is retried entry by entry, so one bad
    ``deliver`` call fails alone instead of failing every request that shared its transaction."""

    def __init__(self, database, clock, config, on_committed: Callable[[dict[str, list[Receipt]], Tally], Awaitable[Any]]):
        self.db = database
        self.clock = clock
        self.config = config
        self.on_committed = on_committed
        # entries: (platform, receipts, delivery, workspace or None)
        self._queue: deque[tuple[str, list[Receipt], _Delivery, int | None]] = deque()
        self._queued = 0
        self._retry: list[tuple[str, Receipt, _Delivery, int | None]] = []  # waited, now to be tried again
        self._held: list[tuple[str, Receipt, _Delivery, int | None]] = []  # waiting for their ids to be recorded
        self._expected: dict[str, set[str]] = defaultdict(set)  # per platform: submitted, not yet recorded
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.fresh = FreshMessages()  # filled by the dispatcher's records (see fresh.py)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="receipt-sink")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        deliveries = [entry[2] for entries in (self._queue, self._held, self._retry) for entry in entries]
        for delivery in deliveries:
            if not delivery.fut.done():
                delivery.fut.set_exception(RuntimeError("the service is shutting down"))

    def expect(self, platform: str, platform_ids: list[str]) -> None:
        """The dispatcher is about to record these acknowledged ids."""
        self._expected[platform].update(platform_ids)

    def recorded(self, platform: str, platform_ids: list[str]) -> None:
        """Those ids are recorded (or will not be): receipts waiting for them go again."""
        self._expected[platform].difference_update(platform_ids)
        if self._held:
            self._retry.extend(self._held)
            self._held.clear()
            self._wake.set()

    async def deliver(self, platform: str, receipts: list[Receipt], workspace: int | None = None) -> None:
        """Queue receipts and return once they are committed. ``workspace``: they were posted
        with that workspace's token and may change only its messages."""
        if not receipts:
            return
        delivery = _Delivery(asyncio.get_running_loop().create_future(), len(receipts))
        self._queue.append((platform, receipts, delivery, workspace))
        self._queued += len(receipts)
        self._wake.set()
        await delivery.fut

    async def _run(self) -> None:
        backlog = False  # receipts queued while the last flush was being written
        while True:
            await self._wake.wait()
            if not backlog and self._queued < self.config.receipt_flush_max // 8:
                # idle until now, and only a few receipts (single webhooks): let a burst gather
                # into one transaction. A backlog, or a batch that is big already (a carrier's
                # emission, a batched POST), goes at once: the writer must not sit idle while
                # receipts wait. Measured in round 4 of docs/benchmarks.md: waiting only for
                # small arrivals took the pipeline at 200,000 numbers from 100 k to 111 k numbers/s
                # and ingest from 205 k to 221 k receipts/s.
                await asyncio.sleep(self.config.receipt_flush_interval)
            self._wake.clear()
            # entries of (platform, receipts, delivery, workspace); receipts that waited come back one by one
            entries = [(platform, [receipt], delivery, ws) for platform, receipt, delivery, ws in self._retry]
            self._retry = []
            count = 0
            while self._queue and count < self.config.receipt_flush_max:
                entry = self._queue.popleft()
                entries.append(entry)
                count += len(entry[1])
            self._queued -= count
            if self._queue:
                self._wake.set()
            if not entries:
                backlog = False
                continue
            for group in await self._flush_isolating(entries):
                await self._committed(*group)
            backlog = bool(self._queue or self._retry)

    async def _flush_isolating(self, entries: list) -> list[tuple]:
        """Flush ``entries`` in one transaction; should it fail for a reason other than the
        storage (which would fail each of them alike), flush them one by one, so that only the
        entries that fail alone get the error. Returns what committed, per transaction."""
        try:
            return [(entries, *await self._flush(entries))]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transaction rolled back: nothing half-applied
            if len(entries) == 1 or isinstance(exc, sqlite3.OperationalError):
                log.warning("receipt flush failed: %s", exc, exc_info=not isinstance(exc, sqlite3.OperationalError))
                self._fail(entries, exc)
                return []
            log.warning("a receipt flush of %d entries failed (%s); flushing them one by one", len(entries), exc)
        done = []
        for entry in entries:
            try:
                done.append(([entry], *await self._flush([entry])))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("receipts from %s were refused", entry[0])
                self._fail([entry], exc)
        return done

    @staticmethod
    def _fail(entries: list, exc: Exception) -> None:
        for entry in entries:
            if not entry[2].fut.done():
                entry[2].fut.set_exception(exc)

    async def _committed(self, entries: list, by_platform, tally: Tally, held: list) -> None:
        self._held.extend(held)
        for _, receipts, delivery, _ws in entries:
            delivery.pending -= len(receipts)
        for _, _, delivery, _ws in held:  # still to be committed
            delivery.pending += 1
        for _, _, delivery, _ws in entries:  # committed: acknowledge before observers run
            if delivery.pending == 0 and not delivery.fut.done():
                delivery.fut.set_result(None)
        try:
            await self.on_committed(by_platform, tally)
        except asyncio.CancelledError:
            raise
        except Exception:  # the receipts are committed; a failing observer must not stop the sink
            log.exception("after committing receipts")

    async def _flush(self, entries: list[tuple[str, list[Receipt], _Delivery, int | None]]):
        pairs: list[tuple[str, Receipt]] = []
        scoped: dict[int, list[tuple[str, Receipt]]] = {}
        for platform, receipts, _, ws in entries:
            (pairs if ws is None else scoped.setdefault(ws, [])).extend(zip(repeat(platform), receipts))
        now = self.clock.now()
        tally = await self.db.write(_commit_receipts, pairs, self.config.receipt_timeout, now, self._expected, self.fresh,
                                    scoped or None)
        by_platform: dict[str, list[Receipt]] = defaultdict(list)
        held: list[tuple[str, Receipt, _Delivery, int | None]] = []
        if not tally.held:  # the usual case: every receipt committed
            for platform, receipts, _, _ws in entries:
                by_platform[platform].extend(receipts)
        else:
            # the places the tally reports: unscoped receipts first, then each workspace's
            flat = [(p, r, d, ws) for p, rs, d, ws in entries if ws is None for r in rs]
            for ws in scoped:
                flat += [(p, r, d, w) for p, rs, d, w in entries if w == ws for r in rs]
            waiting = set(tally.held)
            for i, (platform, receipt, delivery, ws) in enumerate(flat):
                if i in waiting:
                    held.append((platform, receipt, delivery, ws))
                else:
                    by_platform[platform].append(receipt)
        tally.lags = [now - r.at for receipts in by_platform.values() for r in receipts]
        return by_platform, tally, held
