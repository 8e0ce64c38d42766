"""The simulated carrier as an in-process platform named ``sim``: a front end of the carrier core
(``simulator/core``) inside the gateway.

The core keeps its books (``core/books.py``) in a SQLite file of its own next to a SQLite
gateway's (``store.py``; its own writer thread, for speed), or, on a ``postgresql://`` gateway, in
the gateway's own database (``core/books_postgres.py``), so that the several instances of one
gateway (SPEC §11) share one carrier and the instance that takes over finds it where the previous
one left it (``on_leadership``). The receipts still to emit wait in memory, in due order;
``on_clock`` hands those due to the gateway's receipt sink, and the core records how far it has
emitted only after the sink committed them, so a crash re-emits at most a few receipts, which the
sink recognises as duplicates. Because its state is on disk, a restarted gateway finds the
carrier exactly where it was: the "operator" keeps working.

Faults on top of the decisions of ``model.decide`` (all documented in docs/simulator.md):
- outage windows on the service clock: during a ``submit`` outage ``submit`` raises a retryable
  PlatformError; receipts due inside a ``receipts`` outage are planned as swallowed (kept in
  ground truth, never emitted);
- a throughput limit over a sliding one-second window of *real* (monotonic) time: a batch that
  does not fit is refused whole with ``Throttled``, so the gateway waits and sends it again;
- number rules ("magic numbers"), including numbers refused at submission.

Each workspace has a carrier of its own (``for_workspace``, a core tenant keyed by the workspace
id): its profile, presets, outage windows, throughput window and reset, so one QA engineer's
``outage`` preset does not break a colleague's run. Decisions are keyed as for a carrier of its
own (``{task}:{number}``). A workspace that never changed its profile follows the service's
default (``--profile``, or the built-in one); the carrier object itself is that default.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any, Callable

from gateway.clock import to_rfc3339
from gateway.platform import (InboundMessage, Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult,
                              Throttled)
from gateway.storage.postgres.db import Database as PostgresDatabase
from gateway.wire.codes import error_text

from . import profile as profiles
from .core import CarrierCore, CarrierTenant
from .core.books_postgres import PostgresBooks
from .core.books_sqlite import SqliteBooks
from .store import adopt_from_gateway, carrier_db_path, open_carrier_db


MO_RECIPIENT = "10690000"  # the short code replies go to when they name none


class WorkspaceCarrier(Platform):
    """The ``sim`` platform as one workspace sees it (``SimulatedCarrier.for_workspace``)."""

    name = "sim"
    # receipts pushed to /api/v1/platforms/sim/receipts (QA injecting receipts by hand, load
    # tests) carry the caller's bearer token instead of a signature
    webhook_requires_token = True
    description = "The simulated carrier: seeded, reproducible delays, failures, duplicates and missing receipts."

    def __init__(self, carrier: "SimulatedCarrier", tenant: CarrierTenant):
        self.carrier = carrier
        self.tenant = tenant

    @property
    def profile(self) -> profiles.Profile:
        return self.tenant.profile

    @property
    def outages_anchor(self) -> float | None:
        return self.tenant.outages_anchor

    @property
    def throttled(self) -> int:
        return self.tenant.throttled

    @property
    def outage_refusals(self) -> int:
        return self.tenant.outage_refusals

    def for_workspace(self, workspace_id: int | None) -> "WorkspaceCarrier":
        return self.carrier.for_workspace(workspace_id)

    async def set_profile(self, profile: profiles.Profile) -> None:
        await self.carrier.core.set_profile(self.tenant, profile)

    async def reset(self, profile: profiles.Profile | None = None) -> None:
        """Forget this workspace's messages and planned receipts (see ``CarrierCore.reset``). The
        gateway's own messages are untouched: numbers still pending there get no receipt any more
        and end as RECEIPT_TIMEOUT."""
        tasks: set[int] = set()

        def forgotten(row: tuple) -> bool:  # a queued receipt of this workspace's tasks
            return _task_of(row[2]) in tasks

        core = self.carrier.core
        tasks.update(await core.books.tasks_of(self.tenant.key))
        await core.reset(self.tenant, profile, forgotten)

    def max_recipients(self) -> int | None:
        return self.profile.max_recipients

    def moderation_delay(self) -> float:
        return self.profile.moderation.review_seconds

    async def moderate(self, text: str, task: dict) -> list[str]:
        lowered = text.lower()
        return [f"the content contains the banned word \"{w}\"" for w in self.profile.moderation.banned_words if w.lower() in lowered]

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        return await self.carrier._submit(self.tenant, batch)

    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """The same body as the standalone carrier's webhooks; the bearer token (checked by the
        route, see ``webhook_requires_token``) stands in for the signature."""
        from gateway.wire.webhooks import decode_receipts

        return decode_receipts(body, now, error_text)

    async def mobile_originated(self, sender: str, text: str, recipient: str | None = None) -> InboundMessage:
        """A handset replies (a mobile-originated message, as an SMSC's ``deliver_sm``): handed to
        the gateway through the platform context as an inbound message of this workspace (the
        carrier of the default belongs to none). Returns the message as handed over."""
        ctx = self.carrier.ctx
        message = InboundMessage(sender=sender, recipient=recipient or MO_RECIPIENT, text=text, at=ctx.clock.now(),
                                 platform_id=f"sim-mo-{uuid.uuid4().hex}")
        workspace = int(self.tenant.key) if self.tenant.key is not None else None
        await ctx.deliver_inbound(self.name, [message], workspace)
        return message

    async def ground_truth(self, task_id: int, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of what the carrier decided for a task's messages, ordered by platform id
        (see ``CarrierCore.ground_truth``); receipt times stay epoch seconds (``due_at``),
        ``emitted_at`` is RFC 3339: when it was handed to the gateway."""
        timeout = getattr(self.carrier.ctx.config, "receipt_timeout", 72 * 3600.0)
        items, cursor = await self.carrier.core.ground_truth(task_ref=task_id, after=after, limit=limit,
                                                             receipt_timeout=timeout)
        for item in items:
            del item["_id"], item["_extra"]
            for r in item["receipts"]:
                del r["rid"]
                r["emitted_at"] = to_rfc3339(r["emitted_at"])
        return items, cursor

    def describe(self) -> dict:
        info = super().describe()
        profile = self.profile
        info.update(
            receipts="in-process",
            part_policy=profile.part_policy,
            throughput_limit=profile.throughput_limit,
            seed=profile.seed,
            outages_anchor=to_rfc3339(self.outages_anchor),
            throttled_batches=self.tenant.throttled,
            outage_refusals=self.tenant.outage_refusals,
            receipts_queued=len(self.carrier.core.due),
        )
        return info


class SimulatedCarrier(WorkspaceCarrier):
    """The ``sim`` platform: the core every workspace's carrier shares, and itself the carrier of
    the service's default profile (what a workspace uses until it sets its own)."""

    name = "sim"

    def __init__(self, profile: profiles.Profile | None = None, *, monotonic: Callable[[], float] = time.monotonic):
        self.core = CarrierCore(None, None, monotonic=monotonic, default_profile=profile)
        super().__init__(self, self.core.default)
        self._views: dict[int, WorkspaceCarrier] = {}
        self._wake_handle: asyncio.TimerHandle | None = None
        self.startup_profile: profiles.Profile | None = None  # `smslab serve --profile`, set by the plugin
        self._led = False  # on_leadership was called since start

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        target = sim_db_target(ctx)
        if target is None:  # a PostgreSQL gateway: the carrier's books live in its database
            self.db = ctx.database
            self._own_db = False
            books = PostgresBooks(ctx.database)
            await books.open()
        else:
            self.db = db = await open_carrier_db(target)
            self._own_db = True
            if _is_sqlite_file(ctx.database):  # older versions' data only ever lived in a SQLite file
                await adopt_from_gateway(db, ctx.database)
                await _fill_in_workspaces(db, ctx.database)
            books = SqliteBooks(db)
        self.core.books, self.core.clock = books, ctx.clock
        await self.core.load(ctx.extras.get("sim_profile") or self.startup_profile)
        self._led = False

    async def stop(self) -> None:
        if getattr(self, "_own_db", False):  # the gateway's PostgreSQL database is the gateway's to close
            await self.db.close()

    async def on_leadership(self) -> None:
        """This instance now runs the carrier (submits and emits). Another instance may have run
        it since this one loaded its books (its submissions, emissions, profile changes are in
        the shared database, not in this one's memory), so the carrier reloads from the books
        (``CarrierCore.reload``): the same idempotency records, receipt counter, watermark and
        queue of receipts still to emit.

        The first call right after start skips the reload when the books are exactly as
        ``start`` loaded them (``CarrierCore.current``: nobody wrote since); any later call, or
        any change, reloads. A reload costs one read of the batches past the watermark."""
        first, self._led = not self._led, True
        if first and await self.core.current():
            return
        await self.core.reload()

    def for_workspace(self, workspace_id: int | None) -> WorkspaceCarrier:
        if workspace_id is None:
            return self
        view = self._views.get(workspace_id)
        if view is None:
            view = self._views[workspace_id] = WorkspaceCarrier(self, self.core.tenant(str(workspace_id)))
        return view

    async def _submit(self, tenant: CarrierTenant, batch: list[SubmitItem]) -> list[SubmitResult]:
        refusal = tenant.admit(len(batch), self.ctx.clock.now())
        if refusal is not None:
            if refusal.kind == "throttled":
                raise Throttled(refusal.message, retry_after=refusal.retry_after)
            raise PlatformError(refusal.message, retryable=True, retry_at=refusal.until)
        ids = [f"sim-{item.key}" for item in batch]
        refused, due_rows = await self.core.submit(tenant, batch, ids)
        if due_rows:
            self._wake_at(min(due_rows)[0])
        results = []
        for item, msg_id in zip(batch, ids):
            if msg_id in refused:
                code = refused[msg_id]
                results.append(SubmitResult(item.key, None, error_code=code, error_message=error_text(code)))
            else:
                results.append(SubmitResult(item.key, msg_id))
        return results

    def _wake_at(self, due: float) -> None:
        """Have the gateway step when the earliest new receipt falls due, instead of at its next
        tick, if that comes sooner (on the wall clock a zero-delay profile's receipts are due
        within a millisecond)."""
        wait = due - self.ctx.clock.now()
        tick = getattr(self.ctx.config, "tick_interval", 0.05)
        if wait >= tick:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + max(wait, 0.0)
        if self._wake_handle is not None and not self._wake_handle.cancelled() and self._wake_handle.when() <= at:
            return  # an earlier wake-up is already set
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        self._wake_handle = loop.call_at(at, self.ctx.wake)

    async def on_clock(self, now: float) -> None:
        """Emit every receipt due by ``now`` to the gateway's receipt sink, each batch committed
        by the gateway before the next is taken (``CarrierCore.emit``)."""
        await self.core.emit(now, self._deliver)

    async def _deliver(self, rows: list[tuple]) -> None:
        texts = {code: error_text(code) for code in {r[5] for r in rows}}
        # positional: platform_id, status, at, part, code, message
        receipts = [Receipt(pid, status, due, part, code, texts[code]) for due, _, pid, part, status, code in rows]
        await self.ctx.deliver_receipts(self.name, receipts)


SIM_DB_VARIABLE = "SMSLAB_SIM_DB"
DEFAULT_SIM_DB = "smslab-carrier.db"


def _is_sqlite_file(database: Any) -> bool:
    return isinstance(getattr(database, "path", None), str)


def _is_postgres(database: Any) -> bool:
    return isinstance(database, PostgresDatabase)


def sim_db_target(ctx: PlatformContext) -> str | None:
    """The carrier's own SQLite file, or None: the books go into the gateway's PostgreSQL
    database (``core/books_postgres.py``), which every instance of the gateway shares.

    ``extras["sim_db"]`` if given (an explicit file, on either backend); next to the gateway's
    file when the gateway has one; None for a PostgreSQL gateway; else (a database that is
    neither, such as a test's stand-in) ``$SMSLAB_SIM_DB``, else ``smslab-carrier.db`` in the
    current directory. ``$SMSLAB_SIM_DB`` does not apply to a PostgreSQL gateway: a file per
    instance would give each instance a carrier of its own."""
    given = ctx.extras.get("sim_db")
    if given:
        return str(given)
    if _is_sqlite_file(ctx.database):
        return carrier_db_path(ctx.database.path)
    if _is_postgres(ctx.database):
        return None
    return os.environ.get(SIM_DB_VARIABLE) or DEFAULT_SIM_DB


def _task_of(platform_id: str) -> int:
    """The task of a ``sim-{task}-{seq}`` id."""
    return int(platform_id[4:platform_id.index("-", 4)])


async def _fill_in_workspaces(db, gateway) -> None:
    """Batches recorded before carriers were per workspace name none: look up their tasks'
    workspaces in the gateway's database, once (a migration of a SQLite gateway's old data: no
    version that recorded such batches ran on PostgreSQL)."""
    tasks = [t for (t,) in await db.fetchall("SELECT DISTINCT task_ref FROM sim_batches WHERE tenant IS NULL")]
    if not tasks:
        return
    owners = await gateway.fetchall(
        "SELECT id, workspace_id FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(tasks),))
    if owners:
        await db.write(lambda conn: conn.executemany("UPDATE sim_batches SET tenant=? WHERE task_ref=? AND tenant IS NULL",
                                                     [(str(ws), task) for task, ws in owners]))
