"""The receipt fold on PostgreSQL: receipts applied to message rows and task counters inside the
caller's transaction, a constant number of statements per flush whatever its size.

One SELECT over an ``unnest`` array finds the messages a flush names and locks them
(``FOR UPDATE``, in id order, so two flushes that share messages wait for each other instead of
deadlocking); each receipt is folded in Python by ``gateway.domain.receipt_fold.fold`` (the one
place of the rule); one ``UPDATE … FROM unnest`` writes the rows back, one the task counters, one
``INSERT … SELECT FROM unnest`` keeps the unmatched.

No fresh-message cache here: another instance on the same database may have changed a row since
this process recorded it, so every message is read (and locked) in the transaction that folds it.
The row lock is what makes two instances applying the same receipt count it once: the second one
reads the row as the first one committed it, and the fold calls its receipt a duplicate.
"""

from __future__ import annotations


import asyncpg
import msgspec

from gateway.domain import receipt_fold as F
from gateway.domain import results as R
from gateway.platform import Receipt

from ..messages import Tally
from .db import unnest


_encode = msgspec.json.Encoder().encode


class _Message:
    """A message row as locked for folding, changed in place by the receipts of the flush."""

    __slots__ = ("id", "task_id", "platform", "submitted_at", "parts", "result", "delivered", "failed", "reasons",
                 "late", "receipt_at", "dirty")

    def __init__(self, row: asyncpg.Record):
        (_, self.id, self.task_id, self.platform, self.submitted_at, self.parts, self.result, self.delivered,
         self.failed, self.reasons, self.late) = row
        self.receipt_at: float | None = None  # None: the stored one stays
        self.dirty = False


# Every message naming one of the ids, its task's platform beside it (NULL for another
# workspace's task when scoped: no receipt matches it then, as if it did not exist). ``= ANY``
# rather than a join with ``unnest``: the planner then walks ``messages_platform_id`` for the
# ids, where a join's estimate made it hash the whole table.
_SELECT = (
    "SELECT m.platform_id, m.id, m.task_id, t.platform, m.submitted_at, m.parts, m.result, m.delivered_mask,"
    " m.failed_mask, m.reasons, m.late"
    " FROM messages AS m LEFT JOIN tasks AS t ON t.id = m.task_id{}"
    " WHERE m.platform_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
    " ORDER BY m.id FOR UPDATE OF m"
)
_SELECT_ALL = _SELECT.format("")
_SELECT_SCOPED = _SELECT.format(" AND t.workspace_id = $2")

# A receipt time of NULL leaves the stored one (the number was final before, or failed at its deadline).
_UPDATE_MESSAGES = (
    "UPDATE messages SET result = u.result, receipt_at = COALESCE(u.at, messages.receipt_at),"
    " delivered_mask = u.dm, failed_mask = u.fm, reasons = u.reasons, late = u.late"
    f" FROM {unnest('bigint', 'int', 'float8', 'bigint', 'bigint', 'text', 'int')}"
    " AS u(id, result, at, dm, fm, reasons, late) WHERE messages.id = u.id"
)
# Tasks in id order, so two flushes touching the same tasks lock them in the same order.
_UPDATE_TASKS = (
    "UPDATE tasks SET succeeded = succeeded + u.s, failed = failed + u.f, late_receipts = late_receipts + u.l,"
    " duplicate_receipts = duplicate_receipts + u.d, last_result_at = GREATEST(last_result_at, u.at)"
    f" FROM (SELECT * FROM {unnest('bigint', 'bigint', 'bigint', 'bigint', 'bigint', 'float8')}"
    " AS v(id, s, f, l, d, at) ORDER BY id) AS u WHERE tasks.id = u.id"
)
_INSERT_UNMATCHED = (
    "INSERT INTO unmatched_receipts(platform, platform_id, part, status, code, message, at, received_at, workspace_id)"
    " SELECT p, pid, part, status, code, message, at, $9::float8, ws FROM"
    f" {unnest('text', 'text', 'int', 'text', 'text', 'text', 'float8', 'bigint')}"
    " WITH ORDINALITY AS u(p, pid, part, status, code, message, at, ws, n) ORDER BY n"
)


async def apply_receipts(conn: asyncpg.Connection, items: list[tuple[str, Receipt]], timeout: float,
                         workspace: int | None = None) -> Tally:
    """Fold receipts into message rows and task counters inside the caller's transaction.

    ``workspace`` scopes the receipts to the messages of that workspace's tasks (a token must not
    reach another workspace's numbers, whose platform ids can be guessed)."""
    tally = Tally()
    if not items:
        return tally
    ids = list(dict.fromkeys(r.platform_id for _, r in items))
    ids_json = _encode(ids).decode()
    rows = await (conn.fetch(_SELECT_ALL, ids_json) if workspace is None else conn.fetch(_SELECT_SCOPED, ids_json, workspace))
    # per platform id and platform, the message a receipt reaches: the lowest id (rows come in id order)
    found: dict[tuple[str, str | None], _Message] = {}
    for row in rows:
        found.setdefault((row[0], row[3]), _Message(row))

    for index, (platform, receipt) in enumerate(items):
        msg = found.get((receipt.platform_id, platform))
        if msg is None:
            tally.unmatched.append((platform, receipt))
            tally.unmatched_at.append(index)
            tally.unmatched_ws.append(workspace)
            continue
        _fold(msg, receipt, timeout, tally)

    changed = [m for m in found.values() if m.dirty]
    if changed:
        await conn.execute(_UPDATE_MESSAGES, [m.id for m in changed], [m.result for m in changed],
                           [m.receipt_at for m in changed], [m.delivered for m in changed],
                           [m.failed for m in changed], [m.reasons for m in changed], [m.late for m in changed])
    tasks = sorted(tally.tasks)
    if tasks:
        await conn.execute(_UPDATE_TASKS, tasks, [tally.succeeded.get(t, 0) for t in tasks],
                           [tally.failed.get(t, 0) for t in tasks], [tally.late.get(t, 0) for t in tasks],
                           [tally.duplicate.get(t, 0) for t in tasks], [tally.last_final.get(t) for t in tasks])
    return tally


def _fold(msg: _Message, receipt: Receipt, timeout: float, tally: Tally) -> None:
    """``receipt_fold.fold`` on a locked row, counted by ``Tally.count`` (``submitted_at`` is
    exact here: PostgreSQL hands a float8 over bit for bit, so the fold's deadline is the stored one)."""
    tally.count(msg, F.fold(
        msg.submitted_at, msg.parts, msg.result, msg.delivered, msg.failed, msg.late, msg.reasons,
        receipt.status, receipt.part, receipt.code, receipt.message, receipt.at, timeout))


async def lock_results(conn: asyncpg.Connection, platforms) -> None:
    """Take the platforms' result locks (transaction-scoped advisory locks, in name order).

    Why: a receipt flush and the record of the batch it names run on two connections (or two
    instances). Under READ COMMITTED each can miss the other's uncommitted rows: the flush finds
    no message and keeps the receipt aside as unmatched, while the record, looking for receipts
    kept aside, finds none yet; the receipt then stays unmatched for ever. SQLite's one writer
    rules that out; here both take these locks first, so the later one sees what the earlier one
    committed."""
    for platform in sorted(platforms):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "smslab.results:" + platform)


async def commit_receipts(conn: asyncpg.Connection, items: list[tuple[str, Receipt]], timeout: float, now: float,
                          expected: dict[str, set[str]] | None = None,
                          scoped: dict[int, list[tuple[str, Receipt]]] | None = None) -> Tally:
    """Apply receipts; those naming no stored message are kept aside as unmatched, except the ones
    naming an id in ``expected`` (its acknowledgement is being recorded): their places go to
    ``tally.held`` and nothing is written for them. ``scoped`` receipts (by workspace) come after
    ``items`` in the places the tally reports."""
    platforms = {platform for platform, _ in items}
    for group in (scoped or {}).values():
        platforms.update(platform for platform, _ in group)
    await lock_results(conn, platforms)
    tally = await apply_receipts(conn, items, timeout)
    offset = len(items)
    for workspace, group in (scoped or {}).items():
        tally.merge(await apply_receipts(conn, group, timeout, workspace=workspace), offset)
        offset += len(group)
    if tally.unmatched and expected:
        tally.hold_expected(expected)
    if tally.unmatched:
        u = [r for _, r in tally.unmatched]
        await conn.execute(_INSERT_UNMATCHED, [p for p, _ in tally.unmatched], [r.platform_id for r in u],
                           [r.part for r in u], [r.status for r in u], [r.code for r in u], [r.message for r in u],
                           [float(r.at) for r in u], tally.unmatched_ws, float(now))
    return tally
