"""Audiences: named lists of phone numbers, stored entry by entry.

An audience keeps every entry it was given, classified once when stored (ok, empty, invalid,
duplicate), so a task's skipped counts come straight from it. Entries are written in batches as
they arrive, so an upload of millions of numbers never sits in memory whole; the audience
becomes usable (``ready``) only when the last entry is in and duplicates were marked.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import paging
from .domain import numbers as N
from .errors import Conflict, NotFound
from .storage.audiences import KIND_EMPTY, KIND_INVALID, KIND_OK, AudienceRow, AudienceStore
from .storage.errors import NameTaken

log = logging.getLogger(__name__)

KIND_CODES = {N.OK: KIND_OK, N.EMPTY: KIND_EMPTY, N.INVALID: KIND_INVALID}
WRITE_BATCH = 5000
# with several instances on one database, an upload holds the lease ``upload:{audience id}`` for
# this long after each batch it writes: the sweep of another instance leaves it alone meanwhile
UPLOAD_LEASE_SECONDS = 600.0


def name_taken(name: str) -> Conflict:
    return Conflict(f"name: an audience named {name!r} already exists in this workspace", field="name", code="name_taken")


class Uploads:
    """The audiences being uploaded by this process, and the sweep of abandoned ones.

    An audience is written entry by entry and becomes visible (``ready``) only when complete. One
    left half-written — the process was killed mid-upload, or the disk filled up and even the
    clean-up failed — would keep its rows (and the disk full) for ever: ``sweep`` deletes the
    unready audiences that no upload of this process is writing, at start and then periodically
    (the engine calls it).

    Why a periodic sweep deletes only what two sweeps in a row found abandoned: an upload's
    audience exists (committed) a moment before the upload marks it active, and a sweep reading
    the unready audiences in that moment would take a live upload for an abandoned one. At start
    nothing of this process can be uploading, so that sweep deletes at once.

    With several instances on one database (``leases`` given), the others' uploads are not in
    ``active``: each upload holds a lease (``upload:{id}``, renewed as it writes), and the sweep
    deletes only audiences whose lease ran out or was never taken, two sweeps in a row, at start
    too (another instance may be uploading while this one starts)."""

    def __init__(self, store: AudienceStore, leases=None, holder: str = "") -> None:
        self.store = store
        self.leases = leases
        self.holder = holder
        self.active: set[int] = set()
        self._suspects: set[int] = set()  # found abandoned by the last sweep

    async def sweep(self, at_start: bool = False) -> int:
        """Delete abandoned partial audiences; returns how many."""
        unready = await self.store.unready()
        idle = {aid for aid in unready if aid not in self.active}
        if self.leases is not None:
            now = time.time()
            for aid in list(idle):
                lease = await self.leases.get(f"upload:{aid}")
                if lease is not None and lease.holder is not None and (lease.expires_at or 0.0) > now:
                    idle.discard(aid)  # another instance is writing it
        abandoned = idle if at_start and self.leases is None else idle & self._suspects
        self._suspects = idle - abandoned
        for aid in sorted(abandoned):
            await self.store.remove_unready(aid)
        return len(abandoned)

    async def hold(self, audience_id: int) -> None:
        """Mark an upload of this process as live (for the other instances' sweeps too)."""
        self.active.add(audience_id)
        if self.leases is not None:
            await self.leases.acquire(f"upload:{audience_id}", self.holder, time.time(), UPLOAD_LEASE_SECONDS)

    async def let_go(self, audience_id: int) -> None:
        self.active.discard(audience_id)
        if self.leases is not None:
            try:
                await self.leases.release(f"upload:{audience_id}", self.holder)
            except Exception:  # it runs out by itself
                log.warning("could not release the lease of upload %s", audience_id, exc_info=True)


class AudienceWriter:
    """Streams entries into a new audience: ``begin``, ``add`` repeatedly, then ``finish`` (or
    ``abort``). Entries reach the store a batch (``WRITE_BATCH``) at a time."""

    def __init__(self, uploads: Uploads, clock, region: str, workspace_id: int, name: str, source: str = "upload",
                 source_task_id=None):
        self.store, self.uploads, self.clock, self.region = uploads.store, uploads, clock, region
        self.workspace_id, self.name, self.source, self.source_task_id = workspace_id, name, source, source_task_id
        self.audience_id: int | None = None
        self.seq = 0
        self._pending: list[tuple] = []

    async def begin(self) -> None:
        """Create the (not yet ready) audience: a taken name is refused before any entry is read."""
        try:
            self.audience_id = await self.store.begin(self.workspace_id, self.name, self.source, self.source_task_id,
                                                      self.clock.now())
        except NameTaken:
            raise name_taken(self.name) from None
        await self.uploads.hold(self.audience_id)
        self._held_at = time.monotonic()

    async def add(self, raws: list[Any]) -> None:
        if self.audience_id is None:
            await self.begin()
        classify, region = N.classify, self.region
        for raw in raws:
            if raw is not None and not isinstance(raw, str):
                raw = str(raw)
            kind, e164 = classify(raw, region)
            self._pending.append((self.audience_id, self.seq, raw, e164, KIND_CODES[kind]))
            self.seq += 1
        if len(self._pending) >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        await self.store.add_entries(rows)
        if self.uploads.leases is not None and time.monotonic() - self._held_at > UPLOAD_LEASE_SECONDS / 10:
            await self.uploads.hold(self.audience_id)  # still writing: renew the lease
            self._held_at = time.monotonic()

    async def finish(self) -> AudienceRow:
        if self.audience_id is None:
            await self.begin()
        await self._flush()
        await self.store.complete(self.audience_id, self.seq)
        await self.uploads.let_go(self.audience_id)
        return await get(self.store, self.workspace_id, self.audience_id)

    async def abort(self) -> None:
        """Remove what was written. Should that fail too (a full disk), the rows are left to
        ``Uploads.sweep``, which no longer sees this upload as active."""
        if self.audience_id is None:
            return
        await self.uploads.let_go(self.audience_id)
        try:
            await self.store.discard(self.audience_id)
        except Exception:
            log.warning("could not remove the partial audience %s now; the sweep will", self.audience_id, exc_info=True)


async def get(store: AudienceStore, workspace_id: int, audience_id: int) -> AudienceRow:
    row = await store.get(workspace_id, audience_id)
    if row is None:
        raise NotFound(f"audience {audience_id} not found")
    return row


async def page(store: AudienceStore, workspace_id: int, limit: int, cursor: int | None) -> paging.Page:
    rows = await store.page(workspace_id, limit + 1, cursor)
    return paging.Page.of(rows, limit)


async def delete(store: AudienceStore, workspace_id: int, audience_id: int) -> None:
    await get(store, workspace_id, audience_id)
    await store.delete(audience_id)
