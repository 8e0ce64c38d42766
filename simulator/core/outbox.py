"""What a front end hands out one acknowledgement at a time: receipts pushed as webhooks (the
HTTP API), receipts and mobile-originated messages sent as ``deliver_sm`` to SMPP binds.

The core emits due receipts in order, once (``CarrierCore.emit``). Their delivery then has a
life of its own: a webhook fails and is retried on the provider's schedule; an SMPP receipt waits
for its account's receiver to bind, goes out, and is sent again until the client acknowledges it.
An item is ``waiting`` (to go at ``next_at``), ``sent`` (``acked_at`` set once acknowledged) or
``abandoned`` (the retry schedule ran out).

The items live in memory for speed (tens of thousands a second on the SMSC) and are written to
``sim_outbox`` in batches: ``accept`` inserts at once (in the front end's emission, so the core's
watermark never passes a receipt the outbox does not hold), state changes are flushed every few
milliseconds and at stop. A restart loads the open items, so nothing that was not acknowledged is
lost (it may be sent again: receipts are idempotent for whoever receives them).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import Iterable

import msgspec

from gateway.storage import bulk

log = logging.getLogger(__name__)

WAITING, SENT, ABANDONED, NOT_REQUESTED = 0, 1, 3, 4
RECEIPT, MO = 0, 1
STATE_NAMES = {WAITING: "planned", SENT: "sent", ABANDONED: "abandoned", NOT_REQUESTED: "not_requested"}
FLUSH_SECONDS = 0.02


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


_decode_items = msgspec.json.Decoder(list[OutItem]).decode
_COLUMNS = "rid, tenant, kind, msg_id, part, status, code, due_at, state, attempts, next_at, sent_at, acked_at, last_error, body"


class Outbox:
    """Open items by receipt id, and per tenant a heap of the waiting ones by (next_at, due, rid):
    taking what is due costs a pop per item, however many wait (an SMPP account with no receiver
    bound can have a backlog of millions)."""

    def __init__(self, db):
        self.db = db
        self.items: dict[int, OutItem] = {}  # the open ones
        self._heaps: dict[str | None, list[tuple[float, float, int]]] = {}
        self._dirty: dict[int, OutItem] = {}
        self._flusher: asyncio.Task | None = None
        self._next_mo = -1
        self.changed = asyncio.Event()  # set when items arrive or become waiting again

    async def load(self) -> None:
        rows = await self.db.read(_open_items)
        self.items = {item.rid: item for item in rows}
        for item in rows:
            if item.state == WAITING:
                self._queue(item)
        low = await self.db.fetchone("SELECT MIN(rid) FROM sim_outbox")
        self._next_mo = min((low[0] or 0) - 1, -1)
        self._flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            self._flusher = None
        await self.flush()

    # -- arriving -----------------------------------------------------------------------------------
    async def accept(self, rows: list[tuple], tenant_of) -> list[OutItem]:
        """Receipts the core emitted, ``(due, rid, id, part, status, code)`` rows, written at once
        (an id already held is kept as it is: a re-emission after a crash)."""
        items = [OutItem(rid, tenant_of(msg_id), RECEIPT, msg_id, part, status, code, due, next_at=due)
                 for due, rid, msg_id, part, status, code in rows]
        await self.db.write(_insert, items)
        fresh = [item for item in items if item.rid not in self.items]
        for item in fresh:
            self.items[item.rid] = item
            self._queue(item)
        self.changed.set()
        return fresh

    async def add_mo(self, tenant: str | None, msg_id: str, at: float, body: dict) -> OutItem:
        """A mobile-originated message to deliver to ``tenant`` (the SMSC's ``POST /mo``)."""
        item = OutItem(self._next_mo, tenant, MO, msg_id, None, None, None, at, next_at=at,
                       body=msgspec.json.encode(body).decode())
        self._next_mo -= 1
        await self.db.write(_insert, [item])
        self.items[item.rid] = item
        self._queue(item)
        self.changed.set()
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

    def waiting_count(self, tenant: str | None) -> int:
        return sum(1 for item in self.items.values() if item.tenant == tenant and item.state == WAITING)

    def unacked_before(self, instant: float) -> list[OutItem]:
        """Items sent at or before ``instant`` and not acknowledged (to be sent again)."""
        return [item for item in self.items.values() if item.state == SENT and item.acked_at is None
                and item.sent_at is not None and item.sent_at <= instant]

    # -- state changes ------------------------------------------------------------------------------
    def sent(self, items: Iterable[OutItem], at: float, acked: bool = False) -> None:
        """Handed out (to the socket, to the callback); with ``acked`` also acknowledged."""
        for item in items:
            item.state = SENT
            item.attempts += 1
            item.sent_at = at
            item.last_error = None
            if acked:
                item.acked_at = at
                self.items.pop(item.rid, None)
            self._dirty[item.rid] = item

    def acked(self, item: OutItem, at: float) -> None:
        if item.acked_at is None:
            item.acked_at = at
            self.items.pop(item.rid, None)
            self._dirty[item.rid] = item

    def again(self, items: Iterable[OutItem], at: float, error: str | None = None) -> None:
        """Back to waiting: to be sent again at ``at``."""
        for item in items:
            item.state = WAITING
            item.next_at = at
            if error is not None:
                item.last_error = error
            self._dirty[item.rid] = item
            self._queue(item)
        self.changed.set()

    def not_requested(self, items: Iterable[OutItem], at: float) -> None:
        """The client asked for no such receipt (SMPP ``registered_delivery``): never sent."""
        for item in items:
            item.state = NOT_REQUESTED
            item.next_at = at
            self.items.pop(item.rid, None)
            self._dirty[item.rid] = item

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
                self.items.pop(item.rid, None)
                abandoned += 1
            self._dirty[item.rid] = item
        return abandoned

    # -- persistence --------------------------------------------------------------------------------
    async def flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = list(self._dirty.values()), {}
        try:
            await self.db.write(_update, dirty)
        except Exception:
            for item in dirty:  # written next time
                self._dirty.setdefault(item.rid, item)
            raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("the outbox could not be written; retrying")

    async def of_messages(self, msg_ids: list[str]) -> dict[str, list[OutItem]]:
        """Every item (open or not) of these messages, for ground truth."""
        await self.flush()
        rows = await self.db.read(_of_messages, msg_ids)
        by_msg: dict[str, list[OutItem]] = {}
        for item in rows:
            by_msg.setdefault(item.msg_id, []).append(self.items.get(item.rid, item))
        return by_msg


def _open_items(conn) -> list[OutItem]:
    return bulk.fetch(conn, f"SELECT json_group_array(json_array({_COLUMNS})) FROM sim_outbox"
                            " WHERE state = 0 OR (state = 1 AND acked_at IS NULL)", (), _decode_items)


def _of_messages(conn, msg_ids: list[str]) -> list[OutItem]:
    return bulk.fetch(conn, f"SELECT json_group_array(json_array({_COLUMNS})) FROM sim_outbox"
                            " WHERE msg_id IN (SELECT value FROM json_each(?)) ORDER BY due_at, rid",
                      (bulk.encode(msg_ids),), _decode_items)


def _insert(conn, items: list[OutItem]) -> None:
    conn.execute(
        f"INSERT OR IGNORE INTO sim_outbox({_COLUMNS}) SELECT value->>0, value->>1, value->>2, value->>3, value->>4,"
        " value->>5, value->>6, value->>7, value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14"
        " FROM json_each(?)", (bulk.encode(items),))


def _update(conn, items: list[OutItem]) -> None:
    conn.execute(
        "UPDATE sim_outbox SET state = u.value->>8, attempts = u.value->>9, next_at = u.value->>10, sent_at = u.value->>11,"
        " acked_at = u.value->>12, last_error = u.value->>13 FROM json_each(?) AS u WHERE sim_outbox.rid = u.value->>0",
        (bulk.encode(items),))
