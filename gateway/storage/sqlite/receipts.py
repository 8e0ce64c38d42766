"""The receipt fold on SQLite: receipts applied to message rows and task counters in the
caller's transaction, on the writer's thread (``Database.write``).

The messages a flush names come from the fresh-message cache (``gateway/storage/fresh.py``) or
from one SELECT for the whole batch; each receipt is folded in Python by
``gateway.domain.receipt_fold`` (the usual one, a one-part message delivered in time, in line);
then an UPDATE per kind of change and one counter UPDATE per task.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Iterable

import msgspec

from gateway.domain import receipt_fold as F
from gateway.domain import results as R
from gateway.platform import Receipt

from ..fresh import FreshMessages
from ..messages import Tally
from . import bulk


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


class _Deadlines:
    """Judges a receipt's time with ``receipt_fold.is_late``, exactly. The SELECT's
    ``submitted_at`` may be off in its 16th significant digit, so a receipt that is neither
    clearly in time nor clearly late by it (rare: a receipt timed to the deadline itself) is
    judged against the exact time, read from the row. ``in_time_before`` keeps the fast path's
    bound per submission time (a batch's numbers share one): a receipt in time costs a look-up."""

    __slots__ = ("conn", "timeout", "in_time_before")

    def __init__(self, conn: sqlite3.Connection, timeout: float):
        self.conn = conn
        self.timeout = timeout
        self.in_time_before: dict[float, float] = {}

    def bound(self, submitted_at: float) -> float:
        bound = self.in_time_before.get(submitted_at)
        if bound is None:
            bound = self.in_time_before[submitted_at] = F.in_time_before(submitted_at, self.timeout)
        return bound

    def settle(self, msg: _Message, at: float) -> None:
        """Make ``msg.submitted_at`` exact if ``at`` is near enough its deadline to matter."""
        if at >= self.bound(msg.submitted_at) and not F.clearly_late(msg.submitted_at, at, self.timeout):
            self.exact(msg)

    def is_late(self, msg: _Message, at: float) -> bool:
        self.settle(msg, at)
        return F.is_late(msg.submitted_at, at, self.timeout)

    def exact(self, msg: _Message) -> float:
        """The deadline to the last bit, as the time a late number failed at."""
        (msg.submitted_at,) = self.conn.execute("SELECT submitted_at FROM messages WHERE id=?", (msg.id,)).fetchone()
        return F.receipt_deadline(msg.submitted_at, self.timeout)


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
    if messages or others:
        task_ids = list({m.task_id for m in messages.values()} | {m.task_id for ms in others.values() for m in ms})
        if workspace is None:
            task_platforms = dict(conn.execute(
                "SELECT id, platform FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (bulk.encode(task_ids),)).fetchall())
        else:  # another workspace's message gets no platform, so no receipt matches it
            task_platforms = dict(conn.execute(
                "SELECT id, platform FROM tasks WHERE id IN (SELECT value FROM json_each(?)) AND workspace_id=?",
                (bulk.encode(task_ids), workspace)).fetchall())

    deadlines = _Deadlines(conn, timeout)
    in_time_before = deadlines.in_time_before
    succeeded = tally.succeeded
    last_final = tally.last_final
    applied = 0
    for index, (platform, receipt) in rest:
        msg = messages.get(receipt.platform_id)
        if msg is None or task_platforms.get(msg.task_id) != platform:
            # the id names another platform's message, or none that needed an object: the first
            # receipt naming a fresh message is applied without one (``_take_fresh``), so this
            # platform's message with the same id may be in ``others`` alone
            alike = others.get(receipt.platform_id)
            msg = next((m for m in alike if task_platforms.get(m.task_id) == platform), None) if alike else None
        if msg is None:
            tally.unmatched.append((platform, receipt))
            tally.unmatched_at.append(index)
            tally.unmatched_ws.append(workspace)
            continue
        if msg.fresh and receipt.status == "delivered" and not receipt.part:
            at = receipt.at
            sub = msg.submitted_at
            bound = in_time_before.get(sub)
            if bound is None:
                bound = in_time_before[sub] = F.in_time_before(sub, timeout)
            if at < bound or not deadlines.is_late(msg, at):
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
    # a task that only had duplicate or late receipts has no new result time: its stored one
    # stays (SQLite's MAX of a NULL is NULL)
    for task_id in tally.tasks:
        conn.execute(
            "UPDATE tasks SET succeeded=succeeded+?, failed=failed+?, late_receipts=late_receipts+?,"
            " duplicate_receipts=duplicate_receipts+?, last_result_at=MAX(COALESCE(last_result_at, ?), COALESCE(?, last_result_at)) WHERE id=?",
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
    in_time_before: dict[float, float] = {}  # per submission time (a batch's numbers share one)
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
            bound = in_time_before.get(sub)
            if bound is None:
                bound = in_time_before[sub] = F.in_time_before(sub, timeout)
            if parts == 1 and not receipt.part and receipt.status == "delivered" and at < bound:
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


def commit_receipts(conn: sqlite3.Connection, items: list[tuple[str, Receipt]], timeout: float, now: float,
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
        tally.hold_expected(expected)
    if tally.unmatched:
        conn.executemany(
            "INSERT INTO unmatched_receipts(platform, platform_id, part, status, code, message, at, received_at, workspace_id)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [(p, r.platform_id, r.part, r.status, r.code, r.message, r.at, now, ws)
             for (p, r), ws in zip(tally.unmatched, tally.unmatched_ws)],
        )
    return tally


def _fold(msg: _Message, receipt: Receipt, deadlines: _Deadlines, tally: Tally) -> None:
    """``receipt_fold.fold`` on a row read for folding, counted by ``Tally.count``; a number that
    timed out gets its deadline to the last bit (``deadlines.exact``)."""
    msg.fresh = False  # whatever happens next, later receipts for it take this path too
    if msg.result == R.PENDING:
        deadlines.settle(msg, receipt.at)
    outcome = F.fold(
        msg.submitted_at, msg.parts, msg.result, msg.delivered, msg.failed, msg.late, msg.reasons,
        receipt.status, receipt.part, receipt.code, receipt.message, receipt.at, deadlines.timeout)
    tally.count(msg, outcome, deadlines.exact(msg) if outcome[0] == F.TIMED_OUT else None)
