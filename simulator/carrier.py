"""The simulated carrier as an in-process platform named ``sim``.

It keeps its own state in a SQLite file of its own next to the gateway's (``store.py``): one
row per submission batch with every message it accepted, what it decided and every receipt it
planned with the service-clock time it is due. The receipts still to emit wait in memory, in due
order (``ledger.py``); ``on_clock`` hands those due to the gateway's receipt sink and records how
far it has emitted only after the sink committed them, so a crash re-emits at most a few
receipts, which the sink recognises as duplicates. Because its state is on disk, a restarted
gateway finds the carrier exactly where it was (the queue is rebuilt from the batches past the
emission watermark): the "operator" keeps working.

Faults on top of the decisions of ``model.decide`` (all documented in docs/simulator.md):
- outage windows on the service clock: during a ``submit`` outage ``submit`` raises a retryable
  PlatformError; receipts due inside a ``receipts`` outage are planned as swallowed (kept in
  ground truth, never emitted);
- a throughput limit over a sliding one-second window of *real* (monotonic) time: a batch that
  does not fit is refused whole with ``Throttled``, so the gateway waits and sends it again;
- number rules ("magic numbers"), including numbers refused at submission.

Each workspace has a carrier of its own (``for_workspace``): its profile, presets, outage
windows, throughput window and reset, so one QA engineer's ``outage`` preset does not break a
colleague's run. The books (messages, planned receipts, emissions) are shared and keyed as
before, so a workspace's decisions are exactly those a carrier of its own would make. A workspace
that never changed its profile follows the service's default (``--profile``, or the built-in
one); the carrier object itself is that default.
"""

from __future__ import annotations

import asyncio
import json
import time
from bisect import bisect_left
from collections import deque
from typing import Any, Callable

import msgspec

from gateway.storage import bulk
from gateway.wire.codes import error_text
from gateway.platform import Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult, Throttled

from . import profile as profiles
from .ledger import DueQueue, KeyRanges
from .store import adopt_from_gateway, carrier_db_path, open_carrier_db
from .model import RuleBook, decide_many, expected_result, outage_windows, plan, submit_outage_until


EMIT_BATCH = 5000
RANGES_KEPT = 64  # tasks whose batch key ranges stay in memory


class RateWindow:
    """Admission over a sliding window of real time (``time.monotonic``).

    Each admitted batch occupies the window for one second, or for ``n / limit`` seconds when it
    alone is bigger than the limit (it is admitted only into an empty window, so progress is
    always possible, and the average rate still stays at the limit)."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self._held: deque[tuple[float, int]] = deque()  # (released at, messages), in order of release
        self._total = 0

    def reset(self) -> None:
        self._held.clear()
        self._total = 0

    def in_window(self) -> int:
        self._expire(self._now())
        return self._total

    def _expire(self, t: float) -> None:
        while self._held and self._held[0][0] <= t:
            self._total -= self._held.popleft()[1]

    def take(self, n: int, limit: float) -> float | None:
        """Admit ``n`` messages and return None, or refuse them and return the seconds to wait."""
        t = self._now()
        self._expire(t)
        if self._total == 0 or self._total + n <= limit:
            hold = max(1.0, n / limit)
            self._held.append((t + hold, n))
            # keep the deque ordered by release time (holds differ only for oversized batches)
            if len(self._held) > 1 and self._held[-2][0] > self._held[-1][0]:
                self._held = deque(sorted(self._held))
            self._total += n
            return None
        need = self._total + n - limit if n <= limit else self._total
        freed = 0
        for released, k in self._held:
            freed += k
            if freed >= need:
                return max(released - t, 0.005)
        return max(self._held[-1][0] - t, 0.005)


def outages_moved(anchor: float | None, old: profiles.Profile, new: profiles.Profile) -> bool:
    """Relative outage windows restart only when the ``outages`` list itself changed."""
    return anchor is None or msgspec.to_builtins(old.outages) != msgspec.to_builtins(new.outages)


async def save_profile_state(db, table: str, profile: profiles.Profile | None, anchor: float | None) -> None:
    """Persist the active profile and the outage anchor (either may be None: left as stored) in a
    carrier's key/value table, so a restarted carrier picks up where it was."""
    rows = []
    if profile is not None:
        rows.append(("profile", msgspec.json.encode(profile).decode()))
    if anchor is not None:
        rows.append(("outages_anchor", repr(anchor)))
    if rows:
        await db.write(lambda conn: conn.executemany(f"INSERT OR REPLACE INTO {table}(key, value) VALUES (?, ?)", rows))




class CarrierTenant:
    """One workspace's settings of the simulated carrier, and what it admits."""

    def __init__(self, key: int | None, default: "CarrierTenant | None", monotonic: Callable[[], float]):
        self.key = key  # the workspace id; None for the service default
        self.default = default  # whose profile and anchor this follows until it has its own
        self.own_profile: profiles.Profile | None = None
        self.own_anchor: float | None = None
        self.rate = RateWindow(monotonic)
        self.throttled = 0  # batches refused as throttled
        self.outage_refusals = 0  # batches refused by a submit outage
        self._rules: tuple[int, RuleBook] | None = None

    @property
    def profile(self) -> profiles.Profile:
        if self.own_profile is None and self.default is not None:
            return self.default.profile
        return self.own_profile or profiles.Profile()

    @property
    def outages_anchor(self) -> float | None:
        if self.own_anchor is None and self.default is not None:
            return self.default.outages_anchor
        return self.own_anchor

    def state_key(self, name: str) -> str:
        """Its keys in ``sim_state``: the default's are the unsuffixed ones earlier versions used."""
        return name if self.key is None else f"{name}:{self.key}"

    def rulebook(self, profile: profiles.Profile) -> RuleBook:
        if self._rules is None or self._rules[0] != id(profile):
            self._rules = (id(profile), RuleBook(profile.number_rules))
        return self._rules[1]


class WorkspaceCarrier(Platform):
    """The ``sim`` platform as one workspace sees it (``SimulatedCarrier.for_workspace``)."""

    name = "sim"
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

    def for_workspace(self, workspace_id: int) -> "WorkspaceCarrier":
        return self.carrier.for_workspace(workspace_id)

    async def set_profile(self, profile: profiles.Profile) -> None:
        await self.carrier._set_profile(self.tenant, profile)

    async def reset(self, profile: profiles.Profile | None = None) -> None:
        await self.carrier._reset(self.tenant, profile)

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
        return self.carrier.parse_webhook(headers, body, now)

    async def ground_truth(self, task_id: int, after: str | None, limit: int):
        return await self.carrier.ground_truth(task_id, after, limit)

    def describe(self) -> dict:
        from gateway.clock import to_rfc3339

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
            receipts_queued=len(self.carrier._due),
        )
        return info


class SimulatedCarrier(WorkspaceCarrier):
    """The ``sim`` platform: the books every workspace's carrier shares, and itself the carrier of
    the service's default profile (what a workspace uses until it sets its own)."""

    name = "sim"

    def __init__(self, profile: profiles.Profile | None = None, *, monotonic: Callable[[], float] = time.monotonic):
        self._monotonic = monotonic
        default = CarrierTenant(None, None, monotonic)
        default.own_profile = profile or profiles.Profile()
        super().__init__(self, default)
        self._tenants: dict[int, CarrierTenant] = {}
        self._views: dict[int, WorkspaceCarrier] = {}
        self._emit_lock = asyncio.Lock()
        self._watermark: tuple[float, int] = (float("-inf"), 0)
        self._wake_handle: asyncio.TimerHandle | None = None
        # a submission (its transaction and the push of its receipts) and the taking of due
        # receipts exclude each other: see on_clock
        self._books_lock = asyncio.Lock()
        self._due = DueQueue()
        self._ranges: dict[int, KeyRanges] = {}
        self._next_rid = 1

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.db = db = await open_carrier_db(ctx.extras.get("sim_db") or carrier_db_path(ctx.database.path))
        await adopt_from_gateway(db, ctx.database)
        await _fill_in_workspaces(db, ctx.database)
        initial = ctx.extras.get("sim_profile")
        state = dict(await db.fetchall("SELECT key, value FROM sim_state WHERE key LIKE 'profile%' OR key LIKE 'outages_anchor%'"))
        default = self.tenant
        if "profile" in state:
            default.own_profile = profiles.from_json(state["profile"].encode())
        if "outages_anchor" in state:
            default.own_anchor = float(state["outages_anchor"])
        if initial is not None:
            # a profile given at start is every workspace's: their own ones are dropped
            await db.write(lambda conn: conn.execute(
                "DELETE FROM sim_state WHERE key LIKE 'profile:%' OR key LIKE 'outages_anchor:%'"))
            await self._set_profile(default, initial)
        else:
            for key, value in state.items():
                name, _, ws = key.partition(":")
                if ws:
                    tenant = self._tenant(int(ws))
                    if name == "profile":
                        tenant.own_profile = profiles.from_json(value.encode())
                    else:
                        tenant.own_anchor = float(value)
            if default.own_anchor is None:
                await self._save_state(default, anchor=ctx.clock.now())
        mark = await db.fetchone("SELECT value FROM sim_state WHERE key='emitted_until'")
        if mark is not None:
            due, rid = msgspec.json.decode(mark[0])
            self._watermark = (float(due), int(rid))
        self._next_rid = int((await db.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'"))[0])
        self._due.push(await db.read(_pending_receipts, *self._watermark))

    async def stop(self) -> None:
        await self.db.close()

    def _tenant(self, workspace_id: int) -> CarrierTenant:
        tenant = self._tenants.get(workspace_id)
        if tenant is None:
            tenant = self._tenants[workspace_id] = CarrierTenant(workspace_id, self.tenant, self._monotonic)
        return tenant

    def for_workspace(self, workspace_id: int | None) -> WorkspaceCarrier:
        if workspace_id is None:
            return self
        view = self._views.get(workspace_id)
        if view is None:
            view = self._views[workspace_id] = WorkspaceCarrier(self, self._tenant(workspace_id))
        return view

    async def _set_profile(self, tenant: CarrierTenant, profile: profiles.Profile) -> None:
        """Applies to messages submitted from now on; planned receipts keep their plan.

        Outage windows given in seconds count from the moment the ``outages`` list last changed,
        so changing another field (a PATCH of ``duplicate_rate``, say) does not restart them."""
        moved = outages_moved(tenant.outages_anchor, tenant.profile, profile)
        tenant.own_profile = profile
        await self._save_state(tenant, profile=profile, anchor=self.ctx.clock.now() if moved else tenant.outages_anchor)

    async def _save_state(self, tenant: CarrierTenant, profile: profiles.Profile | None = None,
                          anchor: float | None = None) -> None:
        if anchor is not None:
            tenant.own_anchor = anchor
        rows = []
        if profile is not None:
            rows.append((tenant.state_key("profile"), msgspec.json.encode(profile).decode()))
        if anchor is not None:
            rows.append((tenant.state_key("outages_anchor"), repr(anchor)))
        if rows:
            await self.db.write(lambda conn: conn.executemany("INSERT OR REPLACE INTO sim_state(key, value) VALUES (?, ?)", rows))

    async def _reset(self, tenant: CarrierTenant, profile: profiles.Profile | None = None) -> None:
        """A fresh carrier for one workspace: forget its messages and planned receipts, empty its
        throughput window and restart its relative outage windows from now. Its profile stays
        (or ``profile`` replaces it). The gateway's own messages are untouched: numbers still
        pending at the gateway get no receipt any more and end as RECEIPT_TIMEOUT. Other
        workspaces' carriers are not touched."""
        async with self._emit_lock, self._books_lock:
            tasks = set(await self.db.write(_forget_workspace, tenant.key))
            if tasks:
                self._due.remove(lambda row: _task_of(row[2]) in tasks)
                for task in tasks:
                    self._ranges.pop(task, None)
            tenant.rate.reset()
            tenant.throttled = tenant.outage_refusals = 0
            await self._save_state(tenant, profile=profile or tenant.profile, anchor=self.ctx.clock.now())
            tenant.own_profile = profile or tenant.profile

    async def _submit(self, tenant: CarrierTenant, batch: list[SubmitItem]) -> list[SubmitResult]:
        profile = tenant.profile
        db = self.db
        anchor = tenant.outages_anchor if tenant.outages_anchor is not None else self.ctx.clock.now()
        if profile.outages:
            until = submit_outage_until(profile, self.ctx.clock.now(), anchor)
            if until is not None:
                from gateway.clock import to_rfc3339

                tenant.outage_refusals += 1
                raise PlatformError(f"simulated outage: the carrier refuses submissions until {to_rfc3339(until)}", retryable=True)
        if profile.throughput_limit is not None and batch:
            wait = tenant.rate.take(len(batch), profile.throughput_limit)
            if wait is not None:
                tenant.throttled += 1
                raise Throttled(f"throttled: above {profile.throughput_limit:g} messages per second", retry_after=wait)
        rules = tenant.rulebook(profile)
        ids = [f"sim-{item.key}" for item in batch]
        # deciding is pure and needs no clock, so it happens before the transaction
        decisions = decide_many(profile, [(f"{item.task_id}:{item.number}", item.parts, item.number) for item in batch], rules)
        async with self._books_lock:
            known = await self._known(batch, ids)
            refused, due_rows, recorded, self._next_rid = await db.write(
                _record_submission, self.ctx.clock, batch, ids, decisions, known, profile, anchor, self._next_rid, tenant.key
            )
            # no await between the commit and here: the receipts are in the queue before an
            # emission can take due receipts again
            self._due.push(due_rows)
            for task_ref, batch_id, first, last in recorded:
                ranges = self._ranges.get(task_ref)
                if ranges is not None:
                    ranges.add(first, last, batch_id)
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

    async def _known(self, batch: list[SubmitItem], ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """Outcome and code of every id of ``batch`` that an earlier submission recorded (a
        resubmission after a crash), looked up only in batches whose key range overlaps."""
        by_task: dict[int, list[str]] = {}
        for item, msg_id in zip(batch, ids):
            by_task.setdefault(item.task_id, []).append(msg_id)
        known: dict[str, tuple[str, str | None]] = {}
        for task_ref, task_ids in by_task.items():
            ranges = self._ranges.pop(task_ref, None)
            if ranges is None:
                ranges = KeyRanges()
                for batch_id, first, last in await self.db.fetchall(
                    "SELECT id, first_key, last_key FROM sim_batches WHERE task_ref=? ORDER BY first_key, id", (task_ref,)
                ):
                    ranges.add(first, last, batch_id)
            self._ranges[task_ref] = ranges  # most recently used last
            while len(self._ranges) > RANGES_KEPT:  # the others are read again when needed
                del self._ranges[next(iter(self._ranges))]
            overlapping = ranges.overlapping(min(task_ids), max(task_ids))
            if not overlapping:
                continue
            wanted = set(task_ids)
            for (messages,) in await self.db.fetchall(
                "SELECT messages FROM sim_batches WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(overlapping),)
            ):
                for msg_id, _number, _parts, outcome, code, *_ in json.loads(messages):
                    if msg_id in wanted:
                        known[msg_id] = (outcome, code)
        return known

    async def on_clock(self, now: float) -> None:
        """Emit every receipt due by ``now``, oldest first, in batches, each committed by the
        gateway before the next is taken.

        Taking due receipts excludes submissions (``_books_lock``), and a submission places its
        receipts at or after the service time it reads inside its transaction. So a receipt
        submitted after a take is never due before what that take emitted: the emission order is
        exactly (due time, receipt id), which the watermark and ground truth's ``emitted_at``
        rely on."""
        async with self._emit_lock:
            while True:
                async with self._books_lock:
                    rows = self._due.pop_due(now, EMIT_BATCH)
                if not rows:
                    return
                texts = {code: error_text(code) for code in {r[5] for r in rows}}
                # positional: platform_id, status, at, part, code, message
                receipts = [Receipt(pid, status, due, part, code, texts[code]) for due, _, pid, part, status, code in rows]
                try:
                    await self.ctx.deliver_receipts(self.name, receipts)
                except BaseException:
                    self._due.push(rows)  # not handed over: emit them again next time
                    raise
                last = rows[-1]
                await self.db.write(_log_emission, last[0], last[1], now)
                self._watermark = (last[0], last[1])
                if len(rows) < EMIT_BATCH:
                    return

    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """The same body as the standalone carrier's webhooks; the bearer token (checked by the
        route, see ``webhook_requires_token``) stands in for the signature."""
        from gateway.wire.webhooks import decode_receipts

        return decode_receipts(body, now, error_text)

    # -- ground truth ----------------------------------------------------------------------------
    async def ground_truth(self, task_id: int, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of what the carrier decided for a task's messages, ordered by platform id.

        Per message: ``platform_id`` (None for a number refused at submission), ``number``,
        ``parts``, ``submitted_at`` (epoch seconds; the API shows RFC 3339), ``outcome``
        (delivered/failed/missing/refused), ``code``, ``submit_latency``, ``rule`` (the number
        rule that forced it, or None), ``expected_result`` (what the gateway must end up showing:
        succeeded/failed/receipt_timeout/refused) and ``receipts``, each with ``part``,
        ``status``, ``code``, ``due_at`` (the receipt's time; the API shows it as ``at``),
        ``duplicate``, ``swallowed`` (due inside a receipts outage: never emitted) and
        ``emitted_at`` (RFC 3339 service time it was handed to the gateway, None until then)."""
        from gateway.clock import to_rfc3339

        db = self.db
        rows = await db.read(_ground_truth_rows, task_id, after or "", limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            return [], None
        log = await db.fetchall("SELECT up_to_due, up_to_id, emitted_at FROM sim_emissions ORDER BY id")
        marks = [(d, i) for d, i, _ in log]
        by_msg: dict[str, list[dict]] = {}
        for row in rows:
            planned = by_msg.setdefault(row[0], [])
            for rid, part, status, code, due_at, dup, swallowed in row[8]:
                emitted_at = None
                if not swallowed:
                    k = bisect_left(marks, (due_at, rid))  # the first emission batch that reached it
                    emitted_at = log[k][2] if k < len(log) else None
                planned.append(
                    {"part": part, "status": status, "code": code, "due_at": due_at, "duplicate": bool(dup),
                     "swallowed": bool(swallowed), "emitted_at": to_rfc3339(emitted_at)}
                )
        rows = [r[:8] for r in rows]
        timeout = getattr(self.ctx.config, "receipt_timeout", 72 * 3600.0)
        items = []
        for msg_id, number, parts, submitted_at, outcome, code, latency, rule in rows:
            planned = by_msg.get(msg_id, [])
            if outcome == "refused":
                expected = "refused"
            else:
                expected = expected_result(
                    parts, submitted_at, [(r["due_at"], r["part"], r["status"], r["swallowed"]) for r in planned], timeout
                )
            items.append(
                {
                    "platform_id": None if outcome == "refused" else msg_id,
                    "number": number,
                    "parts": parts,
                    "submitted_at": submitted_at,
                    "outcome": outcome,
                    "code": code,
                    "submit_latency": latency,
                    "rule": rule,
                    "expected_result": expected,
                    "receipts": planned,
                }
            )
        return items, (rows[-1][0] if more else None)


def _record_submission(conn, clock, batch: list[SubmitItem], ids: list[str], decisions: list,
                       known: dict[str, tuple[str, str | None]], profile, anchor: float, next_rid: int,
                       workspace: int | None = None):
    """Record a decided submission in one transaction on the carrier's database thread: one
    ``sim_batches`` row per task in it. Ids in ``known`` were recorded before (a resubmission)
    and are answered from that record, not sent again. Returns the refused ids with their
    codes, the receipts to emit, ``(task, batch id, first id, last id)`` per row written, and
    the next receipt id."""
    now = clock.now()  # read inside the transaction: see SimulatedCarrier.on_clock
    refused = {msg_id: code or "REFUSED" for msg_id, (outcome, code) in known.items() if outcome == "refused"}
    swallowing = bool(outage_windows(profile, "receipts", anchor))  # else plan() changes nothing
    per_task: dict[int, list] = {}
    due_rows: list[tuple] = []
    last_due: dict[int, tuple] = {}
    one_task = len({item.task_id for item in batch}) == 1  # the usual batch: its last due receipt is found once, after
    rid = next_rid
    for item, msg_id, decision in zip(batch, ids, decisions):
        if known and msg_id in known:  # an idempotent resubmission: the handset got it already
            continue
        if decision.outcome == "refused":
            refused[msg_id] = decision.code or "REFUSED"
        elif swallowing:
            decision = plan(decision, profile, now, anchor)
        receipts = decision.receipts
        if len(receipts) > 1:
            receipts = sorted(receipts, key=_by_delay)
        planned = []
        for r in receipts:
            due = now + r.delay
            planned.append((rid, r.part, r.status, r.code, due, int(r.duplicate), int(r.swallowed)))
            if not r.swallowed:
                row = (due, rid, msg_id, r.part, r.status, r.code)
                due_rows.append(row)
                if not one_task and (item.task_id not in last_due or row[:2] > last_due[item.task_id]):
                    last_due[item.task_id] = row[:2]
            rid += 1
        task_messages = per_task.get(item.task_id)
        if task_messages is None:
            task_messages = per_task[item.task_id] = []
        task_messages.append(
            (msg_id, item.number, item.parts, decision.outcome, decision.code, decision.latency, decision.rule, planned)
        )
    if one_task and due_rows:
        last_due[batch[0].task_id] = max(due_rows)[:2]  # (due, receipt id): ids are unique, so the rest never decides
    recorded = []
    for task_ref, messages in per_task.items():
        messages.sort(key=_first)
        last = last_due.get(task_ref, (None, None))
        cur = conn.execute(
            "INSERT INTO sim_batches(task_ref, submitted_at, first_key, last_key, last_due, last_rid, messages, workspace)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (task_ref, now, messages[0][0], messages[-1][0], last[0], last[1], bulk.encode(messages), workspace),
        )
        recorded.append((task_ref, cur.lastrowid, messages[0][0], messages[-1][0]))
    conn.execute("UPDATE sim_state SET value=? WHERE key='next_receipt_id'", (str(rid),))
    return refused, due_rows, recorded, rid


def _pending_receipts(conn, due: float, rid: int) -> list[tuple]:
    """The receipts after the emission watermark, from the batches that still hold some."""
    rows = []
    for (messages,) in conn.execute(
        "SELECT messages FROM sim_batches WHERE last_due IS NOT NULL AND (last_due, last_rid) > (?, ?)", (due, rid)
    ):
        for msg_id, _number, _parts, _outcome, _code, _latency, _rule, planned in bulk.decode(messages):
            for r_id, part, status, code, due_at, _dup, swallowed in planned:
                if not swallowed and (due_at, r_id) > (due, rid):
                    rows.append((due_at, r_id, msg_id, part, status, code))
    return rows


def _ground_truth_rows(conn, task_ref: int, after: str, count: int) -> list[tuple]:
    """The first ``count`` messages of a task with an id above ``after``, in id order, as
    (id, number, parts, submitted_at, outcome, code, latency, rule, planned receipts).

    Batches are read in order of their first id; once ``count`` messages are held and the next
    batch starts above the highest of them, no later batch can hold a smaller one."""
    found: list[tuple] = []
    cursor = conn.execute(
        "SELECT submitted_at, first_key, messages FROM sim_batches WHERE task_ref=? AND last_key > ? ORDER BY first_key, id",
        (task_ref, after),
    )
    try:
        for submitted_at, first_key, messages in cursor:
            if len(found) >= count and first_key > found[count - 1][0]:
                break
            for msg_id, number, parts, outcome, code, latency, rule, planned in bulk.decode(messages):
                if msg_id > after:
                    found.append((msg_id, number, parts, submitted_at, outcome, code, latency, rule, planned))
            found.sort(key=_first)
            del found[count:]
    finally:
        cursor.close()  # a statement left open would hold this connection's read snapshot
    return found


def _by_delay(receipt) -> float:
    return receipt.delay


def _first(row) -> Any:
    return row[0]


def _log_emission(conn, due: float, rid: int, now: float) -> None:
    conn.execute("INSERT INTO sim_emissions(up_to_due, up_to_id, emitted_at) VALUES (?,?,?)", (due, rid, now))
    conn.execute(
        "INSERT OR REPLACE INTO sim_state(key, value) VALUES ('emitted_until', ?)", (msgspec.json.encode([due, rid]).decode(),)
    )


def _forget_workspace(conn, workspace: int | None) -> list[int]:
    """Delete one workspace's batches (a reset); returns the tasks they held."""
    where = "workspace IS NULL" if workspace is None else "workspace = ?"
    args = () if workspace is None else (workspace,)
    tasks = [t for (t,) in conn.execute(f"SELECT DISTINCT task_ref FROM sim_batches WHERE {where}", args)]
    conn.execute(f"DELETE FROM sim_batches WHERE {where}", args)
    return tasks


def _task_of(platform_id: str) -> int:
    """The task of a ``sim-{task}-{seq}`` id."""
    return int(platform_id[4:platform_id.index("-", 4)])


async def _fill_in_workspaces(db, gateway) -> None:
    """Batches recorded before carriers were per workspace name none: look up their tasks'
    workspaces in the gateway's database, once."""
    tasks = [t for (t,) in await db.fetchall("SELECT DISTINCT task_ref FROM sim_batches WHERE workspace IS NULL")]
    if not tasks:
        return
    owners = await gateway.fetchall(
        "SELECT id, workspace_id FROM tasks WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(tasks),))
    if owners:
        await db.write(lambda conn: conn.executemany("UPDATE sim_batches SET workspace=? WHERE task_ref=? AND workspace IS NULL",
                                                     [(ws, task) for task, ws in owners]))
