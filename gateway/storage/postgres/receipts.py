"""The receipt fold on PostgreSQL: receipts applied to message rows and task counters inside the
caller's transaction, a constant number of statements per flush whatever its size.

One SELECT over the ids (one JSON text) finds the messages a flush names and locks them
(``FOR UPDATE``, in id order, so two flushes that share messages wait for each other instead of
deadlocking); each receipt is folded in Python by ``gateway.domain.receipt_fold.fold`` (the one
place of the rule); one ``UPDATE … FROM jsonb_array_elements`` writes the rows back, one the task
counters, one ``INSERT … SELECT FROM unnest`` keeps the unmatched. Receipts that found no message
are looked for once more under the result locks before they are kept aside (``lock_results``).

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
# The rows come as one JSON text of arrays, not an array parameter per column: asyncpg checks each
# element of an array parameter against the iterable ABCs (is it a nested array?), which cost 4 µs
# of the gateway's CPU per row against 0.5 µs for msgspec's encoding, and the server parses
# ``jsonb`` as fast as the arrays (``python -m loadtests.pg_floor``: both forms; docs/benchmarks.md).
_UPDATE_MESSAGES = (
    "UPDATE messages SET result = u.result, receipt_at = COALESCE(u.at, messages.receipt_at),"
    " delivered_mask = u.dm, failed_mask = u.fm, reasons = u.reasons, late = u.late"
    " FROM (SELECT (e->>0)::bigint AS id, (e->>1)::int AS result, (e->>2)::float8 AS at, (e->>3)::bigint AS dm,"
    " (e->>4)::bigint AS fm, e->>5 AS reasons, (e->>6)::int AS late FROM jsonb_array_elements($1::jsonb) AS e) AS u"
    " WHERE messages.id = u.id"
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


class _Rows:
    """The message rows one transaction has locked and folded so far, by id: a row read again (a
    receipt of another workspace's group, or the look under the result locks) is folded on top of
    what this transaction did to it, and every changed row is written back once, at the end."""

    def __init__(self) -> None:
        self.by_id: dict[int, _Message] = {}

    async def fold(self, conn: asyncpg.Connection, items: list[tuple[str, Receipt]], timeout: float,
                   workspace: int | None, tally: Tally) -> None:
        """Lock the messages ``items`` name and fold each receipt into its row (in memory);
        receipts naming none go to ``tally.unmatched``."""
        if not items:
            return
        ids = list(dict.fromkeys(r.platform_id for _, r in items))
        ids_json = _encode(ids).decode()
        rows = await (conn.fetch(_SELECT_ALL, ids_json) if workspace is None
                      else conn.fetch(_SELECT_SCOPED, ids_json, workspace))
        # per platform id and platform, the message a receipt reaches: the lowest id (rows come in id order)
        found: dict[tuple[str, str | None], _Message] = {}
        by_id = self.by_id
        for row in rows:
            key = (row[0], row[3])
            if key not in found:
                msg = by_id.get(row[1])
                if msg is None:
                    msg = by_id[row[1]] = _Message(row)
                found[key] = msg
        for index, (platform, receipt) in enumerate(items):
            msg = found.get((receipt.platform_id, platform))
            if msg is None:
                tally.unmatched.append((platform, receipt))
                tally.unmatched_at.append(index)
                tally.unmatched_ws.append(workspace)
                continue
            _fold(msg, receipt, timeout, tally)

    async def write_back(self, conn: asyncpg.Connection, tally: Tally) -> None:
        """The changed rows in one UPDATE, the task counters in another."""
        changed = [m for m in self.by_id.values() if m.dirty]
        if changed:
            await conn.execute(_UPDATE_MESSAGES, _encode(
                [(m.id, m.result, m.receipt_at, m.delivered, m.failed, m.reasons, m.late) for m in changed]).decode())
        tasks = sorted(tally.tasks)
        if tasks:
            await conn.execute(_UPDATE_TASKS, tasks, [tally.succeeded.get(t, 0) for t in tasks],
                               [tally.failed.get(t, 0) for t in tasks], [tally.late.get(t, 0) for t in tasks],
                               [tally.duplicate.get(t, 0) for t in tasks], [tally.last_final.get(t) for t in tasks])


async def apply_receipts(conn: asyncpg.Connection, items: list[tuple[str, Receipt]], timeout: float,
                         workspace: int | None = None) -> Tally:
    """Fold receipts into message rows and task counters inside the caller's transaction.

    ``workspace`` scopes the receipts to the messages of that workspace's tasks (a token must not
    reach another workspace's numbers, whose platform ids can be guessed)."""
    tally = Tally()
    rows = _Rows()
    await rows.fold(conn, items, timeout, workspace, tally)
    await rows.write_back(conn, tally)
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
    kept aside, finds none yet; the receipt then stays unmatched for ever. So the record looks for
    receipts kept aside only under these locks (after its COPY), and a flush keeps a receipt aside
    only under them, after looking for its message once more (``commit_receipts``): whichever
    takes them second sees what the first committed.

    Only then: a flush whose receipts all found their messages takes no lock, so flushes and the
    records of new batches run side by side instead of in turn. Every transaction takes these
    locks before any task row (a record: COPY, locks, counters; a flush: its message rows, locks,
    counters), so the two never wait for each other in a circle."""
    for platform in sorted(platforms):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "smslab.results:" + platform)


async def commit_receipts(conn: asyncpg.Connection, items: list[tuple[str, Receipt]], timeout: float, now: float,
                          expected: dict[str, set[str]] | None = None,
                          scoped: dict[int, list[tuple[str, Receipt]]] | None = None) -> Tally:
    """Apply receipts; those naming no stored message are kept aside as unmatched, except the ones
    naming an id in ``expected`` (its acknowledgement is being recorded): their places go to
    ``tally.held`` and nothing is written for them. ``scoped`` receipts (by workspace) come after
    ``items`` in the places the tally reports."""
    rows = _Rows()
    tally = Tally()
    await rows.fold(conn, items, timeout, None, tally)
    offset = len(items)
    for workspace, group in (scoped or {}).items():
        part = Tally()
        await rows.fold(conn, group, timeout, workspace, part)
        tally.merge(part, offset)
        offset += len(group)
    if tally.unmatched and expected:
        tally.hold_expected(expected)
    if tally.unmatched:
        await lock_results(conn, {platform for platform, _ in tally.unmatched})
        await _look_again(conn, rows, tally, timeout)
    await rows.write_back(conn, tally)
    if tally.unmatched:
        u = [r for _, r in tally.unmatched]
        await conn.execute(_INSERT_UNMATCHED, [p for p, _ in tally.unmatched], [r.platform_id for r in u],
                           [r.part for r in u], [r.status for r in u], [r.code for r in u], [r.message for r in u],
                           [float(r.at) for r in u], tally.unmatched_ws, float(now))
    return tally


async def _look_again(conn: asyncpg.Connection, rows: _Rows, tally: Tally, timeout: float) -> None:
    """Under the result locks, look for the messages of the unmatched receipts once more (a new
    statement sees what committed meanwhile: a record that took the locks first); the receipts
    that find one now are folded, the others stay unmatched, in their places."""
    by_workspace: dict[int | None, list[int]] = {}
    for k, workspace in enumerate(tally.unmatched_ws):
        by_workspace.setdefault(workspace, []).append(k)
    still: list[int] = []
    for workspace, ks in by_workspace.items():
        again = Tally()
        await rows.fold(conn, [tally.unmatched[k] for k in ks], timeout, workspace, again)
        still += [ks[i] for i in again.unmatched_at]
        again.unmatched, again.unmatched_at, again.unmatched_ws = [], [], []
        tally.merge(again, 0)
    still.sort()
    tally.unmatched = [tally.unmatched[k] for k in still]
    tally.unmatched_at = [tally.unmatched_at[k] for k in still]
    tally.unmatched_ws = [tally.unmatched_ws[k] for k in still]
