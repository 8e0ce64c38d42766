"""The simulated carrier as its own HTTP server: ``smslab carrier`` (or ``python -m simulator.server``).

It behaves like an SMS vendor's API. A client submits batches of messages (``POST /submit``),
each with an idempotency key; the carrier decides each message's fate with
:func:`simulator.model.decide` — the same function and the same decision key
(``"{task_id}:{number}"``) as the in-process ``sim`` platform, so one profile and seed give the
same outcomes, codes, delays and duplicates in both — and plans its receipts on its own clock.
Due receipts are pushed in batches to the callback URL as signed webhooks (see
:mod:`gateway.wire.webhooks`); a delivery that fails (connection error, timeout, any non-2xx
answer) is retried 60, 300 and 600 seconds of the carrier's clock later (Alibaba Cloud's 1, 5
and 10 minutes), then abandoned. Everything — messages, decisions, planned receipts and each
receipt's delivery state — is kept in the carrier's own SQLite file, so a restarted carrier
carries on where it stopped.

Endpoints (JSON; errors are ``{"error": {"code", "message"}}``)::

    POST /submit                      {"messages": [{key, number, text, parts, task_id}]} -> {"results": [{key, platform_id}]}
    GET  /messages/{platform_id}      delivery details of one message
    GET|PUT|PATCH /profile            the active behaviour profile
    GET  /presets, POST /presets/{n}  the shipped presets; make one active
    POST /moderate                    {"text"} -> {"reasons": [...]}
    GET  /clock, POST /clock/advance  {"seconds"} (virtual clock only; 409 on the wall clock)
    GET  /ground-truth?task_id=       paged decisions and receipts with their delivery state
    GET  /ground-truth/summary?task_id=
    POST /deliver                     push every due receipt now and answer when done
    POST /reset                       forget every message and receipt
    GET  /healthz

See docs/carrier.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from gateway import paging
from gateway.clock import Clock, VirtualClock, WallClock, to_rfc3339
from gateway.errors import Conflict, Invalid, NotFound, ServiceError
from gateway.storage.db import Database
from gateway.web.bodies import read

from . import profile as profiles
from gateway.wire import webhooks
from .carrier import RateWindow, error_text, outages_moved, save_profile_state
from .model import RuleBook, decide, expected_result, plan, submit_outage_until

log = logging.getLogger("smslab.carrier")

RETRY_SCHEDULE = (60.0, 300.0, 600.0)  # seconds of the carrier's clock after each failed delivery
DELIVERY_BATCH = 500  # receipts per webhook
DELIVERY_TIMEOUT = 10.0  # real seconds a callback may take to answer
TICK = 0.05  # real seconds between looks for due receipts
MAX_SUBMIT_BATCH = 10_000
_NUMBER = re.compile(r"^\+?[0-9]{5,15}$")

# receipt delivery states
DUE, SENT, ABANDONED, SWALLOWED = 0, 1, 2, 3
STATE_NAMES = {DUE: "planned", SENT: "sent", ABANDONED: "abandoned", SWALLOWED: "swallowed"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS carrier_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS carrier_messages (
    id INTEGER PRIMARY KEY,
    platform_id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL UNIQUE,
    task_ref TEXT,
    number TEXT NOT NULL,
    text TEXT NOT NULL,
    parts INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT,
    latency REAL NOT NULL DEFAULT 0,
    rule TEXT
);
CREATE INDEX IF NOT EXISTS carrier_messages_task ON carrier_messages(task_ref, id);
CREATE TABLE IF NOT EXISTS carrier_receipts (
    id INTEGER PRIMARY KEY,
    platform_id TEXT NOT NULL,
    part INTEGER,
    status TEXT NOT NULL,
    code TEXT,
    due_at REAL NOT NULL,
    duplicate INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS carrier_receipts_next ON carrier_receipts(next_at, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS carrier_receipts_msg ON carrier_receipts(platform_id);
"""


class CarrierDatabase(Database):
    """The gateway's two-connection SQLite wrapper with the carrier's own small schema instead
    of the gateway's migrations (tables ``carrier_*``, created if missing)."""

    async def _migrate(self) -> None:
        assert self.writer is not None
        await self.writer.executescript(SCHEMA)


class SubmitIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    number: str
    text: str = ""
    parts: int = 1
    task_id: int | str | None = None


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[SubmitIn]


class AdvanceBody(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


class ModerateBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _decode(raw: bytes, type_):
    if not raw.strip():
        raise Invalid("body: a JSON body is required", field="body")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        from gateway.web.bodies import field_error

        raise field_error(exc) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"body: malformed JSON ({exc})", field="body") from None


def load_profile(spec: str) -> profiles.Profile:
    """A profile from a TOML/JSON file or a preset name (raises ProfileError or KeyError)."""
    if Path(spec).is_file():
        return profiles.load_file(spec)
    return profiles.load_preset(spec)


class CarrierServer:
    def __init__(self, db_path: str, *, clock: str = "wall", clock_start: float | None = None,
                 profile: profiles.Profile | None = None,
                 callback: str | None = None, secret: str | None = None, retry_schedule=RETRY_SCHEDULE,
                 delivery_batch: int = DELIVERY_BATCH, tick: float = TICK, token: str | None = None):
        self.db = CarrierDatabase(db_path)
        self.token = token or None  # the control API's bearer token; None: open (loopback only)
        self.clock_mode = clock
        self.clock_start = clock_start
        self.clock: Clock = WallClock()
        self.initial_profile = profile
        self.profile = profile or profiles.Profile()
        self.callback = callback
        self.secret = secret or ""
        self.retry_schedule = tuple(float(s) for s in retry_schedule)
        self.delivery_batch = delivery_batch
        self.tick = tick
        self.rate = RateWindow()
        self.outages_anchor: float | None = None
        self._rules: tuple[int, RuleBook] | None = None
        self._wake = asyncio.Event()
        self._deliver_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self.stats = {"webhooks_sent": 0, "webhooks_failed": 0, "receipts_sent": 0, "receipts_abandoned": 0,
                      "throttled_batches": 0, "outage_refusals": 0}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.db.open()
        if self.clock_mode == "virtual":
            stored = await self.db.fetchone("SELECT value FROM carrier_state WHERE key='clock'")
            start = float(stored[0]) if stored else self.clock_start
            self.clock = VirtualClock(start, 0.0)
        else:
            self.clock = WallClock()
        stored = await self.db.fetchone("SELECT value FROM carrier_state WHERE key='profile'")
        if stored is not None:
            self.profile = profiles.from_json(stored[0].encode())
        anchor = await self.db.fetchone("SELECT value FROM carrier_state WHERE key='outages_anchor'")
        if anchor is not None:
            self.outages_anchor = float(anchor[0])
        if self.initial_profile is not None:
            await self.set_profile(self.initial_profile)
        elif anchor is None:
            await self._save_state(anchor=self.clock.now())
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT))
        if self.callback:
            self._task = asyncio.create_task(self._delivery_loop(), name="carrier-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.db.close()

    async def set_profile(self, profile: profiles.Profile) -> None:
        """Applies to messages submitted from now on; planned receipts keep their plan. Outage
        windows given in seconds count from when the ``outages`` list last changed (as in the
        in-process carrier)."""
        old = self.profile
        self.profile = profile
        moved = outages_moved(self.outages_anchor, old, profile)
        await self._save_state(profile=profile, anchor=self.clock.now() if moved else None)

    async def _save_state(self, profile: profiles.Profile | None = None, anchor: float | None = None) -> None:
        if anchor is not None:
            self.outages_anchor = anchor
        await save_profile_state(self.db, "carrier_state", profile, anchor)

    def _rulebook(self, profile: profiles.Profile) -> RuleBook:
        if self._rules is None or self._rules[0] != id(profile):
            self._rules = (id(profile), RuleBook(profile.number_rules))
        return self._rules[1]

    def admit(self, count: int) -> tuple[int, str, float | None] | None:
        """None if a batch of ``count`` may be submitted now; else (HTTP status, message, retry after)."""
        profile = self.profile
        if profile.outages:
            anchor = self.outages_anchor if self.outages_anchor is not None else self.clock.now()
            until = submit_outage_until(profile, self.clock.now(), anchor)
            if until is not None:
                self.stats["outage_refusals"] += 1
                return 503, f"simulated outage: the carrier refuses submissions until {to_rfc3339(until)}", None
        if profile.throughput_limit is not None and count:
            wait = self.rate.take(count, profile.throughput_limit)
            if wait is not None:
                self.stats["throttled_batches"] += 1
                return 429, f"throttled: above {profile.throughput_limit:g} messages per second", wait
        return None

    # -- submission -----------------------------------------------------------------------------
    async def submit(self, items: list[SubmitIn]) -> list[dict]:
        """Decide and plan every new message; a known key gets the answer it got the first time
        (its platform id, or the same refusal) and is not sent again."""
        profile = self.profile
        rules = self._rulebook(profile)
        db = self.db
        results: list[dict] = []
        async with db.transaction() as conn:
            now = self.clock.now()
            anchor = self.outages_anchor if self.outages_anchor is not None else now
            keys = list({item.key for item in items})
            known: dict[str, tuple[str, str, str | None]] = {}
            for start in range(0, len(keys), 900):
                chunk = keys[start : start + 900]
                rows = await db.all(
                    conn, f"SELECT key, platform_id, outcome, code FROM carrier_messages WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk)
                known.update((k, (pid, outcome, code)) for k, pid, outcome, code in rows)
            message_rows, receipt_rows = [], []
            for item in items:
                if not _NUMBER.match(item.number):
                    results.append({"key": item.key, "platform_id": None, "error_code": "INVALID_NUMBER",
                                    "error_message": f"not a phone number in E.164 form: {item.number!r}"})
                    continue
                seen = known.get(item.key)
                if seen is None:  # new; a known key is an idempotent resubmission
                    platform_id = f"cr-{item.key}"
                    task_ref = None if item.task_id is None else str(item.task_id)
                    decision_key = f"{item.task_id}:{item.number}" if item.task_id is not None else item.key
                    decision = decide(profile, decision_key, item.parts, number=item.number, rules=rules)
                    if decision.outcome != "refused":
                        decision = plan(decision, profile, now, anchor)
                    seen = known[item.key] = (platform_id, decision.outcome, decision.code)
                    message_rows.append((platform_id, item.key, task_ref, item.number, item.text, item.parts, now,
                                         decision.outcome, decision.code, decision.latency, decision.rule))
                    for r in decision.receipts:
                        due = now + r.delay
                        receipt_rows.append((platform_id, r.part, r.status, r.code, due, int(r.duplicate), due,
                                             SWALLOWED if r.swallowed else DUE))
                platform_id, outcome, code = seen
                if outcome == "refused":
                    code = code or "REFUSED"
                    results.append({"key": item.key, "platform_id": None, "error_code": code, "error_message": error_text(code)})
                else:
                    results.append({"key": item.key, "platform_id": platform_id})
            await conn.executemany(
                "INSERT INTO carrier_messages(platform_id, key, task_ref, number, text, parts, submitted_at, outcome, code,"
                " latency, rule) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                message_rows,
            )
            await conn.executemany(
                "INSERT INTO carrier_receipts(platform_id, part, status, code, due_at, duplicate, next_at, state)"
                " VALUES (?,?,?,?,?,?,?,?)",
                receipt_rows,
            )
        if receipt_rows:
            self._wake.set()
        return results

    # -- webhooks ------------------------------------------------------------------------------
    async def _delivery_loop(self) -> None:
        while True:
            try:
                more = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery failed unexpectedly")
                more = False
            if not more:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self.tick):  # wait_for can swallow a cancellation on 3.11
                        await self._wake.wait()
                except asyncio.TimeoutError:
                    pass

    async def flush(self, max_batches: int = 10_000) -> dict:
        """Push every receipt due now, batch after batch, and answer when done (for tests that
        want no background timing). Failed deliveries are rescheduled as usual."""
        before = dict(self.stats)
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
        now = self.clock.now()
        rows = await self.db.fetchall(
            "SELECT id, platform_id, part, status, code, due_at, attempts FROM carrier_receipts"
            " WHERE state = 0 AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (now, self.delivery_batch),
        )
        if not rows:
            return False
        body = webhooks.encode_receipts([
            {"platform_id": r[1], "status": r[3], "at": r[5], "part": r[2], "code": r[4], "message": error_text(r[4])}
            for r in rows
        ])
        error = None
        try:
            async with self._session.post(self.callback, data=body, headers=webhooks.sign_headers(self.secret, body)) as resp:
                if not 200 <= resp.status < 300:
                    text = (await resp.text())[:300]
                    error = f"HTTP {resp.status}: {text}"
                else:
                    await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        sent_at = self.clock.now()
        if error is None:
            self.stats["webhooks_sent"] += 1
            self.stats["receipts_sent"] += len(rows)
            await self._write_many(
                "UPDATE carrier_receipts SET state=1, sent_at=?, attempts=attempts+1, last_error=NULL WHERE id=?",
                [(sent_at, r[0]) for r in rows],
            )
            return len(rows) == self.delivery_batch
        self.stats["webhooks_failed"] += 1
        log.warning("webhook to %s failed (%d receipts): %s", self.callback, len(rows), error)
        updates = []
        abandoned = 0
        for r in rows:
            attempts = r[6] + 1
            if attempts <= len(self.retry_schedule):
                updates.append((DUE, sent_at + self.retry_schedule[attempts - 1], attempts, error, r[0]))
            else:
                updates.append((ABANDONED, sent_at, attempts, error, r[0]))
                abandoned += 1
        self.stats["receipts_abandoned"] += abandoned
        await self._write_many("UPDATE carrier_receipts SET state=?, next_at=?, attempts=?, last_error=? WHERE id=?", updates)
        return False

    async def _write_many(self, sql: str, rows: list[tuple]) -> None:
        async with self.db.transaction() as conn:
            await conn.executemany(sql, rows)

    # -- clock ---------------------------------------------------------------------------------
    async def advance(self, seconds: float) -> float:
        if not isinstance(self.clock, VirtualClock):
            raise Conflict("the carrier runs on the wall clock; start it with --clock virtual to advance time", code="clock_not_virtual")
        now = self.clock.advance(seconds)
        await self.db.execute("INSERT OR REPLACE INTO carrier_state(key, value) VALUES ('clock', ?)", (repr(now),))
        self._wake.set()
        return now

    # -- ground truth ------------------------------------------------------------------------------
    async def _receipts_of(self, ids: list[str]) -> dict[str, list[dict]]:
        by_msg: dict[str, list[dict]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            rows = await self.db.fetchall(
                "SELECT platform_id, part, status, code, due_at, duplicate, state, attempts, sent_at, last_error, next_at"
                f" FROM carrier_receipts WHERE platform_id IN ({','.join('?' * len(chunk))}) ORDER BY due_at, id",
                chunk,
            )
            for pid, part, status, code, due_at, dup, state, attempts, sent_at, last_error, next_at in rows:
                item = {
                    "part": part, "status": status, "code": code, "at": to_rfc3339(due_at), "duplicate": bool(dup),
                    "delivery": STATE_NAMES[state], "attempts": attempts, "sent_at": to_rfc3339(sent_at), "_due": due_at,
                }
                if state == DUE and attempts:
                    item["next_attempt_at"] = to_rfc3339(next_at)
                if last_error:
                    item["last_error"] = last_error
                by_msg.setdefault(pid, []).append(item)
        return by_msg

    def _message(self, row: tuple, receipts: list[dict]) -> dict:
        _id, pid, key, task_ref, number, text, parts, submitted_at, outcome, code, latency, rule = row
        if outcome == "refused":
            expected = "refused"
        else:
            # what the gateway must end up showing, given what the carrier planned and could push
            # (swallowed and abandoned receipts never reach it)
            expected = expected_result(
                parts, submitted_at,
                [(r["_due"], r["part"], r["status"], r["delivery"] in ("swallowed", "abandoned")) for r in receipts],
                self.receipt_timeout)
        for r in receipts:
            r.pop("_due", None)
        return {
            "platform_id": None if outcome == "refused" else pid, "key": key, "task_id": task_ref, "number": number,
            "text": text, "parts": parts, "submitted_at": to_rfc3339(submitted_at), "outcome": outcome, "code": code,
            "submit_latency": latency, "rule": rule, "expected_result": expected, "receipts": receipts,
        }

    receipt_timeout = 72 * 3600.0  # the gateway's default, for expected_result
    _COLUMNS = "id, platform_id, key, task_ref, number, text, parts, submitted_at, outcome, code, latency, rule"

    async def message(self, platform_id: str) -> dict | None:
        row = await self.db.fetchone(f"SELECT {self._COLUMNS} FROM carrier_messages WHERE platform_id=?", (platform_id,))
        if row is None:
            return None
        return self._message(row, (await self._receipts_of([platform_id])).get(platform_id, []))

    async def ground_truth(self, task_ref: str, after: int | None, limit: int) -> tuple[list[dict], str | None]:
        rows = await self.db.fetchall(
            f"SELECT {self._COLUMNS} FROM carrier_messages WHERE task_ref=? AND id>? ORDER BY id LIMIT ?",
            (task_ref, after or 0, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        receipts = await self._receipts_of([r[1] for r in rows])
        items = [self._message(r, receipts.get(r[1], [])) for r in rows]
        return items, (paging.encode(rows[-1][0]) if more and rows else None)

    async def summary(self, task_ref: str) -> dict:
        outcomes = dict(await self.db.fetchall(
            "SELECT outcome, COUNT(*) FROM carrier_messages WHERE task_ref=? GROUP BY outcome", (task_ref,)))
        states = dict(await self.db.fetchall(
            "SELECT r.state, COUNT(*) FROM carrier_receipts r JOIN carrier_messages m ON m.platform_id = r.platform_id"
            " WHERE m.task_ref=? GROUP BY r.state", (task_ref,)))
        dups = await self.db.fetchone(
            "SELECT COUNT(*) FROM carrier_receipts r JOIN carrier_messages m ON m.platform_id = r.platform_id"
            " WHERE m.task_ref=? AND r.duplicate=1", (task_ref,))
        return {
            "task_id": task_ref,
            "messages": sum(outcomes.values()),
            "delivered": outcomes.get("delivered", 0),
            "failed": outcomes.get("failed", 0),
            "missing": outcomes.get("missing", 0),
            "refused": outcomes.get("refused", 0),
            "receipts": {
                "planned": sum(states.values()),
                "duplicates": dups[0] if dups else 0,
                "sent": states.get(SENT, 0),
                "pending": states.get(DUE, 0),
                "abandoned": states.get(ABANDONED, 0),
                "swallowed": states.get(SWALLOWED, 0),
            },
        }

    async def reset(self) -> None:
        """Forget every message and receipt; empty the throughput window; relative outage
        windows count from now. The profile stays."""
        async with self._deliver_lock:
            async with self.db.transaction() as conn:
                await conn.execute("DELETE FROM carrier_receipts")
                await conn.execute("DELETE FROM carrier_messages")
            self.rate.reset()
            await self._save_state(anchor=self.clock.now())


# -- the web app ------------------------------------------------------------------------------------
carrier_key = web.AppKey("carrier", CarrierServer)
routes = web.RouteTableDef()


PUBLIC_PATHS = ("/healthz",)


@web.middleware
async def _auth(request: web.Request, handler):
    """With a ``--token``, every endpoint but /healthz needs ``Authorization: Bearer <token>``.
    Without one the carrier listens on loopback only (``_run`` refuses anything else)."""
    token = request.app[carrier_key].token
    if token is None or request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode()):
        response = _error(401, "unauthorized", "the carrier's API needs 'Authorization: Bearer <token>' with its --token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="smslab carrier"'
        return response
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ServiceError as exc:
        body = {"code": exc.code, "message": exc.message}
        if exc.field:
            body["field"] = exc.field
        return _json({"error": body}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, "error", exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", "the carrier hit an unexpected error; it was logged")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    await c.db.fetchone("SELECT 1")
    return _json({"status": "ok", "clock": c.clock.mode, "now": to_rfc3339(c.clock.now()), "callback": c.callback,
                  "webhooks": c.stats})


@routes.post("/submit")
async def submit(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    raw = await read(request)
    stripped = raw.lstrip()
    if stripped.startswith(b"["):  # a bare list of messages is accepted too
        items = _decode(raw, list[SubmitIn])
    else:
        items = _decode(raw, SubmitBody).messages
    if len(items) > MAX_SUBMIT_BATCH:
        raise Invalid(f"messages: at most {MAX_SUBMIT_BATCH} per request", field="messages")
    for i, item in enumerate(items):
        if not item.key:
            raise Invalid(f"messages[{i}].key: must not be empty", field=f"messages.{i}.key")
        if not 1 <= item.parts <= 255:
            raise Invalid(f"messages[{i}].parts: must be between 1 and 255", field=f"messages.{i}.parts")
    refusal = c.admit(len(items))
    if refusal is not None:
        status, message, wait = refusal
        headers = {"Retry-After": f"{wait:.3f}"} if wait is not None else None
        return _error(status, "throttled" if status == 429 else "outage", message, headers=headers)
    return _json({"results": await c.submit(items)})


@routes.get("/messages/{platform_id}")
async def message(request: web.Request) -> web.Response:
    found = await request.app[carrier_key].message(request.match_info["platform_id"])
    if found is None:
        raise NotFound(f"no message with platform_id {request.match_info['platform_id']!r}")
    return _json(found)


@routes.get("/profile")
async def get_profile(request: web.Request) -> web.Response:
    return _json(profiles.to_builtins(request.app[carrier_key].profile))


@routes.put("/profile")
async def put_profile(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    new = profiles.profile_from_request(await read(request))
    await c.set_profile(new)
    return _json(profiles.to_builtins(new))


@routes.patch("/profile")
async def patch_profile(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    new = profiles.profile_from_request(await read(request), patching=c.profile)
    await c.set_profile(new)
    return _json(profiles.to_builtins(new))


@routes.get("/presets")
async def list_presets(request: web.Request) -> web.Response:
    items = [{"name": n, "description": profiles.preset_description(n)} for n in profiles.preset_names()]
    return _json({"items": items, "next_cursor": None})


@routes.post("/presets/{name}")
async def activate_preset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        preset = profiles.load_preset(name)
    except KeyError:
        raise NotFound(f"no preset named {name!r}; presets: {', '.join(profiles.preset_names())}") from None
    await request.app[carrier_key].set_profile(preset)
    return _json(profiles.to_builtins(preset))


@routes.post("/moderate")
async def moderate(request: web.Request) -> web.Response:
    body = _decode(await read(request), ModerateBody)
    lowered = body.text.lower()
    words = request.app[carrier_key].profile.moderation.banned_words
    return _json({"reasons": [f'the content contains the banned word "{w}"' for w in words if w.lower() in lowered]})


@routes.get("/clock")
async def get_clock(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    return _json({"now": to_rfc3339(c.clock.now()), "mode": c.clock.mode})


@routes.post("/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    body = _decode(await read(request), AdvanceBody)
    if not 0 <= body.seconds <= 10 * 365 * 86400:
        raise Invalid("seconds: must be between 0 and ten years", field="seconds")
    now = await c.advance(body.seconds)
    return _json({"now": to_rfc3339(now), "mode": c.clock.mode})


def _task_ref(request: web.Request) -> str:
    raw = request.query.get("task_id")
    if not raw:
        raise Invalid("task_id: required", field="task_id")
    return raw


@routes.post("/deliver")
async def deliver(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    if not c.callback:
        raise Conflict("the carrier has no --callback to deliver to", code="no_callback")
    return _json(await c.flush())


@routes.get("/ground-truth")
async def ground_truth(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    items, next_cursor = await c.ground_truth(
        _task_ref(request), paging.decode(request.query.get("cursor")), paging.limit_of(request.query.get("limit")))
    return _json({"items": items, "next_cursor": next_cursor})


@routes.get("/ground-truth/summary")
async def ground_truth_summary(request: web.Request) -> web.Response:
    return _json(await request.app[carrier_key].summary(_task_ref(request)))


@routes.post("/reset")
async def reset(request: web.Request) -> web.Response:
    await request.app[carrier_key].reset()
    return _json({"reset": True})


def create_app(carrier: CarrierServer) -> web.Application:
    from gateway.web import protocol_errors

    protocol_errors.install()
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_errors, _auth])
    app[carrier_key] = carrier
    app.add_routes(routes)

    async def lifecycle(_app: web.Application):
        await carrier.start()
        try:
            yield
        finally:
            await carrier.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


# -- the command line ----------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    profile = None
    if args.profile:
        try:
            profile = load_profile(args.profile)
        except KeyError:
            print(f"smslab carrier: --profile {args.profile!r} is neither a file nor a preset "
                  f"({', '.join(profiles.preset_names())})", file=sys.stderr)
            return 2
        except profiles.ProfileError as exc:
            print(f"smslab carrier: --profile {args.profile}: {exc}", file=sys.stderr)
            return 2
    if args.callback and not args.secret:
        print("smslab carrier: --callback needs --secret (or SMSLAB_CARRIER_SECRET) to sign webhooks", file=sys.stderr)
        return 2
    if not args.token and not _loopback(args.host):
        print(f"smslab carrier: refusing to listen on {args.host} without --token (or SMSLAB_CARRIER_TOKEN):"
              " its API controls the carrier", file=sys.stderr)
        return 2
    carrier = CarrierServer(args.db, clock=args.clock, clock_start=args.clock_start, profile=profile,
                            callback=args.callback, secret=args.secret, token=args.token)
    app = create_app(carrier)

    async def announce(_app: web.Application) -> None:
        print(f"smslab carrier serving on http://{args.host}:{args.port} (database {args.db}, clock {args.clock}, "
              f"callback {args.callback or 'none'})", flush=True)
        print("Its API needs 'Authorization: Bearer <--token>'." if args.token
              else "Its API is open to this machine only (no --token).", flush=True)

    app.on_startup.append(announce)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


def _loopback(host: str) -> bool:
    import ipaddress
    import socket

    if not host:
        return False  # every interface
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, ValueError):
        return False


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    import os

    env = os.environ
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(env.get("SMSLAB_CARRIER_PORT", 9090)), help="default 9090")
    parser.add_argument("--db", default=env.get("SMSLAB_CARRIER_DB", "smslab-carrier.db"),
                        help="the carrier's own SQLite file (default: ./smslab-carrier.db)")
    parser.add_argument("--profile", default=env.get("SMSLAB_CARRIER_PROFILE"),
                        help="behaviour profile: a TOML/JSON file or a preset name (default: the stored one, else defaults)")
    parser.add_argument("--callback", default=env.get("SMSLAB_CARRIER_CALLBACK"),
                        help="URL receipts are pushed to, e.g. http://127.0.0.1:8080/api/v1/platforms/http/receipts")
    parser.add_argument("--secret", default=env.get("SMSLAB_CARRIER_SECRET"), help="shared secret that signs the webhooks")
    parser.add_argument("--token", default=env.get("SMSLAB_CARRIER_TOKEN"),
                        help="bearer token every API call but /healthz must carry (required to listen beyond loopback)")
    parser.add_argument("--clock", default="wall", choices=["wall", "virtual"],
                        help="wall time, or a virtual clock moved by POST /clock/advance")
    parser.add_argument("--clock-start", type=float, default=None,
                        help="virtual clock: its first instant in epoch seconds (default: now; a restart resumes where it was)")
    parser.set_defaults(func=_run)
    return parser


def add_carrier_command(subparsers) -> argparse.ArgumentParser:
    """Adds ``carrier`` to the ``smslab`` command line (gateway.cli.build_parser)."""
    parser = subparsers.add_parser("carrier", help="run the simulated carrier as its own HTTP server with signed webhooks",
                                   description="Run the simulated carrier as its own HTTP server (see docs/carrier.md).")
    return _configure(parser)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = _configure(argparse.ArgumentParser(prog="smslab carrier", description="Run the simulated carrier as its own HTTP server."))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
