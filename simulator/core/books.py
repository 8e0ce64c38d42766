"""The carrier's books on disk: one row per submission batch (``sim_batches``: its messages, what
was decided for each and every receipt planned, as one JSON value), one row per emission batch
(``sim_emissions``) and the carrier's state (``sim_state``). Each function runs whole on the
carrier database's thread (``Database.write``/``read``).

Why batches and not rows per message: a batch of 1,000 costs one row to write, and what the rows
cannot answer cheaply (which keys were seen, which receipts are still to emit) is kept in memory
(``simulator/ledger.py``) and rebuilt from these rows at start.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.platform import SubmitItem
from gateway.storage.sqlite import bulk

from ..model import outage_windows, plan


def record_submission(conn, clock, batch: list[SubmitItem], ids: list[str], decisions: list,
                      known: dict[str, tuple[str, str | None]], profile, anchor: float, next_rid: int,
                      tenant: str | None = None, extras: list | None = None):
    """Record a decided submission in one transaction on the carrier's database thread: one
    ``sim_batches`` row per task in it. Ids in ``known`` were recorded before (a resubmission)
    and are answered from that record, not sent again. ``extras[i]``, when given, is kept as the
    ninth value of message ``i`` (the front end's own data: the SMSC's addresses). Returns the
    refused ids with their codes, the receipts to emit, ``(task, batch id, first id, last id)``
    per row written, and the next receipt id."""
    now = clock.now()  # read inside the transaction: see SimulatedCarrier.on_clock
    refused = {msg_id: code or "REFUSED" for msg_id, (outcome, code) in known.items() if outcome == "refused"}
    swallowing = bool(outage_windows(profile, "receipts", anchor))  # else plan() changes nothing
    per_task: dict[int, list] = {}
    due_rows: list[tuple] = []
    last_due: dict[int, tuple] = {}
    one_task = len({item.task_id for item in batch}) == 1  # the usual batch: its last due receipt is found once, after
    rid = next_rid
    for i, (item, msg_id, decision) in enumerate(zip(batch, ids, decisions)):
        if known and msg_id in known:  # an idempotent resubmission: the handset got it already
            continue
        if decision.outcome == "refused":
            refused[msg_id] = decision.code or "REFUSED"
        elif swallowing:
            decision = plan(decision, profile, now, anchor)
        receipts = decision.receipts
        if len(receipts) > 1:
            receipts = sorted(receipts, key=_by_delay)
        planned = []
        for r in receipts:
            due = now + r.delay
            planned.append((rid, r.part, r.status, r.code, due, int(r.duplicate), int(r.swallowed)))
            if not r.swallowed:
                row = (due, rid, msg_id, r.part, r.status, r.code)
                due_rows.append(row)
                if not one_task and (item.task_id not in last_due or row[:2] > last_due[item.task_id]):
                    last_due[item.task_id] = row[:2]
            rid += 1
        task_messages = per_task.get(item.task_id)
        if task_messages is None:
            task_messages = per_task[item.task_id] = []
        if extras is None:
            task_messages.append(
                (msg_id, item.number, item.parts, decision.outcome, decision.code, decision.latency, decision.rule, planned)
            )
        else:
            task_messages.append((msg_id, item.number, item.parts, decision.outcome, decision.code, decision.latency,
                                  decision.rule, planned, extras[i]))
    if one_task and due_rows:
        last_due[batch[0].task_id] = max(due_rows)[:2]  # (due, receipt id): ids are unique, so the rest never decides
    recorded = []
    for task_ref, messages in per_task.items():
        messages.sort(key=_first)
        last = last_due.get(task_ref, (None, None))
        cur = conn.execute(
            "INSERT INTO sim_batches(task_ref, submitted_at, first_key, last_key, last_due, last_rid, messages, tenant)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (task_ref, now, messages[0][0], messages[-1][0], last[0], last[1], bulk.encode(messages), tenant),
        )
        recorded.append((task_ref, cur.lastrowid, messages[0][0], messages[-1][0]))
    conn.execute("UPDATE sim_state SET value=? WHERE key='next_receipt_id'", (str(rid),))
    return refused, due_rows, recorded, rid


def pending_receipts(conn, due: float, rid: int) -> list[tuple]:
    """The receipts after the emission watermark, from the batches that still hold some."""
    rows = []
    for (messages,) in conn.execute(
        "SELECT messages FROM sim_batches WHERE last_due IS NOT NULL AND (last_due, last_rid) > (?, ?)", (due, rid)
    ):
        for msg_id, _number, _parts, _outcome, _code, _latency, _rule, planned, *_ in bulk.decode(messages):
            for r_id, part, status, code, due_at, _dup, swallowed in planned:
                if not swallowed and (due_at, r_id) > (due, rid):
                    rows.append((due_at, r_id, msg_id, part, status, code))
    return rows


def ground_truth_rows(conn, task_ref: int | None, after: str, count: int, tenant: str | None = None) -> list[tuple]:
    """The first ``count`` messages of a task (or, with ``task_ref`` None, of a tenant) with an id
    above ``after``, in id order, as
    (id, number, parts, submitted_at, outcome, code, latency, rule, planned receipts).

    Batches are read in order of their first id; once ``count`` messages are held and the next
    batch starts above the highest of them, no later batch can hold a smaller one."""
    found: list[tuple] = []
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
            if len(found) >= count and first_key > found[count - 1][0]:
                break
            for msg_id, number, parts, outcome, code, latency, rule, planned, *extra in bulk.decode(messages):
                if msg_id > after:
                    found.append((msg_id, number, parts, submitted_at, outcome, code, latency, rule, planned,
                                  extra[0] if extra else None))
            found.sort(key=_first)
            del found[count:]
    finally:
        cursor.close()  # a statement left open would hold this connection's read snapshot
    return found


def _by_delay(receipt) -> float:
    return receipt.delay


def _first(row) -> Any:
    return row[0]


def log_emission(conn, due: float, rid: int, now: float, mark: tuple[float, int] | None = None) -> None:
    """An emission batch reached (due, rid) at ``now``; a restart starts after ``mark`` (by
    default the same point)."""
    conn.execute("INSERT INTO sim_emissions(up_to_due, up_to_id, emitted_at) VALUES (?,?,?)", (due, rid, now))
    save_mark(conn, mark or (due, rid))


def save_mark(conn, mark: tuple[float, int]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO sim_state(key, value) VALUES ('emitted_until', ?)", (msgspec.json.encode(list(mark)).decode(),)
    )


def forget_tenant(conn, tenant: str | None) -> list[int]:
    """Delete one tenant's batches (a reset); returns the tasks they held."""
    tasks = [t for (t,) in conn.execute("SELECT DISTINCT task_ref FROM sim_batches WHERE tenant IS ?", (tenant,))]
    conn.execute("DELETE FROM sim_batches WHERE tenant IS ?", (tenant,))
    return tasks


def message_rows(conn, tenant: str | None, msg_ids: list[str]) -> list[tuple]:
    """The messages with these ids of one tenant, in the shape of ``ground_truth_rows``."""
    found = []
    wanted = set(msg_ids)
    for msg_id in sorted(wanted):
        for submitted_at, messages in conn.execute(
            "SELECT submitted_at, messages FROM sim_batches WHERE tenant IS ? AND first_key <= ? AND last_key >= ?",
            (tenant, msg_id, msg_id),
        ).fetchall():
            for mid, number, parts, outcome, code, latency, rule, planned, *extra in bulk.decode(messages):
                if mid == msg_id:
                    found.append((mid, number, parts, submitted_at, outcome, code, latency, rule, planned,
                                  extra[0] if extra else None))
    return found


def message_at_or_before(conn, tenant: str, key: str) -> tuple | None:
    """The message of ``tenant`` with the largest id at or below ``key`` (the SMSC finds the
    message a part number belongs to), in the shape of ``ground_truth_rows``."""
    best = None
    for submitted_at, messages in conn.execute(
        "SELECT submitted_at, messages FROM sim_batches WHERE tenant = ? AND first_key <= ? ORDER BY first_key DESC LIMIT 4",
        (tenant, key),
    ).fetchall():
        for mid, number, parts, outcome, code, latency, rule, planned, *extra in bulk.decode(messages):
            if mid <= key and (best is None or mid > best[0]):
                best = (mid, number, parts, submitted_at, outcome, code, latency, rule, planned, extra[0] if extra else None)
    return best
