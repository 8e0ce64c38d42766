"""The carrier's books: what every backend keeps, behind one interface (``CarrierBooks``), and the
pure logic they share.

The books hold one row per submission batch (``sim_batches``: its messages, what was decided for
each and every receipt planned, as one JSON value), one row per emission batch
(``sim_emissions``) and the carrier's state (``sim_state``: profiles, outage anchors, the
emission watermark, the next receipt id). Two backends keep them:

- ``books_sqlite.SqliteBooks``: a SQLite file of the carrier's own (``simulator/store.py``), for
  a SQLite gateway (kept apart from the gateway's file for speed: docs/benchmarks.md) and for the
  standalone carrier;
- ``books_postgres.PostgresBooks``: the gateway's own PostgreSQL database, so that several
  ``smslab serve`` processes on it (SPEC §11) share one carrier: whichever instance leads finds
  the same idempotency records, receipt ids, watermark and ground truth the previous one left.

Why batches and not rows per message: a batch of 1,000 costs one row to write, and what the rows
cannot answer cheaply (which keys were seen, which receipts are still to emit) is kept in memory
(``simulator/ledger.py``) and rebuilt from these rows at start.

The logic (which receipts a submission plans, which rows it writes, how ground truth pages are
cut) is here, written once; a backend only moves rows in and out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from gateway.platform import SubmitItem

from ..model import outage_windows, plan

# (due, receipt id, platform id, part, status, code): a receipt to emit, as the DueQueue holds it
DueRow = tuple
# (id, number, parts, submitted_at, outcome, code, latency, rule, planned receipts, extra)
TruthRow = tuple


@dataclass(slots=True)
class StoredState:
    """What ``load_state`` reads: the profile and outage-anchor entries (``profile``,
    ``outages_anchor``, and per tenant ``profile:{key}``/``outages_anchor:{key}``), how far
    emission got (None: never) and the next receipt id."""

    entries: dict[str, str]
    watermark: tuple[float, int] | None
    next_rid: int


@dataclass(slots=True)
class SubmissionPlan:
    """A submission turned into rows (``plan_submission``): the refused ids with their codes, the
    receipts to emit, one batch row per task as ``(task, first id, last id, last due, last
    receipt id, messages)`` and the next receipt id."""

    refused: dict[str, str]
    due_rows: list[DueRow]
    rows: list[tuple]
    next_rid: int


class CarrierBooks(Protocol):
    """Where a ``CarrierCore`` keeps its books. Every method is one transaction (or one
    statement) of its own; the core holds its own locks around them."""

    async def load_state(self) -> StoredState: ...

    async def clear_tenant_profiles(self) -> None:
        """Forget every tenant's own profile and anchor (a profile given at start replaces them)."""

    async def save_state(self, rows: list[tuple[str, str]]) -> None:
        """Set these ``sim_state`` entries."""

    async def record_submission(self, clock, batch: list[SubmitItem], ids: list[str], decisions: list,
                                known: dict[str, tuple[str, str | None]], profile, anchor: float,
                                tenant: str | None = None,
                                extras: list | None = None) -> tuple[dict[str, str], list[DueRow], list[tuple], int]:
        """Record a decided submission in one transaction (``plan_submission``, with the service
        time and the next receipt id read inside it, and the receipt counter advanced in it).
        Returns the refused ids with their codes, the receipts to emit, ``(task, batch id, first
        id, last id)`` per row written, and the next receipt id."""

    async def pending_receipts(self, due: float, rid: int) -> list[DueRow]:
        """The receipts after the emission watermark (``due``, ``rid``)."""

    async def key_ranges(self, task_ref: int) -> list[tuple[int, str, str]]:
        """``(batch id, first id, last id)`` of every batch of a task, by first id."""

    async def batch_messages(self, batch_ids: list[int]) -> list[list]:
        """The messages of these batches (for the idempotency lookup)."""

    async def log_emission(self, due: float, rid: int, now: float, mark: tuple[float, int] | None = None) -> None:
        """An emission batch reached (due, rid) at ``now``; a restart starts after ``mark``
        (by default the same point)."""

    async def save_mark(self, mark: tuple[float, int]) -> None: ...

    async def forget_tenant(self, tenant: str | None) -> list[int]:
        """Delete one tenant's batches (a reset); returns the tasks they held."""

    async def tasks_of(self, tenant: str | None) -> list[int]: ...

    async def ground_truth_rows(self, task_ref: int | None, after: str, count: int,
                                tenant: str | None = None) -> list[TruthRow]: ...

    async def message_rows(self, tenant: str | None, msg_ids: list[str]) -> list[TruthRow]: ...

    async def message_at_or_before(self, tenant: str, key: str) -> TruthRow | None: ...

    async def emission_log(self) -> list[tuple[float, int, float]]:
        """``(up to due, up to receipt id, emitted at)`` of every emission batch, in order."""

    async def stamp(self) -> tuple:
        """A value that changes whenever the books do (a submission, an emission, a profile):
        equal stamps mean the books are as they were."""


# -- shared logic ------------------------------------------------------------------------------------
def plan_submission(now: float, batch: list[SubmitItem], ids: list[str], decisions: list,
                    known: dict[str, tuple[str, str | None]], profile, anchor: float, next_rid: int,
                    extras: list | None = None) -> SubmissionPlan:
    """The rows of a decided submission, receipt ids from ``next_rid`` on. Ids in ``known`` were
    recorded before (a resubmission) and are answered from that record, not sent again.
    ``extras[i]``, when given, is kept as the ninth value of message ``i`` (the front end's own
    data: the SMSC's addresses)."""
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
    rows = []
    for task_ref, messages in per_task.items():
        messages.sort(key=_first)
        last = last_due.get(task_ref, (None, None))
        rows.append((task_ref, messages[0][0], messages[-1][0], last[0], last[1], messages))
    return SubmissionPlan(refused, due_rows, rows, rid)


def pending_in(batches: Iterable[list], due: float, rid: int) -> list[DueRow]:
    """The receipts after (due, rid) in these batches' (decoded) messages."""
    rows = []
    for messages in batches:
        for msg_id, _number, _parts, _outcome, _code, _latency, _rule, planned, *_ in messages:
            for r_id, part, status, code, due_at, _dup, swallowed in planned:
                if not swallowed and (due_at, r_id) > (due, rid):
                    rows.append((due_at, r_id, msg_id, part, status, code))
    return rows


def truth_row(submitted_at: float, message: list) -> TruthRow:
    msg_id, number, parts, outcome, code, latency, rule, planned, *extra = message
    return (msg_id, number, parts, submitted_at, outcome, code, latency, rule, planned, extra[0] if extra else None)


@dataclass(slots=True)
class TruthPage:
    """The first ``count`` messages with an id above ``after``, gathered from batches read in
    order of their first id: once ``count`` are held and the next batch starts above the highest
    of them, no later batch can hold a smaller one (``add`` says False: stop reading)."""

    after: str
    count: int
    found: list = field(default_factory=list)

    def add(self, submitted_at: float, first_key: str, messages: list) -> bool:
        found = self.found
        if len(found) >= self.count and first_key > found[self.count - 1][0]:
            return False
        for message in messages:
            if message[0] > self.after:
                found.append(truth_row(submitted_at, message))
        found.sort(key=_first)
        del found[self.count:]
        return True


def matching(submitted_at: float, messages: list, wanted: set[str]) -> list[TruthRow]:
    return [truth_row(submitted_at, m) for m in messages if m[0] in wanted]


def best_at_or_before(batches: Iterable[tuple[float, list]], key: str) -> TruthRow | None:
    """The message with the largest id at or below ``key`` in these batches."""
    best = None
    for submitted_at, messages in batches:
        for message in messages:
            mid = message[0]
            if mid <= key and (best is None or mid > best[0]):
                best = truth_row(submitted_at, message)
    return best


def _by_delay(receipt) -> float:
    return receipt.delay


def _first(row) -> Any:
    return row[0]
