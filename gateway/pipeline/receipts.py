"""The receipt sink: group commit of receipts into the one writer path for message results.

Receipts from every platform queue in memory and are flushed together (group commit: up to
``receipt_flush_max`` at once, at once when the writer is free and a batch is waiting, after a
few milliseconds when only a few single receipts arrived) in one transaction of
``MessageResults.apply_receipts``: the fold (``gateway.domain.receipt_fold``) over the messages
they name, the rows and their tasks' counters changed together. ``deliver`` returns only when
the transaction holding its receipts has committed (group commit), so a webhook acknowledged to
a platform is never lost. Counters change in the same transaction as the rows they count, which
is what keeps ``sent = succeeded + failed + pending`` true at every commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from itertools import repeat
from typing import Any, Awaitable, Callable

from gateway.platform import Receipt
from gateway.storage.errors import StorageUnavailable
from gateway.storage.messages import Tally

from .results import MessageResults

log = logging.getLogger(__name__)


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
    that names an expected id waits in memory (set aside before its flush goes to the database,
    or held by the store when the ``expect`` came while the flush was on its way) and is applied
    by the next flush after its batch is recorded; its ``deliver`` call returns then, so nothing is
    acknowledged before it is durable. Receipts for ids nobody expects are kept aside in
    ``unmatched_receipts`` at once, as before (and the dispatcher still matches those when a
    later acknowledgement names them).

    Receipts posted with a workspace's token (``deliver(..., workspace=)``) are applied only to
    that workspace's messages (see ``MessageStore.apply_receipts``). A flush that fails for any
    reason but the storage itself (a bad receipt from a plugin, say) is retried entry by entry,
    so one bad ``deliver`` call fails alone instead of failing every request that shared its
    transaction."""

    def __init__(self, results: MessageResults, clock, config,
                 on_committed: Callable[[dict[str, list[Receipt]], Tally], Awaitable[Any]]):
        self.results = results
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
            if len(entries) == 1 or isinstance(exc, StorageUnavailable):
                log.warning("receipt flush failed: %s", exc, exc_info=not isinstance(exc, StorageUnavailable))
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
        # A receipt held for an id that was recorded while its flush was still running (the
        # store decided to hold it before the record committed; ``recorded`` then found the
        # waiting room without it) goes again now: waiting for a ``recorded`` that has come
        # and gone would leave it, and its deliver call, waiting for ever.
        for entry in held:
            platform, receipt = entry[0], entry[1]
            (self._held if receipt.platform_id in self._expected.get(platform, ()) else self._retry).append(entry)
        if self._retry:
            self._wake.set()
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
        entries, waiting_record = self._set_aside_expected(entries)
        pairs: list[tuple[str, Receipt]] = []
        scoped: dict[int, list[tuple[str, Receipt]]] = {}
        for platform, receipts, _, ws in entries:
            (pairs if ws is None else scoped.setdefault(ws, [])).extend(zip(repeat(platform), receipts))
        now = self.clock.now()
        if pairs or scoped:
            tally = await self.results.apply_receipts(pairs, now, self._expected, scoped or None)
        else:  # every one waits for its record
            tally = Tally()
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
        return by_platform, tally, held + waiting_record

    def _set_aside_expected(self, entries: list) -> tuple[list, list]:
        """The receipts naming an id whose acknowledgement is being recorded right now
        (``expect``) wait for ``recorded`` without a trip to the database: the transaction
        would find no message, and they would be held anyway (``Tally.hold_expected``). A
        platform whose receipts overtake the dispatcher's record (SMPP: the receipt follows the
        ``submit_sm_resp`` at once, the record waits for the whole batch) sends most of them so.
        Returns the entries with those receipts taken out, and them as held entries."""
        expected = self._expected
        if not any(expected.values()):
            return entries, []
        kept: list = []
        aside: list = []
        for entry in entries:
            platform, receipts, delivery, ws = entry
            ids = expected.get(platform)
            if not ids:
                kept.append(entry)
                continue
            rest = []
            for receipt in receipts:
                if receipt.platform_id in ids:
                    aside.append((platform, receipt, delivery, ws))
                else:
                    rest.append(receipt)
            if len(rest) == len(receipts):
                kept.append(entry)
            elif rest:
                kept.append((platform, rest, delivery, ws))
        return kept, aside
