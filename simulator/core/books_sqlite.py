"""The carrier's books in a SQLite file of its own (``simulator/store.py``): ``SqliteBooks``, the
``CarrierBooks`` of a SQLite gateway's in-process carrier and of the standalone carrier.

Each statement function takes the connection and runs whole on the carrier database's thread
(``Database.write``/``read``), so a transaction is one hop to that thread, not one per
statement. The functions stay public for the front ends that read the same file in their own
transactions (the SMSC, the provider APIs).
"""

from __future__ import annotations

import msgspec

from gateway.platform import SubmitItem
from gateway.storage.sqlite import bulk

from .books import (StoredState, TruthPage, TruthRow, best_at_or_before, matching, pending_in, plan_submission)


class SqliteBooks:
    """``CarrierBooks`` on the carrier's SQLite ``Database`` (gateway/storage/sqlite/db.py)."""

    backend = "sqlite"

    def __init__(self, db):
        self.db = db

    async def load_state(self) -> StoredState:
        return await self.db.read(_load_state)

    async def clear_tenant_profiles(self) -> None:
        await self.db.write(_clear_tenant_profiles)

    async def save_state(self, rows: list[tuple[str, str]]) -> None:
        if rows:
            await self.db.write(_save_state, rows)

    async def record_submission(self, clock, batch, ids, decisions, known, profile, anchor, tenant=None, extras=None):
        return await self.db.write(record_submission, clock, batch, ids, decisions, known, profile, anchor, tenant, extras)

    async def pending_receipts(self, due: float, rid: int):
        return await self.db.read(pending_receipts, due, rid)

    async def key_ranges(self, task_ref: int):
        return await self.db.fetchall(
            "SELECT id, first_key, last_key FROM sim_batches WHERE task_ref=? ORDER BY first_key, id", (task_ref,))

    async def batch_messages(self, batch_ids: list[int]) -> list[list]:
        rows = await self.db.fetchall(
            "SELECT messages FROM sim_batches WHERE id IN (SELECT value FROM json_each(?))", (bulk.encode(batch_ids).decode(),))
        return [bulk.decode(messages) for (messages,) in rows]

    async def log_emission(self, due, rid, now, mark=None) -> None:
        await self.db.write(log_emission, due, rid, now, mark)

    async def save_mark(self, mark) -> None:
        await self.db.write(save_mark, mark)

    async def forget_tenant(self, tenant):
        return await self.db.write(forget_tenant, tenant)

    async def tasks_of(self, tenant):
        return await self.db.read(tasks_of, tenant)

    async def ground_truth_rows(self, task_ref, after, count, tenant=None):
        return await self.db.read(ground_truth_rows, task_ref, after, count, tenant)

    async def message_rows(self, tenant, msg_ids):
        return await self.db.read(message_rows, tenant, msg_ids)

    async def message_at_or_before(self, tenant, key):
        return await self.db.read(message_at_or_before, tenant, key)

    async def emission_log(self):
        return await self.db.fetchall("SELECT up_to_due, up_to_id, emitted_at FROM sim_emissions ORDER BY id")

    async def stamp(self) -> tuple:
        return await self.db.read(_stamp)


# -- statements, on the carrier database's thread ----------------------------------------------------
_STATE_KEYS = "SELECT key, value FROM sim_state WHERE key LIKE 'profile%' OR key LIKE 'outages_anchor%'"


def _load_state(conn) -> StoredState:
    entries = dict(conn.execute(_STATE_KEYS).fetchall())
    mark = conn.execute("SELECT value FROM sim_state WHERE key='emitted_until'").fetchone()
    watermark = None
    if mark is not None:
        due, rid = msgspec.json.decode(mark[0])
        watermark = (float(due), int(rid))
    next_rid = int(conn.execute("SELECT value FROM sim_state WHERE key='next_receipt_id'").fetchone()[0])
    return StoredState(entries, watermark, next_rid)


def _clear_tenant_profiles(conn) -> None:
    conn.execute("DELETE FROM sim_state WHERE key LIKE 'profile:%' OR key LIKE 'outages_anchor:%'")


def _save_state(conn, rows: list[tuple[str, str]]) -> None:
    conn.executemany("INSERT OR REPLACE INTO sim_state(key, value) VALUES (?, ?)", rows)


_STAMP_STATE = (_STATE_KEYS + " OR key IN ('emitted_until', 'next_receipt_id') ORDER BY key")


def _stamp(conn) -> tuple:
    # the carrier's own entries only: a front end's (the SMSC's per-message ones) are not its state
    return (tuple(conn.execute(_STAMP_STATE).fetchall()),
            conn.execute("SELECT MAX(id), COUNT(*) FROM sim_batches").fetchone(),
            conn.execute("SELECT MAX(id) FROM sim_emissions").fetchone())


def record_submission(conn, clock, batch: list[SubmitItem], ids: list[str], decisions: list,
                      known: dict[str, tuple[str, str | None]], profile, anchor: float,
                      tenant: str | None = None, extras: list | None = None):
    """``CarrierBooks.record_submission`` in the writer's transaction: one writer per file, so the
    receipt counter read here cannot move before the commit."""
    now = clock.now()  # read inside the transaction: see SimulatedCarrier.on_clock
    next_rid = int(conn.execute("SELECT value FROM sim_state WHERE key='next_receipt_id'").fetchone()[0])
    planned = plan_submission(now, batch, ids, decisions, known, profile, anchor, next_rid, extras)
    recorded = []
    for task_ref, first, last, last_due, last_rid, messages in planned.rows:
        cur = conn.execute(
            "INSERT INTO sim_batches(task_ref, submitted_at, first_key, last_key, last_due, last_rid, messages, tenant)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (task_ref, now, first, last, last_due, last_rid, bulk.encode(messages), tenant),
        )
        recorded.append((task_ref, cur.lastrowid, first, last))
    conn.execute("UPDATE sim_state SET value=? WHERE key='next_receipt_id'", (str(planned.next_rid),))
    return planned.refused, planned.due_rows, recorded, planned.next_rid


def pending_receipts(conn, due: float, rid: int) -> list[tuple]:
    """The receipts after the emission watermark, from the batches that still hold some."""
    cursor = conn.execute(
        "SELECT messages FROM sim_batches WHERE last_due IS NOT NULL AND (last_due, last_rid) > (?, ?)", (due, rid))
    return pending_in((bulk.decode(messages) for (messages,) in cursor), due, rid)


def ground_truth_rows(conn, task_ref: int | None, after: str, count: int, tenant: str | None = None) -> list[TruthRow]:
    """The first ``count`` messages of a task (or, with ``task_ref`` None, of a tenant) with an id
    above ``after``, in id order, as
    (id, number, parts, submitted_at, outcome, code, latency, rule, planned receipts, extra)."""
    page = TruthPage(after, count)
    if task_ref is not None:
        cursor = conn.execute(
            "SELECT submitted_at, first_key, messages FROM sim_batches WHERE task_ref=? AND last_key > ? ORDER BY first_key, id",
            (task_ref, after),
        )
    else:
        cursor = conn.execute(
            "SELECT submitted_at, first_key, messages FROM sim_batches WHERE tenant IS ? AND last_key > ? ORDER BY first_key, id",
            (tenant, after),
        )
    try:
        for submitted_at, first_key, messages in cursor:
            if not page.add(submitted_at, first_key, bulk.decode(messages)):
                break
    finally:
        cursor.close()  # a statement left open would hold this connection's read snapshot
    return page.found


def log_emission(conn, due: float, rid: int, now: float, mark: tuple[float, int] | None = None) -> None:
    conn.execute("INSERT INTO sim_emissions(up_to_due, up_to_id, emitted_at) VALUES (?,?,?)", (due, rid, now))
    save_mark(conn, mark or (due, rid))


def save_mark(conn, mark: tuple[float, int]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO sim_state(key, value) VALUES ('emitted_until', ?)", (msgspec.json.encode(list(mark)).decode(),)
    )


def forget_tenant(conn, tenant: str | None) -> list[int]:
    tasks = tasks_of(conn, tenant)
    conn.execute("DELETE FROM sim_batches WHERE tenant IS ?", (tenant,))
    return tasks


def tasks_of(conn, tenant: str | None) -> list[int]:
    return [t for (t,) in conn.execute("SELECT DISTINCT task_ref FROM sim_batches WHERE tenant IS ?", (tenant,))]


def message_rows(conn, tenant: str | None, msg_ids: list[str]) -> list[TruthRow]:
    """The messages with these ids of one tenant, in the shape of ``ground_truth_rows``."""
    found = []
    for msg_id in sorted(set(msg_ids)):
        for submitted_at, messages in conn.execute(
            "SELECT submitted_at, messages FROM sim_batches WHERE tenant IS ? AND first_key <= ? AND last_key >= ?",
            (tenant, msg_id, msg_id),
        ).fetchall():
            found.extend(matching(submitted_at, bulk.decode(messages), {msg_id}))
    return found


def message_at_or_before(conn, tenant: str, key: str) -> TruthRow | None:
    """The message of ``tenant`` with the largest id at or below ``key`` (the SMSC finds the
    message a part number belongs to), in the shape of ``ground_truth_rows``."""
    rows = conn.execute(
        "SELECT submitted_at, messages FROM sim_batches WHERE tenant = ? AND first_key <= ? ORDER BY first_key DESC LIMIT 4",
        (tenant, key),
    ).fetchall()
    return best_at_or_before(((submitted_at, bulk.decode(messages)) for submitted_at, messages in rows), key)
