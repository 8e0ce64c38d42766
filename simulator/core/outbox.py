"""What a front end hands out one acknowledgement at a time: receipts pushed as webhooks (the
HTTP API), receipts and mobile-originated messages sent as ``deliver_sm`` to SMPP binds.

The core emits due receipts in order, once (``CarrierCore.emit``). Their delivery then has a
life of its own: a webhook fails and is retried on the provider's schedule; an SMPP receipt waits
for its account's receiver to bind, goes out, and is sent again until the client acknowledges it.
An item is ``waiting`` (to go at ``next_at``), ``sent`` (``acked_at`` set once acknowledged),
``abandoned`` (the retry schedule ran out) or ``not_requested`` (the client asked for none).

Items live in memory while they are open, and each receipt is written to ``sim_outbox`` once,
in its final state (acknowledged, abandoned, not requested), in batches every few milliseconds:
the SMSC handles tens of thousands a second, and one write per receipt instead of three was the
difference between its disk thread keeping up or not. An open receipt, or a final one whose row
is not written yet, is not lost in a crash because the core's emission watermark never passes it
(``low_water``): a restarted carrier emits
again every receipt after the mark that has no final row, and the client sees at most a copy
(receipts are idempotent for whoever receives them). Mobile-originated messages, which the core
would not emit again, are written when they arrive.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import Any, Awaitable, Callable, Iterable

import msgspec

from gateway.storage.sqlite import bulk

log = logging.getLogger(__name__)

WAITING, SENT, ABANDONED, NOT_REQUESTED = 0, 1, 3, 4
RECEIPT, MO = 0, 1
STATE_NAMES = {WAITING: "planned", SENT: "sent", ABANDONED: "abandoned", NOT_REQUESTED: "not_requested"}
FLUSH_SECONDS = 0.02
DELIVERY_TICK = 0.05  # real seconds between a front end's looks, for items that wait for a later time


class OutItem(msgspec.Struct, array_like=True, gc=False):
    """One item to deliver. ``rid`` is the receipt id the core gave it (mobile-originated messages
    get ids from the outbox's own negative range); ``body`` carries an MO's text and addresses."""

    rid: int
    tenant: str | None
    kind: int
    msg_id: str
    part: int | None
    status: str | None
    code: str | None
    due_at: float
    state: int = WAITING
    attempts: int = 0
    next_at: float = 0.0
    sent_at: float | None = None
    acked_at: float | None = None
    last_error: str | None = None
    body: str | None = None

    @property
    def open(self) -> bool:
        return self.state == WAITING or (self.state == SENT and self.acked_at is None)


class Ended(msgspec.Struct, array_like=True, gc=False):
    """A receipt's row in ``sim_outbox``: what happened to it (the rest is in its batch)."""

    rid: int
    due_at: float
    state: int
    attempts: int
    sent_at: float | None
    acked_at: float | None
    last_error: str | None


_decode_ended = msgspec.json.Decoder(list[Ended]).decode
_decode_mo = msgspec.json.Decoder(list[tuple[int, float, int, int, float | None, float | None, str | None, str]]).decode


class Outbox:
    """Open items by receipt id; per tenant a heap of the waiting ones by (next_at, due, rid), so
    taking what is due costs a pop per item however many wait (an SMPP account with no receiver
    bound can have a backlog of millions); and a heap of the open receipts by (due, rid), whose
    top is how far the core's emission is safely behind us (``low_water``)."""

    def __init__(self, db):
        self.db = db
        self.items: dict[int, OutItem] = {}  # the open ones
        self._heaps: dict[str | None, list[tuple[float, float, int]]] = {}
        self._open_receipts: list[tuple[float, int]] = []
        self._dirty: dict[int, OutItem] = {}
        self._flushing: set[int] = set()
        self._flusher: asyncio.Task | None = None
        self._next_mo = -1
        self.listeners: list[Callable[[], None]] = []  # told when items arrive or wait again
        self.after_flush: Callable[[], object] | None = None  # an awaitable the flush loop runs after each write

    async def load(self) -> None:
        """The open mobile-originated messages (open receipts come again from the core)."""
        for rid, due_at, state, attempts, sent_at, acked_at, last_error, mo in await self.db.read(_open_mos):
            tenant, msg_id, body, next_at = msgspec.json.decode(mo)
            self._hold(OutItem(rid, tenant, MO, msg_id, None, None, None, due_at, state, attempts, next_at, sent_at,
                               acked_at, last_error, body))
        low = await self.db.fetchone("SELECT MIN(rid) FROM sim_outbox")
        self._next_mo = min((low[0] or 0) - 1, -1)
        self._flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")

    async def finished_after(self, mark: tuple[float, int]) -> set[int]:
        """Receipt ids after an emission mark that reached their final state: a restarted core
        leaves them out when it queues what is after the mark again."""
        rows = await self.db.fetchall(
            "SELECT rid FROM sim_outbox WHERE mo IS NULL AND (due_at > ? OR (due_at = ? AND rid > ?))",
            (mark[0], mark[0], mark[1]))
        return {rid for (rid,) in rows}

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            self._flusher = None
        await self.flush()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def _hold(self, item: OutItem) -> None:
        self.items[item.rid] = item
        if item.kind == RECEIPT:
            heapq.heappush(self._open_receipts, (item.due_at, item.rid))
        if item.state == WAITING:
            self._queue(item)

    # -- arriving -----------------------------------------------------------------------------------
    def accept(self, rows: list[tuple], tenant_of) -> list[OutItem]:
        """Receipts the core emitted, ``(due, rid, id, part, status, code)`` rows (an id already
        held is kept as it is)."""
        items = self.items
        fresh = []
        for due, rid, msg_id, part, status, code in rows:
            if rid not in items:
                item = OutItem(rid, tenant_of(msg_id), RECEIPT, msg_id, part, status, code, due, next_at=due)
                self._hold(item)
                fresh.append(item)
        self._notify()
        return fresh

    async def add_mo(self, tenant: str | None, msg_id: str, at: float, body: dict) -> OutItem:
        """A mobile-originated message to deliver to ``tenant`` (the SMSC's ``POST /mo``), written
        at once: nothing else would bring it back after a crash."""
        item = OutItem(self._next_mo, tenant, MO, msg_id, None, None, None, at, next_at=at,
                       body=msgspec.json.encode(body).decode())
        self._next_mo -= 1
        await self.db.write(_upsert, [item])
        self._hold(item)
        self._notify()
        return item

    # -- what to send -------------------------------------------------------------------------------
    def _queue(self, item: OutItem) -> None:
        heap = self._heaps.get(item.tenant)
        if heap is None:
            heap = self._heaps[item.tenant] = []
        heapq.heappush(heap, (item.next_at, item.due_at, item.rid))

    def take(self, now: float, tenant: str | None, limit: int) -> list[OutItem]:
        """Up to ``limit`` of the tenant's items due to go at ``now``, oldest first, taken off the
        queue: the caller sends them (``sent``), or gives them back (``again``)."""
        heap = self._heaps.get(tenant)
        out: list[OutItem] = []
        items = self.items
        while heap and heap[0][0] <= now and len(out) < limit:
            next_at, _, rid = heapq.heappop(heap)
            item = items.get(rid)
            if item is not None and item.state == WAITING and item.next_at == next_at:
                out.append(item)
        return out

    def next_at(self, tenant: str | None) -> float | None:
        """When the tenant's next waiting item is due (None: nothing waits)."""
        heap = self._heaps.get(tenant)
        while heap:
            next_at, _, rid = heap[0]
            item = self.items.get(rid)
            if item is not None and item.state == WAITING and item.next_at == next_at:
                return next_at
            heapq.heappop(heap)  # stale: the item moved on
        return None

    def busy(self, now: float, tenant: str | None = None, *, every_tenant: bool = True) -> int:
        """Open items that are moving now: sent and not acknowledged yet, or waiting and due (of
        one tenant, or of all). Zero means everything due has been delivered (what is left waits
        for a later time or a receiver to bind): a test that advanced the clock waits for this
        before it looks."""
        return sum(1 for i in self.items.values()
                   if (every_tenant or i.tenant == tenant)
                   and ((i.state == SENT and i.acked_at is None) or (i.state == WAITING and i.next_at <= now)))

    def open_of(self, tenant: str) -> int:
        return sum(1 for i in self.items.values() if i.tenant == tenant)

    def low_water(self) -> tuple[float, int] | None:
        """The (due, rid) of the oldest receipt that is open, or final but not yet on disk (a
        restart must emit it again: ground truth would otherwise show it as never delivered), or
        None when there is none."""
        heap = self._open_receipts
        items, dirty, flushing = self.items, self._dirty, self._flushing
        while heap and heap[0][1] not in items and heap[0][1] not in dirty and heap[0][1] not in flushing:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def unacked_before(self, instant: float) -> list[OutItem]:
        """Items sent at or before ``instant`` and not acknowledged (to be sent again)."""
        return [item for item in self.items.values() if item.state == SENT and item.acked_at is None
                and item.sent_at is not None and item.sent_at <= instant]

    # -- state changes ------------------------------------------------------------------------------
    def _final(self, item: OutItem) -> None:
        self.items.pop(item.rid, None)
        self._dirty[item.rid] = item

    def sent(self, items: Iterable[OutItem], at: float, acked: bool = False) -> None:
        """Handed out (to the socket, to the callback); with ``acked`` also acknowledged."""
        for item in items:
            item.state = SENT
            item.attempts += 1
            item.sent_at = at
            item.last_error = None
            if acked:
                item.acked_at = at
                self._final(item)
            elif item.kind == MO:
                self._dirty[item.rid] = item

    def acked(self, item: OutItem, at: float) -> None:
        if item.acked_at is None:
            item.acked_at = at
            self._final(item)

    def again(self, items: Iterable[OutItem], at: float, error: str | None = None) -> None:
        """Back to waiting: to be sent again at ``at``."""
        for item in items:
            if item.rid not in self.items:
                continue  # acknowledged or abandoned meanwhile
            item.state = WAITING
            item.next_at = at
            if error is not None:
                item.last_error = error
            self._queue(item)
            if item.kind == MO:
                self._dirty[item.rid] = item
        self._notify()

    def not_requested(self, items: Iterable[OutItem], at: float) -> None:
        """The client asked for no such receipt (SMPP ``registered_delivery``): never sent."""
        for item in items:
            item.state = NOT_REQUESTED
            item.next_at = at
            self._final(item)

    def failed(self, items: Iterable[OutItem], at: float, error: str, schedule: tuple[float, ...]) -> int:
        """A delivery failed: each item is retried after ``schedule[attempts]`` seconds, or
        abandoned once the schedule ran out. Returns how many were abandoned."""
        abandoned = 0
        for item in items:
            item.attempts += 1
            item.last_error = error
            if item.attempts <= len(schedule):
                item.state = WAITING
                item.next_at = at + schedule[item.attempts - 1]
                self._queue(item)
            else:
                item.state = ABANDONED
                item.next_at = at
                self._final(item)
                abandoned += 1
        return abandoned

    # -- persistence --------------------------------------------------------------------------------
    async def flush(self) -> None:
        if self._dirty:
            dirty, self._dirty = list(self._dirty.values()), {}
            self._flushing = {item.rid for item in dirty}  # still holding the watermark until written
            try:
                await self.db.write(_upsert, dirty)
            except Exception:
                for item in dirty:  # written next time
                    self._dirty.setdefault(item.rid, item)
                raise
            finally:
                self._flushing = set()
        if self.after_flush is not None:
            await self.after_flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("the outbox could not be written; retrying")

    async def of_receipts(self, rids: list[int]) -> dict[int, OutItem | Ended]:
        """What happened to these receipts (open ones from memory), for ground truth."""
        await self.flush()
        found: dict[int, OutItem | Ended] = {e.rid: e for e in await self.db.read(_ended, rids)}
        for rid in rids:
            item = self.items.get(rid)
            if item is not None:
                found[rid] = item
        return found


def _open_mos(conn) -> list[tuple]:
    return conn.execute("SELECT rid, due_at, state, attempts, sent_at, acked_at, last_error, mo FROM sim_outbox"
                        " WHERE mo IS NOT NULL AND (state = 0 OR (state = 1 AND acked_at IS NULL))").fetchall()


def _ended(conn, rids: list[int]) -> list[Ended]:
    return bulk.fetch(conn, "SELECT json_group_array(json_array(rid, due_at, state, attempts, sent_at, acked_at, last_error))"
                            " FROM sim_outbox WHERE rid IN (SELECT value FROM json_each(?))",
                      (bulk.encode(rids),), _decode_ended)


def _upsert(conn, items: list[OutItem]) -> None:
    """One row per item, in one statement: a receipt's seven values (an MO's too, with what an MO
    needs to be sent after a restart)."""
    rows = [(i.rid, i.due_at, i.state, i.attempts, i.sent_at, i.acked_at, i.last_error,
             None if i.kind == RECEIPT else bulk.encode([i.tenant, i.msg_id, i.body, i.next_at]).decode())
            for i in items]
    conn.execute(
        "INSERT OR REPLACE INTO sim_outbox(rid, due_at, state, attempts, sent_at, acked_at, last_error, mo)"
        " SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 FROM json_each(?)",
        (bulk.encode(rows),))


async def keep_delivering(outbox: Outbox, deliver: Callable[[], Awaitable[Any]], wake: asyncio.Event,
                          logger: logging.Logger, failure: str) -> None:
    """A front end's delivery loop (the SMSC's receipts, Twilio's callbacks, Alibaba's pushes):
    ``deliver()`` whenever the outbox has news or the front end sets ``wake`` itself (a client
    acknowledged, a window has room), and at least every ``DELIVERY_TICK`` for items that wait
    for a later time. A failure is logged as ``failure`` and tried again on the next round."""
    outbox.listeners.append(wake.set)
    while True:
        wake.clear()
        try:
            await deliver()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(failure)
        try:
            async with asyncio.timeout(DELIVERY_TICK):
                await wake.wait()
        except TimeoutError:
            pass
