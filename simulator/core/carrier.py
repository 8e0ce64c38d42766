"""The carrier core: profiles per tenant, admission, decisions, planned receipts, ground truth and
persistence, on one clock. It knows nothing of HTTP or SMPP: each front end (the in-process
``sim`` platform, the HTTP API, the SMSC) turns its wire format into ``submit`` calls and the due
receipts ``emit`` hands it into its own wire format.

Decisions are pure and keyed (``simulator.model``): the front end says what a message's key is
(the gateway: ``{task}:{number}``; the SMSC: ``{system_id}:{destination}:{n}``), so every front
end gives the same outcome for the same key, whatever the batching or concurrency.

The books (``books.py``: a ``CarrierBooks``, on SQLite or on the gateway's PostgreSQL database)
hold one row per submission batch; the receipts still to emit wait in memory in due order
(``ledger.DueQueue``) and are found again at start (``load``), or when this instance takes the
carrier over from another (``reload``), from the batches past the emission watermark. The core
holds no SQL: every read and write goes through the books.

A front end calls ``emit(now, deliver)``: the core hands ``deliver`` the due receipts in (due
time, receipt id) order, batch after batch, and records how far it emitted only after
``deliver`` returned, so a crash re-emits at most a batch (receipts are idempotent for whoever
receives them).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from bisect import bisect_left
from typing import Any, Awaitable, Callable

import msgspec

from gateway.platform import SubmitItem

from .. import profile as profiles
from ..ledger import DueQueue, KeyRanges
from ..model import decide_many, expected_result
from .books import CarrierBooks
from .tenants import CarrierTenant, outages_moved

EMIT_BATCH = 5000
RANGES_KEPT = 64  # tasks whose batch key ranges stay in memory


class CarrierCore:
    def __init__(self, books: CarrierBooks | None, clock, *, monotonic: Callable[[], float] = time.monotonic,
                 default_profile: profiles.Profile | None = None):
        self.books = books
        self.clock = clock
        self._monotonic = monotonic
        self._default_profile = default_profile or profiles.Profile()
        self.default = CarrierTenant(None, None, monotonic)
        self.default.own_profile = self._default_profile
        self._tenants: dict[str, CarrierTenant] = {}
        self.due = DueQueue()
        self._ranges: dict[int, KeyRanges] = {}
        self._next_rid: int | None = None  # as last read or written; the books' counter is the truth
        self.watermark: tuple[float, int] = (float("-inf"), 0)
        self.loaded_stamp: tuple | None = None  # the books' stamp when last loaded (see ``current``)
        # a submission (its transaction and the push of its receipts) and the taking of due
        # receipts exclude each other: see ``emit``
        self._books_lock = asyncio.Lock()
        self._emit_lock = asyncio.Lock()

    # -- state ------------------------------------------------------------------------------------
    async def load(self, initial: profiles.Profile | None = None,
                   finished: Callable[[tuple[float, int]], Awaitable[set[int]]] | None = None) -> None:
        """Read the stored profiles, anchors and the emission watermark, and rebuild the queue of
        receipts to emit. ``initial`` (a profile given at start) becomes the default and replaces
        every tenant's own profile. ``finished(mark)`` names receipts after the mark that a front
        end already took to their end (its outbox), so they are not emitted again."""
        books = self.books
        stamp = await books.stamp()
        state = await books.load_state()
        default = self.default
        entries = state.entries
        if "profile" in entries:
            default.own_profile = profiles.from_json(entries["profile"].encode())
        if "outages_anchor" in entries:
            default.own_anchor = float(entries["outages_anchor"])
        if initial is not None:
            await books.clear_tenant_profiles()
            await self.set_profile(default, initial)
        else:
            for key, value in entries.items():
                name, _, tenant_key = key.partition(":")
                if tenant_key:
                    tenant = self.tenant(tenant_key)
                    if name == "profile":
                        tenant.own_profile = profiles.from_json(value.encode())
                    else:
                        tenant.own_anchor = float(value)
            if default.own_anchor is None:
                await self.save_state(default, anchor=self.clock.now())
        if state.watermark is not None:
            self.watermark = state.watermark
        self._next_rid = state.next_rid
        pending = await books.pending_receipts(*self.watermark)
        if finished is not None and pending:
            done = await finished(self.watermark)
            pending = [row for row in pending if row[1] not in done]
        self.due.push(pending)
        # taken before reading: whatever changed the books while they were read changes the stamp
        # too, so ``current`` never calls this state current when it is not
        self.loaded_stamp = stamp if initial is None and stamp == await books.stamp() else None

    async def current(self) -> bool:
        """Whether the books are still exactly as ``load`` read them (no other instance submitted,
        emitted or changed a profile since): then a ``reload`` would rebuild the same state."""
        return self.loaded_stamp is not None and self.loaded_stamp == await self.books.stamp()

    async def reload(self, finished: Callable[[tuple[float, int]], Awaitable[set[int]]] | None = None) -> None:
        """Forget everything held in memory (the queue of receipts to emit, the batches' key
        ranges, the receipt counter, every tenant's profile, anchor and throughput window, the
        watermark) and ``load`` again from the books.

        For an instance that becomes the one running the carrier after another did (SPEC §11):
        that one submitted and emitted since this one loaded, so what this one holds is stale,
        and the books are the truth. Tenant objects stay the same (the front end's views hold
        them); their state is what is reset. A profile given at start is not applied again: the
        stored profiles are the ones in force."""
        async with self._emit_lock, self._books_lock:
            self.due = DueQueue()
            self._ranges.clear()
            self._next_rid = None
            self.watermark = (float("-inf"), 0)
            self.loaded_stamp = None
            for tenant in (self.default, *self._tenants.values()):
                tenant.own_profile = None
                tenant.own_anchor = None
                tenant.rate.reset()
                tenant.throttled = tenant.outage_refusals = 0
            self.default.own_profile = self._default_profile
            await self.load(finished=finished)

    def tenant(self, key: str | None) -> CarrierTenant:
        if key is None:
            return self.default
        tenant = self._tenants.get(key)
        if tenant is None:
            tenant = self._tenants[key] = CarrierTenant(key, self.default, self._monotonic)
        return tenant

    async def set_profile(self, tenant: CarrierTenant, profile: profiles.Profile) -> None:
        """Applies to messages submitted from now on; planned receipts keep their plan.

        Outage windows given in seconds count from the moment the ``outages`` list last changed,
        so changing another field (a PATCH of ``duplicate_rate``, say) does not restart them."""
        moved = outages_moved(tenant.outages_anchor, tenant.profile, profile)
        tenant.own_profile = profile
        await self.save_state(tenant, profile=profile, anchor=self.clock.now() if moved else tenant.outages_anchor)

    async def save_state(self, tenant: CarrierTenant, profile: profiles.Profile | None = None,
                         anchor: float | None = None) -> None:
        if anchor is not None:
            tenant.own_anchor = anchor
        rows = []
        if profile is not None:
            rows.append((tenant.state_key("profile"), msgspec.json.encode(profile).decode()))
        if anchor is not None:
            rows.append((tenant.state_key("outages_anchor"), repr(anchor)))
        if rows:
            await self.books.save_state(rows)

    async def reset(self, tenant: CarrierTenant, profile: profiles.Profile | None = None,
                    forget: Callable[[tuple], bool] | None = None) -> list[int]:
        """A fresh carrier for one tenant: forget its messages and planned receipts, empty its
        throughput window and restart its relative outage windows from now. Its profile stays (or
        ``profile`` replaces it). Other tenants are not touched. ``forget(row)`` says which queued
        receipts were the tenant's (the front end knows from its ids); returns the tasks forgotten."""
        async with self._emit_lock, self._books_lock:
            tasks = await self.books.forget_tenant(tenant.key)
            if forget is not None:
                self.due.remove(forget)
            for task in tasks:
                self._ranges.pop(task, None)
            tenant.rate.reset()
            tenant.throttled = tenant.outage_refusals = 0
            new = profile or tenant.profile
            await self.save_state(tenant, profile=new, anchor=self.clock.now())
            tenant.own_profile = new
        return tasks

    # -- submission ---------------------------------------------------------------------------------
    async def submit(self, tenant: CarrierTenant, batch: list[SubmitItem], ids: list[str],
                     keys: list[str] | None = None, known: bool = True,
                     extras: list | None = None, receipt_parts: list[int] | None = None) -> tuple[dict[str, str], list[tuple]]:
        """Decide and record a batch that was admitted. ``ids`` are the front end's message ids,
        ``keys`` the decision keys (default ``{task_id}:{number}``). With ``known``, ids that an
        earlier submission of the same task recorded (a resubmission after a crash) are answered
        from that record and not sent again. ``extras`` (one per item) are kept with the messages
        (the SMSC's per-message addresses: ground truth's ``extra``). ``receipt_parts`` (one per
        item, default its parts) are the parts its receipts are decided for: 1 gives a long
        message one receipt for the whole, as an SMSC does for a ``message_payload``. Returns the refused ids with
        their codes, and the receipts now queued as ``(due, receipt id, id, part, status, code)``."""
        profile = tenant.profile
        anchor = tenant.outages_anchor if tenant.outages_anchor is not None else self.clock.now()
        rules = tenant.rulebook(profile)
        if keys is None:
            keys = [f"{item.task_id}:{item.number}" for item in batch]
        # deciding is pure and needs no clock, so it happens before the transaction
        if receipt_parts is None:
            decisions = decide_many(profile, [(key, item.parts, item.number) for key, item in zip(keys, batch)], rules)
        else:
            decisions = decide_many(profile, [(key, parts, item.number) for key, item, parts in zip(keys, batch, receipt_parts)],
                                    rules)
        async with self._books_lock:
            seen = await self._known(batch, ids) if known else {}
            refused, due_rows, recorded, self._next_rid = await self.books.record_submission(
                self.clock, batch, ids, decisions, seen, profile, anchor, tenant.key, extras)
            # no await between the commit and here: the receipts are in the queue before an
            # emission can take due receipts again
            self.due.push(due_rows)
            for task_ref, batch_id, first, last in recorded:
                ranges = self._ranges.get(task_ref)
                if ranges is not None:
                    ranges.add(first, last, batch_id)
        return refused, due_rows

    async def _known(self, batch: list[SubmitItem], ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """Outcome and code of every id of ``batch`` that an earlier submission recorded, looked
        up only in batches whose key range overlaps."""
        by_task: dict[int, list[str]] = {}
        for item, msg_id in zip(batch, ids):
            by_task.setdefault(item.task_id, []).append(msg_id)
        known: dict[str, tuple[str, str | None]] = {}
        for task_ref, task_ids in by_task.items():
            ranges = self._ranges.pop(task_ref, None)
            if ranges is None:
                ranges = KeyRanges()
                for batch_id, first, last in await self.books.key_ranges(task_ref):
                    ranges.add(first, last, batch_id)
            self._ranges[task_ref] = ranges  # most recently used last
            while len(self._ranges) > RANGES_KEPT:  # the others are read again when needed
                del self._ranges[next(iter(self._ranges))]
            overlapping = ranges.overlapping(min(task_ids), max(task_ids))
            if not overlapping:
                continue
            wanted = set(task_ids)
            for messages in await self.books.batch_messages(overlapping):
                for msg_id, _number, _parts, outcome, code, *_ in messages:
                    if msg_id in wanted:
                        known[msg_id] = (outcome, code)
        return known

    # -- emission -----------------------------------------------------------------------------------
    async def emit(self, now: float, deliver: Callable[[list[tuple]], Any], batch: int = EMIT_BATCH,
                   hold: Callable[[], tuple[float, int] | None] | None = None) -> int:
        """Hand every receipt due by ``now`` to ``deliver``, oldest first, in batches, each
        delivered before the next is taken; returns how many.

        Taking due receipts excludes submissions (``_books_lock``), and a submission places its
        receipts at or after the service time it reads inside its transaction. So a receipt
        submitted after a take is never due before what that take emitted: the emission order is
        exactly (due time, receipt id), which the watermark and ground truth's ``emitted_at``
        rely on. A ``deliver`` that raises gets the same receipts again next time.

        ``hold()`` is for a front end that keeps emitted receipts open until acknowledged (its
        outbox): the oldest still open, which the stored watermark must stay behind, so that a
        restart emits it again."""
        emitted = 0
        async with self._emit_lock:
            while True:
                async with self._books_lock:
                    rows = self.due.pop_due(now, batch)
                if not rows:
                    return emitted
                try:
                    result = deliver(rows)
                    if inspect.isawaitable(result):
                        await result
                except BaseException:
                    self.due.push(rows)  # not handed over: emit them again next time
                    raise
                last = rows[-1]
                mark = self.safe_mark((last[0], last[1]), hold)
                await self.books.log_emission(last[0], last[1], now, mark)
                self.watermark = (last[0], last[1])
                emitted += len(rows)
                if len(rows) < batch:
                    return emitted

    def safe_mark(self, emitted: tuple[float, int], hold: Callable[[], tuple[float, int] | None] | None) -> tuple[float, int]:
        """How far a restart may start from: just before the oldest receipt still held open, or
        all that was emitted."""
        oldest = hold() if hold is not None else None
        if oldest is None or oldest > emitted:
            return emitted
        return (oldest[0], oldest[1] - 1)

    async def save_mark(self, mark: tuple[float, int]) -> None:
        """Store how far a restart may start from (the front end's outbox moved on)."""
        await self.books.save_mark(mark)

    # -- ground truth -------------------------------------------------------------------------------
    async def ground_truth(self, *, task_ref: int | None = None, tenant: str | None = None, after: str | None = None,
                           limit: int = 50, receipt_timeout: float = 72 * 3600.0) -> tuple[list[dict[str, Any]], str | None]:
        """One page of what the carrier decided for a task's messages (or, without ``task_ref``,
        a tenant's), ordered by message id.

        Per message: ``platform_id`` (None for a number refused at submission), ``number``,
        ``parts``, ``submitted_at`` (epoch seconds), ``outcome`` (delivered/failed/missing/
        refused), ``code``, ``submit_latency``, ``rule`` (the number rule that forced it, or
        None), ``expected_result`` (what the gateway must end up showing: succeeded/failed/
        receipt_timeout/refused) and ``receipts``, each with ``rid``, ``part``, ``status``,
        ``code``, ``due_at`` (epoch seconds), ``duplicate``, ``swallowed`` (due inside a receipts
        outage: never emitted) and ``emitted_at`` (epoch seconds it was handed to the front end,
        None until then)."""
        rows = await self.books.ground_truth_rows(task_ref, after or "", limit + 1, tenant)
        more = len(rows) > limit
        rows = rows[:limit]
        items = await self._items(rows, receipt_timeout)
        return items, (rows[-1][0] if more and rows else None)

    async def messages(self, tenant: str | None, msg_ids: list[str], receipt_timeout: float = 72 * 3600.0) -> list[dict]:
        """The ground truth of these messages of one tenant (see ``ground_truth``)."""
        return await self._items(await self.books.message_rows(tenant, msg_ids), receipt_timeout)

    async def _items(self, rows: list[tuple], receipt_timeout: float) -> list[dict[str, Any]]:
        if not rows:
            return []
        log = await self.books.emission_log()
        marks = [(d, i) for d, i, _ in log]
        items = []
        for msg_id, number, parts, submitted_at, outcome, code, latency, rule, planned_rows, extra in rows:
            planned = []
            for rid, part, status, rcode, due_at, dup, swallowed in planned_rows:
                emitted_at = None
                if not swallowed:
                    k = bisect_left(marks, (due_at, rid))  # the first emission batch that reached it
                    emitted_at = log[k][2] if k < len(log) else None
                planned.append({"rid": rid, "part": part, "status": status, "code": rcode, "due_at": due_at,
                                "duplicate": bool(dup), "swallowed": bool(swallowed), "emitted_at": emitted_at})
            if outcome == "refused":
                expected = "refused"
            else:
                expected = expected_result(
                    parts, submitted_at, [(r["due_at"], r["part"], r["status"], r["swallowed"]) for r in planned],
                    receipt_timeout)
            items.append({
                "platform_id": None if outcome == "refused" else msg_id, "number": number, "parts": parts,
                "submitted_at": submitted_at, "outcome": outcome, "code": code, "submit_latency": latency,
                "rule": rule, "expected_result": expected, "receipts": planned, "_id": msg_id, "_extra": extra,
            })
        return items
