"""Leases: which gateway instance works on what, for a bounded time.

Several ``smslab serve`` processes on one PostgreSQL database act as one gateway (SPEC §11).
Work that must be done by exactly one of them at a time (a task's dispatch, the receipt-timeout
sweep) is named (``"task:42"``, ``"sweep"``) and leased: the holder renews its lease while it
works; an instance that dies stops renewing, and once its lease has expired another instance
takes the work over. ``SMSLAB_LEASE_SECONDS`` is how long a lease lasts.

Times are the service's clock (``now`` is passed in, epoch seconds), never the database's: the
virtual clock is shared through the database, and tests move it without sleeping. A holder is
a string unique to an instance (its host, pid and start time, say).

A holder must treat a lease it failed to renew as lost and stop that work: another instance
may already have claimed it.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, Sequence


class Lease(NamedTuple):
    name: str
    holder: str | None  # None: released, free to take
    expires_at: float | None


class LeaseStore(Protocol):
    async def acquire(self, name: str, holder: str, now: float, seconds: float) -> bool:
        """Hold ``name`` until ``now + seconds`` if it is free, expired (``expires_at <= now``) or
        already ``holder``'s (then this renews it). True when ``holder`` holds it afterwards.
        Atomic: of two instances acquiring the same free lease at once, exactly one gets it."""
        ...

    async def renew(self, name: str, holder: str, now: float, seconds: float) -> bool:
        """Extend ``holder``'s lease to ``now + seconds``. False if someone else holds it or it was
        released: the work is no longer ``holder``'s. A lease that expired but that no one took
        over is still ``holder``'s and renews (nobody else worked on it in between)."""
        ...

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease up at once (the work is done, or the instance stops), so another
        instance need not wait for it to expire. False if ``holder`` did not hold it."""
        ...

    async def release_all(self, holder: str) -> int:
        """Give up every lease ``holder`` holds (an instance shutting down); how many it held."""
        ...

    async def claim_one(self, candidates: Sequence[str], holder: str, now: float, seconds: float) -> str | None:
        """Take the first of ``candidates`` (in their order: the caller's priority) that nobody
        holds or whose lease expired, for ``holder`` until ``now + seconds``; None if every one is
        held. Names never seen before count as free. A candidate ``holder`` already holds
        unexpired is skipped: it is working on it. Instances claiming at once never get the same
        name and never wait for each other (rows being claimed are skipped, not waited for); so
        a claimer that raced another can come back with None while a candidate was still free,
        which the next round's claim picks up."""
        ...

    async def get(self, name: str) -> Lease | None:
        """The lease as stored (for inspection and tests); None if ``name`` was never leased."""
        ...
