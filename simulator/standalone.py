"""The simulated carrier as its own process (``smslab carrier``): the carrier core with its books
in a SQLite file of its own, an outbox for what it pushes out, accounts, a request journal, and
the front ends that share them: the HTTP API with signed webhooks (``server.py``) and the SMSC
(``simulator/smpp``). Every front end submits through the same core, so one profile and seed give
the same outcomes whichever protocol a message came by.

Receipts flow core → outbox → front end: an emission loop moves receipts that fell due on the
carrier's clock into the outbox (``CarrierCore.emit``); the webhook loop pushes the HTTP API's to
the callback URL, retried 60, 300 and 600 seconds of the carrier's clock after each failed
delivery (Alibaba Cloud's 1, 5 and 10 minutes), then abandoned; the SMSC sends each account's to
its receiver binds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

import aiohttp
import msgspec

from gateway import paging
from gateway.clock import Clock, VirtualClock, WallClock, to_rfc3339
from gateway.errors import Conflict, Invalid
from gateway.platform import SubmitItem
from gateway.wire import webhooks
from gateway.wire.codes import error_text

from . import profile as profiles
from .accounts import Accounts
from .core import CarrierCore, CarrierTenant
from .core.books_sqlite import SqliteBooks
from .core.outbox import STATE_NAMES, WAITING, Outbox
from .journal import DEFAULT_MAX, Journal
from .model import expected_result
from .store import open_carrier_db

log = logging.getLogger("smslab.carrier")

RETRY_SCHEDULE = (60.0, 300.0, 600.0)  # seconds of the carrier's clock after each failed delivery
DELIVERY_BATCH = 500  # receipts per webhook
DELIVERY_TIMEOUT = 10.0  # real seconds a callback may take to answer
TICK = 0.05  # real seconds between looks for due receipts
MAX_SUBMIT_BATCH = 10_000
HTTP_PREFIX = "cr-"  # ids of messages submitted over the HTTP API
NUMBER = re.compile(r"^\+?[0-9]{5,15}$")


class SubmitIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    number: str
    text: str = ""
    parts: int = 1
    task_id: int | str | None = None


class FrontEnd(Protocol):
    """A protocol the carrier speaks besides its HTTP API (the SMSC, a provider API)."""

    protocol: str

    async def start(self, carrier: "StandaloneCarrier") -> None: ...

    async def stop(self) -> None: ...

    def tenant_of(self, msg_id: str) -> str | None: ...

    def present(self, item: dict[str, Any]) -> None:
        """Add the protocol's own ids and fields to a ground-truth item of one of its accounts."""

    async def account_removed(self, name: str) -> None:
        """The account was deleted: end its sessions."""


class StandaloneCarrier:
    def __init__(self, db_path: str, *, clock: str = "wall", clock_start: float | None = None,
                 profile: profiles.Profile | None = None, callback: str | None = None, secret: str | None = None,
                 retry_schedule=RETRY_SCHEDULE, delivery_batch: int = DELIVERY_BATCH, tick: float = TICK,
                 token: str | None = None, accounts: list[tuple[str, str]] = (), journal_max: int = DEFAULT_MAX,
                 receipt_timeout: float = 72 * 3600.0, provider_accounts: list[tuple[str, str, str]] = ()):
        self.db_path = db_path
        self.clock_mode = clock
        self.clock_start = clock_start
        self.clock: Clock = WallClock()
        self.initial_profile = profile
        self.callback = callback
        self.secret = secret or ""
        self.token = token or None  # the control API's bearer token; None: open (loopback only)
        self.retry_schedule = tuple(float(s) for s in retry_schedule)
        self.delivery_batch = delivery_batch
        self.tick = tick
        self.cli_accounts = list(accounts)
        self.provider_accounts = list(provider_accounts)  # (id, secret, protocol): --twilio, --aliyun
        self.journal = Journal(journal_max)
        self.receipt_timeout = receipt_timeout
        self.front_ends: list[FrontEnd] = []
        self.core = CarrierCore(None, None, default_profile=profile)
        self.db = None
        self.outbox: Outbox | None = None
        self.accounts: Accounts | None = None
        self._due_soon = asyncio.Event()
        self._deliver_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = {"webhooks_sent": 0, "webhooks_failed": 0, "receipts_sent": 0, "receipts_abandoned": 0,
                      "throttled_batches": 0, "outage_refusals": 0}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.db = db = await open_carrier_db(self.db_path, cache_mib=32)
        if self.clock_mode == "virtual":
            stored = await db.fetchone("SELECT value FROM sim_state WHERE key='clock'")
            clock = VirtualClock(self.clock_start, 0.0)
            if stored is not None:
                clock.resume(float(stored[0]))
            self.clock = clock
        self.core.books, self.core.clock = SqliteBooks(db), self.clock
        self.outbox = Outbox(db)
        await self.core.load(self.initial_profile, finished=self.outbox.finished_after)
        await self.outbox.load()
        self.outbox.after_flush = self._save_mark
        self._mark = self.core.watermark
        self._webhooks_due = asyncio.Event()
        self.outbox.listeners.append(self._webhooks_due.set)
        self.accounts = Accounts(db)
        await self.accounts.load()
        for name, password in self.cli_accounts:
            await self.accounts.ensure(name, password)
        for name, secret, protocol in self.provider_accounts:
            await self.accounts.ensure(name, secret, protocol)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT))
        self._tasks.append(asyncio.create_task(self._emission_loop(), name="carrier-emission"))
        if self.callback:
            self._tasks.append(asyncio.create_task(self._webhook_loop(), name="carrier-webhooks"))
        for front in self.front_ends:
            await front.start(self)

    async def stop(self) -> None:
        for front in reversed(self.front_ends):
            try:
                await front.stop()
            except Exception:
                log.exception("%s front end failed to stop", front.protocol)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.outbox is not None:
            await self.outbox.stop()
        if self.db is not None:
            await self.db.close()
            self.db = None

    # -- the profile (the carrier's default tenant; accounts follow it) ---------------------------
    @property
    def profile(self) -> profiles.Profile:
        return self.core.default.profile

    async def set_profile(self, profile: profiles.Profile) -> None:
        await self.core.set_profile(self.core.default, profile)

    def tenant_of(self, msg_id: str) -> str | None:
        if msg_id.startswith(HTTP_PREFIX):
            return None
        for front in self.front_ends:
            tenant = front.tenant_of(msg_id)
            if tenant is not None:
                return tenant
        return None

    # -- the HTTP API's submissions ---------------------------------------------------------------
    def admit(self, count: int, tenant: CarrierTenant | None = None):
        """None if ``count`` messages may be submitted now, else a ``Refusal``."""
        refusal = (tenant or self.core.default).admit(count, self.clock.now())
        if refusal is not None:
            self.stats["outage_refusals" if refusal.kind == "outage" else "throttled_batches"] += 1
        return refusal

    async def submit(self, items: list[SubmitIn]) -> list[dict]:
        """Decide and plan every new message; a known key gets the answer it got the first time
        (its platform id, or the same refusal) and is not sent again. Decisions are keyed
        ``{task_id}:{number}`` like the in-process carrier's, or by the key without a task."""
        results: list[dict | None] = []
        batch, ids, keys, places = [], [], [], []
        for item in items:
            if not NUMBER.match(item.number):
                results.append({"key": item.key, "platform_id": None, "error_code": "INVALID_NUMBER",
                                "error_message": f"not a phone number in E.164 form: {item.number!r}"})
                continue
            task_ref = int(item.task_id) if item.task_id is not None else 0
            places.append(len(results))
            results.append(None)
            batch.append(SubmitItem(item.key, task_ref, item.number, item.text, item.parts))
            ids.append(f"{HTTP_PREFIX}{item.key}")
            keys.append(f"{item.task_id}:{item.number}" if item.task_id is not None else item.key)
        if batch:
            refused, due_rows = await self.core.submit(self.core.default, batch, ids, keys)
            for place, item, msg_id in zip(places, batch, ids):
                code = refused.get(msg_id)
                results[place] = ({"key": item.key, "platform_id": msg_id} if code is None else
                                  {"key": item.key, "platform_id": None, "error_code": code, "error_message": error_text(code)})
            if due_rows:
                self.wake()
        return results  # type: ignore[return-value]

    # -- emission: core → outbox ----------------------------------------------------------------
    def wake(self) -> None:
        """Look for due receipts now (a submission planned some, the clock moved)."""
        self._due_soon.set()

    async def _emission_loop(self) -> None:
        while True:
            try:
                await self.emit_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("moving due receipts to the outbox failed; retrying")
            self._due_soon.clear()
            wait = self.tick
            upcoming = self.core.due.next_due()
            if upcoming is not None and self.clock.mode == "wall":
                wait = min(wait, max(upcoming - self.clock.now(), 0.0))
            try:
                async with asyncio.timeout(wait):  # wait_for can swallow a cancellation on 3.11
                    await self._due_soon.wait()
            except TimeoutError:
                pass

    async def emit_due(self) -> int:
        return await self.core.emit(self.clock.now(), self._to_outbox, hold=self.outbox.low_water)

    def _to_outbox(self, rows: list[tuple]) -> None:
        self.outbox.accept(rows, self.tenant_of)

    async def _save_mark(self) -> None:
        """After the outbox wrote what reached its end, a restart may start further on."""
        mark = self.core.safe_mark(self.core.watermark, self.outbox.low_water)
        if mark != self._mark:
            self._mark = mark
            await self.core.save_mark(mark)

    # -- webhooks: the HTTP API's receipts ---------------------------------------------------------
    async def _webhook_loop(self) -> None:
        while True:
            try:
                more = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery failed unexpectedly")
                more = False
            if not more:
                self._webhooks_due.clear()
                try:
                    async with asyncio.timeout(self.tick):
                        await self._webhooks_due.wait()
                except TimeoutError:
                    pass

    async def flush(self, max_batches: int = 10_000) -> dict:
        """Push every receipt due now, batch after batch, and answer when done (for tests that
        want no background timing). Failed deliveries are rescheduled as usual."""
        before = dict(self.stats)
        await self.emit_due()
        for _ in range(max_batches):
            if not await self.deliver_due():
                break
        return {"receipts_sent": self.stats["receipts_sent"] - before["receipts_sent"],
                "webhooks_failed": self.stats["webhooks_failed"] - before["webhooks_failed"]}

    async def deliver_due(self) -> bool:
        """Push one batch of due receipts; True if a full batch went (there may be more)."""
        if not self.callback or self._session is None:
            return False
        async with self._deliver_lock:
            return await self._deliver_due()

    async def _deliver_due(self) -> bool:
        items = self.outbox.take(self.clock.now(), None, self.delivery_batch)
        if not items:
            return False
        body = webhooks.encode_receipts([
            {"platform_id": i.msg_id, "status": i.status, "at": i.due_at, "part": i.part, "code": i.code,
             "message": error_text(i.code)} for i in items
        ])
        error = None
        try:
            async with self._session.post(self.callback, data=body, headers=webhooks.sign_headers(self.secret, body)) as resp:
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}: {(await resp.text())[:300]}"
                else:
                    await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        at = self.clock.now()
        if error is None:
            self.stats["webhooks_sent"] += 1
            self.stats["receipts_sent"] += len(items)
            self.outbox.sent(items, at, acked=True)  # a 2xx is the acknowledgement
            return len(items) == self.delivery_batch
        self.stats["webhooks_failed"] += 1
        log.warning("webhook to %s failed (%d receipts): %s", self.callback, len(items), error)
        self.stats["receipts_abandoned"] += self.outbox.failed(items, at, error, self.retry_schedule)
        return False

    # -- the clock --------------------------------------------------------------------------------
    async def advance(self, seconds: float) -> float:
        if not isinstance(self.clock, VirtualClock):
            raise Conflict("the carrier runs on the wall clock; start it with --clock virtual to advance time", code="clock_not_virtual")
        now = self.clock.advance(seconds)
        await self.db.write(lambda conn: conn.execute("INSERT OR REPLACE INTO sim_state(key, value) VALUES ('clock', ?)",
                                                      (repr(now),)))
        await self.emit_due()
        self.wake()
        self.outbox._notify()
        return now

    # -- ground truth -------------------------------------------------------------------------------
    async def ground_truth(self, *, task_ref: int | None = None, account: str | None = None, cursor: str | None = None,
                           limit: int = 50) -> tuple[list[dict], str | None]:
        """A page of what the carrier decided and did, per message, for a task submitted over the
        HTTP API or for an account: the core's decisions and planned receipts, with each receipt's
        delivery from the outbox (``planned``, ``sent``, ``abandoned``, ``swallowed``; its attempts
        and times) and what the receiver must end up showing."""
        after = _cursor_value(cursor)
        items, last = await self.core.ground_truth(task_ref=task_ref, tenant=account, after=after, limit=limit,
                                                   receipt_timeout=self.receipt_timeout)
        await self._describe(items, account, task_ref)
        return items, (_cursor_of(last) if last else None)

    async def _describe(self, items: list[dict], account: str | None, task_ref: int | None) -> None:
        delivery = await self.outbox.of_receipts([r["rid"] for i in items for r in i["receipts"]])
        front = self._front_for(account)
        for item in items:
            for r in item["receipts"]:
                _describe_receipt(r, delivery.get(r["rid"]))
            item["expected_result"] = "refused" if item["outcome"] == "refused" else expected_result(
                item["parts"], item["submitted_at"],
                [(r["due_at"], r["part"], r["status"], r["delivery"] in ("swallowed", "abandoned")) for r in item["receipts"]],
                self.receipt_timeout)
            if item["_id"].startswith(HTTP_PREFIX):
                item["key"] = item["_id"][len(HTTP_PREFIX):]
                if task_ref is not None:
                    item["task_id"] = task_ref
            elif front is not None:
                front.present(item)
            item["submitted_at"] = to_rfc3339(item["submitted_at"])
            for r in item["receipts"]:
                r["at"] = to_rfc3339(r.pop("due_at"))
                del r["rid"]
            del item["_id"], item["_extra"]

    def _front_for(self, account: str | None):
        if account is None or self.accounts is None:
            return None
        acct = self.accounts.get(account)
        protocol = acct.protocol if acct is not None else "smpp"
        return next((f for f in self.front_ends if f.protocol == protocol), None)

    async def message(self, platform_id: str) -> dict | None:
        """One message submitted over the HTTP API, with its receipts' delivery."""
        if not platform_id.startswith(HTTP_PREFIX):
            return None
        items = await self.core.messages(None, [platform_id], self.receipt_timeout)
        await self._describe(items, None, None)
        return items[0] if items else None

    async def summary(self, task_ref: int) -> dict:
        outcomes = {"delivered": 0, "failed": 0, "missing": 0, "refused": 0}
        receipts = {"planned": 0, "duplicates": 0, "sent": 0, "pending": 0, "abandoned": 0, "swallowed": 0}
        cursor = None
        while True:
            items, cursor = await self.ground_truth(task_ref=task_ref, cursor=cursor, limit=1000)
            for item in items:
                outcomes[item["outcome"]] += 1
                for r in item["receipts"]:
                    receipts["planned"] += 1
                    receipts["duplicates"] += r["duplicate"]
                    state = r["delivery"]
                    receipts["pending" if state == "planned" else state] += 1
            if not cursor:
                break
        return {"task_id": str(task_ref), "messages": sum(outcomes.values()), **outcomes, "receipts": receipts}

    async def reset(self, account: str | None = None) -> None:
        """Forget every message and receipt of the HTTP API (or of one account); empty the
        throughput window; relative outage windows count from now. The profile stays."""
        tenant = self.core.tenant(account)
        await self.core.reset(tenant, forget=lambda row: self.tenant_of(row[2]) == account)
        for item in [i for i in self.outbox.items.values() if i.tenant == account]:
            self.outbox.items.pop(item.rid, None)
            self.outbox._dirty.pop(item.rid, None)
        # their rows in sim_outbox stay: nothing names those receipt ids any more


def _describe_receipt(r: dict, out) -> None:
    if r["swallowed"]:
        r["delivery"] = "swallowed"
    elif out is None:
        r["delivery"] = "planned"
    else:
        r["delivery"] = STATE_NAMES[out.state]
        r["attempts"] = out.attempts
        r["sent_at"] = to_rfc3339(out.sent_at)
        r["acked_at"] = to_rfc3339(out.acked_at)
        if out.state == WAITING and out.attempts:
            r["next_attempt_at"] = to_rfc3339(out.next_at)
        if out.last_error:
            r["last_error"] = out.last_error
    r.setdefault("attempts", 0)
    r.setdefault("sent_at", None)
    r["emitted_at"] = to_rfc3339(r["emitted_at"])


def _cursor_of(msg_id: str) -> str:
    return paging.encode_tagged("m", msg_id)


def _cursor_value(cursor: str | None) -> str | None:
    if not cursor:
        return None
    value = paging.decode_tagged(cursor, "m")
    if value is None:
        raise Invalid("cursor: not a cursor this carrier gave out", field="cursor")
    return value
