"""The one writer path for message results: recorded batches, receipts, the receipt-timeout sweep
and the retention purge all go through ``MessageResults``, which owns the fresh-message cache
(``gateway/storage/fresh.py``) and hands it to the store with every operation that changes
message rows. So the cache is filled and invalidated inside those transactions, and no caller has
to remember to do it.

The timeout rule is ``gateway.domain.receipt_fold``'s: the sweep's bound comes from
``submitted_before``, the receipts are judged by ``is_late`` inside the fold.
"""

from __future__ import annotations

from gateway.domain import receipt_fold as F
from gateway.platform import Receipt
from gateway.storage.fresh import FreshMessages
from gateway.storage.messages import BatchRecord, MessageStore, Tally

PURGE_CHUNK = 50_000  # rows deleted per transaction: a purge must not hold the writer for long

_TIMED_OUT_REASONS = F.timed_out_state()[2]


class MessageResults:
    def __init__(self, store: MessageStore, config):
        self.store = store
        self.config = config
        # None for a store that must not trust a process-local copy (PostgreSQL: other instances
        # change the same rows)
        self.fresh = FreshMessages() if getattr(store, "uses_fresh_cache", True) else None

    async def record_batch(self, batch: BatchRecord) -> None:
        """Record a dispatch batch (see ``MessageStore.record_batch``); its rows become fresh."""
        await self.store.record_batch(batch, self.fresh)

    async def apply_receipts(self, items: list[tuple[str, Receipt]], now: float, expected: dict[str, set[str]],
                             scoped: dict[int, list[tuple[str, Receipt]]] | None = None) -> Tally:
        """Fold receipts in one transaction (see ``MessageStore.apply_receipts``)."""
        return await self.store.apply_receipts(items, self.config.receipt_timeout, now, expected, self.fresh, scoped)

    async def sweep_timeouts(self, now: float) -> int:
        """Fail every number still pending past its deadline at ``now``, one transaction per task;
        returns how many."""
        before = F.submitted_before(now, self.config.receipt_timeout)
        swept = 0
        for task_id in await self.store.tasks_to_sweep(before):
            swept += await self.store.sweep_timeouts(task_id, before, _TIMED_OUT_REASONS, now, self.fresh)
        return swept

    async def purge_expired(self, now: float, chunk: int = PURGE_CHUNK) -> None:
        """Delete the per-number details of tasks whose retention ended, a chunk per transaction."""
        for task_id in await self.store.tasks_to_purge(now):
            while not await self.store.purge(task_id, chunk, self.fresh):
                pass
