"""Leadership: which of several gateway instances runs the background work.

Several ``smslab serve`` processes on one PostgreSQL database act as one gateway (SPEC §11). Any
of them answers any API call and takes receipts, but the work that time drives (engine steps:
moderation, scheduled starts, the receipt-timeout sweep, completion, the purge; the dispatches;
the in-process carrier's emission) is done by one instance at a time, the *leader*: the holder of
the lease named ``leader`` (``gateway.storage.leases``). One leader means one engine step at a time
for every task, and one owner for the in-process carrier's queue of receipts to emit, which lives
in memory for speed and is rebuilt from the database by whoever takes over
(``Platform.on_leadership``).

The leader renews its lease every fifth of ``SMSLAB_LEASE_SECONDS``; the lease lasts 80% of it and
the others try to take it every tenth, so the work of a leader that dies (``kill -9``) is taken
over within ``SMSLAB_LEASE_SECONDS``. A leader that could not renew for 60% of it (the database
was unreachable, the process stalled) steps down before its lease can have run out, so two
instances never both believe they lead. Should one still record a batch late, the record is
refused (``StaleBatch``): the task's cursor had moved past it.

Lease times are wall-clock seconds (``time.time()``), not the service clock: the virtual clock can
stand still or jump 72 hours, and neither must keep or expire a lease. Instances on several
machines need their clocks in step (NTP), as any lease scheme does.

On SQLite (one instance per file) there are no leases: the instance leads from its start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

LEASE_NAME = "leader"
DURATION = 0.8  # of the lease seconds: how long a lease lasts after each renewal
RENEW_EVERY = 0.2  # of the lease seconds: the leader renews this often
TRY_EVERY = 0.1  # of the lease seconds: the others try to take the lease this often
STEP_DOWN_AFTER = 0.6  # of the lease seconds without a renewal: the leader stops leading


def instance_id() -> str:
    """Unique to this process: its host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    def __init__(self, leases, state, url: str, seconds: float,
                 on_gain: Callable[[], Awaitable[None]], on_loss: Callable[[], Awaitable[None]], *,
                 holder: str | None = None, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.leases = leases  # None: a backend without leases (SQLite): this instance always leads
        self.state = state
        self.url = url  # where the other instances forward what only the leader serves
        self.seconds = float(seconds)
        self.holder = holder or instance_id()
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._wall = wall
        self._monotonic = monotonic
        self.leading = False
        self._renewed_at = 0.0
        self._task: asyncio.Task | None = None
        self._changing = asyncio.Lock()

    @property
    def shared(self) -> bool:
        """Whether other instances may share the database (the backend has leases)."""
        return self.leases is not None

    async def start(self) -> None:
        if self.leases is None:
            await self._gain()
            return
        try:
            await self._round()
        except Exception:
            log.warning("could not try for the leader lease at start; trying again shortly", exc_info=True)
        self._task = asyncio.create_task(self._loop(), name="leadership")

    async def stop(self) -> None:
        """Stop leading and give the lease up at once, so another instance need not wait for it
        to run out."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.leading:
            await self._lose()
            if self.leases is not None:
                try:
                    await self.leases.release(LEASE_NAME, self.holder)
                except Exception:
                    log.warning("could not release the leader lease; it runs out by itself", exc_info=True)

    async def leader_url(self) -> str | None:
        """The URL of the instance that leads now (None when none does, or it is unknown)."""
        if self.leading:
            return self.url
        lease = await self.leases.get(LEASE_NAME) if self.leases is not None else None
        if lease is None or lease.holder is None or (lease.expires_at or 0.0) <= self._wall():
            return None
        return await self.state.leader_url()

    # -- the loop --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.seconds * (RENEW_EVERY if self.leading else TRY_EVERY))
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the leader lease could not be %s", "renewed" if self.leading else "tried", exc_info=True)
            if self.leading and self._monotonic() - self._renewed_at > self.seconds * STEP_DOWN_AFTER:
                log.error("the leader lease was not renewed for %.1f s: stepping down", self.seconds * STEP_DOWN_AFTER)
                await self._lose()

    async def _round(self) -> None:
        started = self._monotonic()
        if self.leading:
            if await self.leases.renew(LEASE_NAME, self.holder, self._wall(), self.seconds * DURATION):
                self._renewed_at = started
            else:
                log.error("another instance holds the leader lease now: stepping down")
                await self._lose()
        # claimed FOR UPDATE SKIP LOCKED: instances trying at once never queue behind each other
        elif await self.leases.claim_one([LEASE_NAME], self.holder, self._wall(), self.seconds * DURATION):
            self._renewed_at = started
            await self.state.save_leader_url(self.url)
            await self._gain()

    async def _gain(self) -> None:
        async with self._changing:
            if self.leading:
                return
            log.info("leading: this instance (%s) runs the engine and the dispatches", self.holder)
            self.leading = True
            try:
                await self._on_gain()
            except BaseException:
                self.leading = False
                raise

    async def _lose(self) -> None:
        async with self._changing:
            if not self.leading:
                return
            self.leading = False
            await self._on_loss()
