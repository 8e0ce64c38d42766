"""Twilio's Messages API (2010-04-01) on the carrier's HTTP port (SPEC §13).

An application points the official Twilio SDK at ``smslab carrier`` (``client.api.base_url =
"http://127.0.0.1:9090"``) and gets the carrier's seeded behaviour, status callbacks and ground
truth:

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form fields ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body``, ``StatusCallback``) → 201 with Twilio's message JSON;
  ``GET …/Messages/{Sid}.json``; ``GET …/Messages.json`` (Twilio's paging, filters ``To``,
  ``From``, ``DateSent``, ``DateSent<``, ``DateSent>``);
- HTTP Basic auth ``AccountSid:AuthToken`` of a ``twilio`` account (``--twilio SID:TOKEN`` or
  ``PUT /accounts/{sid}`` with ``"protocol": "twilio"``); the URL's AccountSid must be the
  caller's (401, error 20003, otherwise);
- errors in Twilio's JSON shape (``code``, ``message``, ``more_info``, ``status``): 21604, 21603,
  21602, 21617, 21211 (a ``To`` that is not a phone number, by ``phonenumbers``), 21212, 21606,
  21611 (Twilio's test ``From`` numbers), 21609 (a bad ``StatusCallback``), 21610 (a recipient
  who replied STOP through ``POST /mo``), 20429 (throttled: the account's or the profile's
  ``throughput_limit``, HTTP 429), 20503 (a submit outage, HTTP 503), 20404; the profile's magic
  numbers refuse as Twilio does (+15005550001 21211, …0002 21612, …0003 21408, …0004 21610,
  …0009 21614);
- every accepted message is decided by the carrier core under the account's tenant, keyed
  ``{AccountSid}:{To}:{n}`` (``n`` the account's earlier messages to that number), one receipt per
  message whatever its segments;
- status callbacks ``queued`` → ``sent`` → ``delivered`` | ``undelivered`` | ``failed`` (with
  ``ErrorCode``, see ``twilio_wire.FAILURE_CODES``) POSTed form-encoded to the message's
  ``StatusCallback`` (else the account's ``extra.status_callback``), signed with
  ``X-Twilio-Signature``, taken from the carrier's outbox per account and retried 60, 300 and
  600 seconds (carrier clock) after a failure until a 2xx (the acknowledgement). A message whose
  receipt the profile loses (``missing``) gets no final callback and stays ``sent``.

Ids: the core knows a message as ``{MessageSid}@{AccountSid}``; its sid is ``SM`` and 32 hex
digits derived from the decision key, so a replay against a fresh carrier gives the same sids.
The ``queued`` and ``sent`` callbacks wait in the outbox as items of their own (written at once,
like mobile-originated messages), the final one is the core's receipt.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from gateway.platform import SubmitItem
from gateway.storage.sqlite import bulk

from ..core.outbox import MO, RECEIPT, OutItem, keep_delivering
from . import twilio_wire as W

log = logging.getLogger("smslab.twilio")

CALLBACK_TIMEOUT = 10.0  # real seconds a status callback may take
CALLBACKS_AT_ONCE = 16  # status callbacks in flight per carrier
TAKE = 200  # outbox items taken per account per look
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
EVENT_RANK = {"queued": 0, "sent": 1}


class Meta(msgspec.Struct, array_like=True, gc=False):
    """What the API shows of a message beyond the core's decision (kept with it in its batch)."""

    sid: str
    to: str
    sender: str | None
    service: str | None
    body: str
    callback: str | None
    created: float
    segments: int
    sent_at: float  # when it left for the handset: created + the decision's submission latency


class TwilioApi:
    protocol = "twilio"

    def __init__(self) -> None:
        self.carrier = None
        self.messages: dict[str, OrderedDict[str, Meta]] = {}  # account -> sid -> meta, in order of creation
        self.opted_out: dict[str, set[str]] = {}  # account -> numbers that replied STOP
        self._counts: dict[tuple[str, str], int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._inflight = 0
        self._limit = asyncio.Semaphore(CALLBACKS_AT_ONCE)
        self._chains: dict[str, asyncio.Task] = {}
        self.stats = {"created": 0, "refused": 0, "callbacks_sent": 0, "callbacks_failed": 0}

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, carrier) -> None:
        self.carrier = carrier
        for tenant, msg_id, number, extra in await carrier.db.read(_twilio_messages):
            account = msg_id.rpartition("@")[2]
            key = (account, number)
            self._counts[key] = self._counts.get(key, 0) + 1
            if extra is not None:
                meta = msgspec.convert(extra, Meta)
                self.messages.setdefault(account, OrderedDict())[meta.sid] = meta
        for key, value in await carrier.db.fetchall("SELECT key, value FROM sim_state WHERE key LIKE 'twilio_optout:%'"):
            self.opted_out[key.partition(":")[2]] = set(msgspec.json.decode(value))
        for account in self.messages.values():  # oldest first, whatever order the books held them in
            ordered = sorted(account.values(), key=lambda m: m.created)
            account.clear()
            account.update((m.sid, m) for m in ordered)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT))
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="twilio-callbacks"))

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._chains.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def routes(self) -> list:
        base = "/2010-04-01/Accounts/{account}"
        return [
            web.post(base + "/Messages.json", self.create),
            web.get(base + "/Messages.json", self.list_messages),
            web.get(base + "/Messages/{sid}.json", self.fetch),
            web.route("*", "/2010-04-01/{tail:.*}", self.unknown),
        ]

    def authenticates(self, path: str) -> bool:
        return path.startswith("/2010-04-01/")

    # -- the carrier's view -----------------------------------------------------------------------
    def tenant_of(self, msg_id: str) -> str | None:
        if msg_id.startswith(("SM", "MM")) and "@" in msg_id:
            return msg_id.rpartition("@")[2]
        return None

    def present(self, item: dict[str, Any]) -> None:
        """Ground truth: the message's Twilio sid, addresses and status as ``GET`` shows it."""
        extra = item.get("_extra")
        meta = msgspec.convert(extra, Meta) if extra is not None else None
        refused = item["outcome"] == "refused"
        item["sid"] = None if refused or meta is None else meta.sid
        item["platform_id"] = item["sid"]
        item["message_id"] = item["sid"]
        if meta is not None:
            item.update(to=meta.to, **{"from": meta.sender}, messaging_service_sid=meta.service,
                        status_callback=meta.callback, num_segments=meta.segments)
            if not refused:
                status, error, _ = _state(meta, item)
                item["status"] = status
                item["error_code"] = error
        for r in item["receipts"]:
            r["message_sid"] = item["sid"]
            if r["status"] in ("delivered", "failed"):
                r["message_status"], r["error_code"] = W.final_status(r["status"], r["code"])

    async def account_removed(self, name: str) -> None:
        self.messages.pop(name, None)

    # -- requests ---------------------------------------------------------------------------------
    def _error(self, request: web.Request, account: str | None, command: str, status: int, code: int, message: str,
               **fields) -> web.Response:
        self._journal(account, command, request, status, code=code, **fields)
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
        if status == 429:
            headers = {"Retry-After": "1"}
        return web.json_response(W.error_body(status, code, message), status=status, headers=headers)

    def _journal(self, account: str | None, command: str, request: web.Request | None, status: int | None, **fields) -> None:
        c = self.carrier
        if request is not None:
            fields = {"method": request.method, "path": request.path, "status": status, **fields}
        c.journal.add(c.clock.now(), "in" if request is not None else "out", account, command, **fields)

    def _authenticate(self, request: web.Request):
        """The account the request's Basic credentials name, when they are right and it is the
        URL's; else None."""
        url_sid = request.match_info.get("account", "")
        given = W.parse_basic(request.headers.get("Authorization"))
        if given is None:
            return None
        user, token = given
        account = self.carrier.accounts.get(user)
        if account is None or account.protocol != "twilio" or not account.secret:
            return None
        if not hmac.compare_digest(account.secret.encode("utf-8", "surrogateescape"),
                                   token.encode("utf-8", "surrogateescape")):
            return None
        if user != url_sid:
            return None
        return account

    def _unauthorized(self, request: web.Request, command: str) -> web.Response:
        url_sid = request.match_info.get("account")
        known = url_sid if url_sid and self.carrier.accounts.get(url_sid) is not None else None
        return self._error(request, known, command, 401, 20003, "Authenticate")

    async def unknown(self, request: web.Request) -> web.Response:
        if request.method in ("POST", "GET", "DELETE") and request.path.startswith(W.PREFIX):
            status, code, message = 404, 20404, f"The requested resource {request.path} was not found"
        else:
            status, code, message = 405, 20004, "Method not allowed"
        return self._error(request, None, "unknown", status, code, message)

    async def create(self, request: web.Request) -> web.Response:
        c = self.carrier
        account = self._authenticate(request)
        if account is None:
            return self._unauthorized(request, "messages.create")
        name = account.name
        try:
            raw = await request.read()
        except web.HTTPException:
            raw = b"\xff"  # too large: refused below as undecodable
        form = W.parse_form(raw)
        if form is None:
            return self._error(request, name, "messages.create", 400, 20001,
                               "Could not decode the request body as application/x-www-form-urlencoded UTF-8")

        def one(field: str) -> str | None:
            values = form.get(field)
            return values[-1].strip() if values else None

        to, sender, service = one("To"), one("From"), one("MessagingServiceSid")
        body = form.get("Body", [""])[-1]
        callback = one("StatusCallback") or account.extra.get("status_callback") or None
        media = one("MediaUrl")
        fields = {"To": to, "From": sender, "MessagingServiceSid": service, "StatusCallback": callback,
                  "Body": body[:160]}

        def refuse(status: int, code: int, message: str) -> web.Response:
            self.stats["refused"] += 1
            return self._error(request, name, "messages.create", status, code, message, fields=fields)

        if not to:
            return refuse(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return refuse(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
        if service and not W.SERVICE_SID.match(service):
            return refuse(404, 21701, f"The Messaging Service Sid {service} is invalid.")
        if not body.strip() and not media:
            return refuse(400, 21602, "Message body is required.")
        if len(body) > W.MAX_BODY_CHARS:
            return refuse(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if callback and not W.valid_status_callback(callback):
            return refuse(400, 21609, f"The StatusCallback URL {callback} is not a valid URL.")
        if sender:
            magic = W.MAGIC_FROM.get(sender)
            if magic is not None:
                return refuse(400, magic[0], magic[1].format(sender=sender))
            if not _valid_sender(sender):
                return refuse(400, 21212, f"The 'From' number {sender} is not a valid phone number, shortcode, or "
                                          "alphanumeric sender ID.")
        tenant = c.core.tenant(name)
        tenant.throughput_limit = account.throughput_limit
        profile = tenant.profile
        number = _e164(to)
        rule = tenant.rulebook(profile).match(number) if number else None
        if rule is None and (number is None or not _valid_number(number)):
            return refuse(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if number in self.opted_out.get(name, ()):
            return refuse(400, 21610, "Attempt to send to unsubscribed recipient")
        now = c.clock.now()
        admitted = tenant.admit(1, now)
        if admitted is not None:
            if admitted.kind == "throttled":
                c.stats["throttled_batches"] += 1
                return refuse(429, 20429, "Too Many Requests")
            c.stats["outage_refusals"] += 1
            return refuse(503, 20503, "Service Unavailable")
        from gateway.domain.segments import segment

        segments = min(segment(body).parts, 63) if body else 1
        count_key = (name, number)
        n = self._counts.get(count_key, 0)
        self._counts[count_key] = n + 1
        key = f"{name}:{number}:{n}"
        sid = "SM" + hashlib.sha256(key.encode()).hexdigest()[:32]
        msg_id = f"{sid}@{name}"
        meta = Meta(sid, number, sender, service, body, callback, now, segments, now)
        refused, due_rows = await c.core.submit(tenant, [SubmitItem(msg_id, 0, number, "", segments)], [msg_id], [key],
                                                known=False, extras=[meta], receipt_parts=[1])
        code = refused.get(msg_id)
        if code is not None:
            status, twilio_code, message = W.refusal(code, number, sender)
            return refuse(status, twilio_code, message)
        if due_rows:
            c.wake()
        latency = await self._latency(name, msg_id)
        meta.sent_at = now + latency
        self.messages.setdefault(name, OrderedDict())[sid] = meta
        self.stats["created"] += 1
        if callback:
            await c.outbox.add_mo(name, msg_id, now, {"event": "queued"})
            await c.outbox.add_mo(name, msg_id, meta.sent_at, {"event": "sent"})
            self._wake.set()
        out = self._resource(name, meta, "accepted" if service else "queued", None, now)
        self._journal(name, "messages.create", request, 201, sid=sid, fields=fields)
        return web.json_response(out, status=201)

    async def _latency(self, account: str, msg_id: str) -> float:
        items = await self.carrier.core.messages(account, [msg_id])
        return float(items[0]["submit_latency"] or 0.0) if items else 0.0

    async def fetch(self, request: web.Request) -> web.Response:
        account = self._authenticate(request)
        if account is None:
            return self._unauthorized(request, "messages.fetch")
        sid = request.match_info["sid"]
        meta = self.messages.get(account.name, {}).get(sid)
        items = await self.carrier.core.messages(account.name, [f"{sid}@{account.name}"]) if meta is not None else []
        if not items:
            return self._error(request, account.name, "messages.fetch", 404, 20404,
                               f"The requested resource {request.path} was not found", sid=sid)
        status, error, updated = _state(meta, items[0], self.carrier.clock.now())
        self._journal(account.name, "messages.fetch", request, 200, sid=sid, message_status=status)
        return web.json_response(self._resource(account.name, meta, status, error, updated))

    async def list_messages(self, request: web.Request) -> web.Response:
        account = self._authenticate(request)
        if account is None:
            return self._unauthorized(request, "messages.list")
        name = account.name
        q = request.query
        try:
            size = int(q.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(q.get("Page", 0))
            if not 1 <= size <= MAX_PAGE_SIZE or not 0 <= page < 10**9:
                raise ValueError
        except ValueError:
            return self._error(request, name, "messages.list", 400, 20001,
                               f"PageSize must be 1 to {MAX_PAGE_SIZE} and Page a number from 0")
        try:
            dates = {op: _date(q[f"DateSent{op}"]) for op in ("", "<", ">") if q.get(f"DateSent{op}")}
        except ValueError:
            return self._error(request, name, "messages.list", 400, 20001, "DateSent must be a date (YYYY-MM-DD)")
        to, sender = _e164(q["To"]) if q.get("To") else None, q.get("From")
        token = q.get("PageToken")
        chosen = []
        for meta in reversed(self.messages.get(name, {}).values()):  # newest first, like Twilio
            if to is not None and meta.to != to:
                continue
            if sender is not None and meta.sender != sender:
                continue
            day = datetime.fromtimestamp(meta.sent_at, timezone.utc).date()
            if ("" in dates and day != dates[""]) or ("<" in dates and day > dates["<"]) or (">" in dates and day < dates[">"]):
                continue
            chosen.append(meta)
        start = page * size
        if token:
            after = token[2:] if token.startswith("PA") else ""
            place = next((i for i, m in enumerate(chosen) if m.sid == after), None)
            if place is None:
                return self._error(request, name, "messages.list", 400, 20001, "PageToken is not one this API gave out")
            start = place + 1
        shown = chosen[start:start + size]
        items = {i["_id"]: i for i in await self.carrier.core.messages(name, [f"{m.sid}@{name}" for m in shown])}
        now = self.carrier.clock.now()
        messages = []
        for meta in shown:
            item = items.get(f"{meta.sid}@{name}")
            if item is None:
                continue  # forgotten by a reset
            status, error, updated = _state(meta, item, now)
            messages.append(self._resource(name, meta, status, error, updated))
        base = f"{W.PREFIX}{name}/Messages.json"
        filters = "".join(f"&{k}={_quote(v)}" for k, v in q.items() if k in ("To", "From", "DateSent", "DateSent<", "DateSent>"))
        more = start + size < len(chosen)
        out = {
            "messages": messages,
            "end": start + len(shown) - 1 if shown else 0,
            "first_page_uri": f"{base}?PageSize={size}{filters}&Page=0",
            "next_page_uri": f"{base}?PageSize={size}{filters}&Page={page + 1}&PageToken=PA{shown[-1].sid}" if more else None,
            "previous_page_uri": f"{base}?PageSize={size}{filters}&Page={page - 1}" if page > 0 else None,
            "page": page,
            "page_size": size,
            "start": start,
            "uri": f"{base}?PageSize={size}{filters}&Page={page}" + (f"&PageToken={_quote(token)}" if token else ""),
        }
        self._journal(name, "messages.list", request, 200, count=len(messages))
        return web.json_response(out)

    def _resource(self, account: str, meta: Meta, status: str, error: int | None, updated: float) -> dict:
        uri = f"{W.PREFIX}{account}/Messages/{meta.sid}.json"
        sent = meta.sent_at if status not in ("queued", "accepted") else None
        return {
            "account_sid": account,
            "api_version": W.API_VERSION,
            "body": meta.body,
            "date_created": W.rfc2822(meta.created),
            "date_sent": W.rfc2822(sent),
            "date_updated": W.rfc2822(updated),
            "direction": "outbound-api",
            "error_code": error,
            "error_message": None if error is None else _error_text(error),
            "from": meta.sender,
            "messaging_service_sid": meta.service,
            "num_media": "0",
            "num_segments": str(meta.segments),
            "price": None,
            "price_unit": "USD",
            "sid": meta.sid,
            "status": status,
            "subresource_uris": {"media": f"{W.PREFIX}{account}/Messages/{meta.sid}/Media.json",
                                 "feedback": f"{W.PREFIX}{account}/Messages/{meta.sid}/Feedback.json"},
            "to": meta.to,
            "uri": uri,
        }

    # -- mobile-originated messages (POST /mo) ------------------------------------------------------
    async def mobile_originated(self, account: str, sender: str, to: str, text: str) -> dict:
        """A reply from a handset: STOP (and Twilio's other opt-out words) puts the sender on the
        account's opt-out list (21610 for later messages to it), START takes it off."""
        c = self.carrier
        word = text.strip().upper()
        number = _e164(sender) or sender
        opted = self.opted_out.setdefault(account, set())
        change = None
        if word in W.OPT_OUT_WORDS and number not in opted:
            opted.add(number)
            change = "opted_out"
        elif word in W.OPT_IN_WORDS and number in opted:
            opted.discard(number)
            change = "opted_in"
        if change:
            value = msgspec.json.encode(sorted(opted)).decode()
            await c.db.write(lambda conn: conn.execute("INSERT OR REPLACE INTO sim_state(key, value) VALUES (?, ?)",
                                                       (f"twilio_optout:{account}", value)))
        now = c.clock.now()
        sid = "SM" + hashlib.sha256(f"mo:{account}:{number}:{now}:{text}".encode()).hexdigest()[:32]
        c.journal.add(now, "in", account, "mo", sid=sid, **{"from": number, "to": to, "text": text[:160]}, change=change)
        return {"id": sid, "account": account, "from": number, "to": to, "text": text, "at": W.rfc2822(now),
                "opt_out": change, "delivery": None}

    # -- status callbacks ----------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        await keep_delivering(self.carrier.outbox, self.dispatch, self._wake, log,
                              "sending Twilio status callbacks failed; retrying")

    async def dispatch(self) -> int:
        """Take every Twilio account's due callbacks and send them: one message's in order
        (queued, sent, its final status), different messages' concurrently."""
        c = self.carrier
        if c.accounts is None:
            return 0
        now = c.clock.now()
        sent = 0
        for name, account in list(c.accounts.by_name.items()):
            if account.protocol != "twilio":
                continue
            items = c.outbox.take(now, name, TAKE)
            if not items:
                continue
            groups: dict[str, list[OutItem]] = {}
            skipped = []
            for item in items:
                meta = self._meta(name, item.msg_id)
                if meta is None or not meta.callback or (item.kind == RECEIPT and item.status not in ("delivered", "failed")):
                    skipped.append(item)
                    continue
                groups.setdefault(item.msg_id, []).append(item)
            if skipped:
                c.outbox.not_requested([i for i in skipped if i.kind == RECEIPT], now)
                for item in skipped:
                    if item.kind == MO:
                        c.outbox.sent([item], now, acked=True)
            for msg_id, group in groups.items():
                group.sort(key=lambda i: (i.due_at, _rank(i)))
                self._inflight += 1
                # one message's callbacks go one after the other, also across looks
                task = asyncio.get_running_loop().create_task(self._send_group(account, group, self._chains.get(msg_id)))
                self._chains[msg_id] = task
                task.add_done_callback(functools.partial(self._done, msg_id))
                sent += len(group)
        return sent

    def _done(self, msg_id: str, task: asyncio.Task) -> None:
        self._inflight -= 1
        if self._chains.get(msg_id) is task:
            del self._chains[msg_id]
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("a status callback task failed: %r", task.exception())

    def _meta(self, account: str, msg_id: str) -> Meta | None:
        sid = msg_id.partition("@")[0]
        return self.messages.get(account, {}).get(sid)

    async def _send_group(self, account, group: list[OutItem], after: asyncio.Task | None) -> None:
        if after is not None and not after.done():
            await asyncio.wait([after])
        async with self._limit:
            for item in group:
                await self.send_callback(account, item)

    def callback_params(self, account: str, meta: Meta, item: OutItem) -> list[tuple[str, str]]:
        if item.kind == MO:
            event = msgspec.json.decode(item.body or "{}").get("event", "queued")
            error = None
        else:
            event, error = W.final_status(item.status or "failed", item.code)
        params = [("AccountSid", account), ("ApiVersion", W.API_VERSION), ("MessageSid", meta.sid),
                  ("MessageStatus", event), ("SmsSid", meta.sid), ("SmsStatus", event), ("To", meta.to),
                  ("From", meta.sender or "")]
        if meta.service:
            params.append(("MessagingServiceSid", meta.service))
        if error is not None:
            params.append(("ErrorCode", str(error)))
        if item.kind == RECEIPT:
            params.append(("RawDlrDoneDate", datetime.fromtimestamp(item.due_at, timezone.utc).strftime("%y%m%d%H%M")))
        return params

    async def send_callback(self, account, item: OutItem) -> bool:
        c = self.carrier
        meta = self._meta(account.name, item.msg_id)
        if meta is None or self._session is None:
            c.outbox.again([item], c.clock.now() + 1.0, "the message is not known any more")
            return False
        params = self.callback_params(account.name, meta, item)
        url = meta.callback
        headers = {"X-Twilio-Signature": W.signature(account.secret, url, params),
                   "I-Twilio-Idempotency-Token": f"{item.rid}",
                   "User-Agent": "TwilioProxy/1.1",
                   "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        from urllib.parse import urlencode

        error = None
        status = None
        try:
            async with self._session.post(url, data=urlencode(params).encode(), headers=headers) as resp:
                status = resp.status
                await resp.read()
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = c.clock.now()
        event = dict(params)["MessageStatus"]
        c.journal.add(now, "out", account.name, "status_callback", url=url, sid=meta.sid, message_status=event,
                      error_code=dict(params).get("ErrorCode"), status=status, error=error, attempt=item.attempts + 1)
        if error is None:
            self.stats["callbacks_sent"] += 1
            c.stats["receipts_sent"] += item.kind == RECEIPT
            c.outbox.sent([item], now, acked=True)  # a 2xx is the acknowledgement
            return True
        self.stats["callbacks_failed"] += 1
        abandoned = c.outbox.failed([item], now, error, c.retry_schedule)
        if item.kind == RECEIPT:
            c.stats["receipts_abandoned"] += abandoned
        else:
            c.outbox._dirty[item.rid] = item  # an MO-like item's row says where it stands
        return False


def _rank(item: OutItem) -> int:
    if item.kind == RECEIPT:
        return 2
    return EVENT_RANK.get(msgspec.json.decode(item.body or "{}").get("event", ""), 0)


def _state(meta: Meta, item: dict, now: float | None = None) -> tuple[str, int | None, float]:
    """(status, ErrorCode, date_updated) of a message: its final status once the core emitted its
    receipt, else ``sent`` once it left (at once, or after the profile's submission latency)."""
    emitted = [r for r in item["receipts"] if r.get("emitted_at") is not None and not r["swallowed"]
               and r["status"] in ("delivered", "failed")]
    if emitted:
        first = min(emitted, key=lambda r: r.get("due_at", 0.0) if "due_at" in r else 0.0)
        status, error = W.final_status(first["status"], first["code"])
        return status, error, first.get("due_at", meta.sent_at)
    if now is None or now >= meta.sent_at:
        return "sent", None, meta.sent_at
    return "queued", None, meta.created


def _error_text(code: int) -> str:
    return {30003: "Unreachable destination handset", 30004: "Message blocked", 30005: "Unknown destination handset",
            30007: "Message filtered", 30008: "Unknown error", 30036: "Validity period expired",
            30001: "Queue overflow", 30002: "Account suspended", 30006: "Landline or unreachable carrier"}.get(code, "Error")


def _e164(value: str) -> str | None:
    """A number as E.164 (+ and digits), or None: spaces, dashes, dots and brackets are dropped."""
    text = "".join(ch for ch in value.strip() if ch not in " -().")
    digits = text[1:] if text.startswith("+") else text
    if not (5 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()):
        return None
    return "+" + digits


def _valid_number(number: str) -> bool:
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def _valid_sender(sender: str) -> bool:
    if sender.startswith("+"):
        number = _e164(sender)
        return number is not None and _valid_number(number)
    if sender.startswith(("whatsapp:", "messenger:")):
        return False
    return bool(W.SHORT_CODE.match(sender) or W.ALPHANUMERIC_SENDER.match(sender))


def _date(text: str):
    return datetime.strptime(text, "%Y-%m-%d").date()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _twilio_messages(conn) -> list[tuple[str, str, str, Any]]:
    """(tenant, core id, number, extra) of every message the Twilio API recorded."""
    out = []
    for tenant, messages in conn.execute("SELECT tenant, messages FROM sim_batches WHERE tenant IS NOT NULL"):
        for msg_id, number, _parts, _outcome, _code, _latency, _rule, _planned, *extra in bulk.decode(messages):
            if msg_id.startswith("SM") and "@" in msg_id and len(msg_id.partition("@")[0]) == 34:
                out.append((tenant, msg_id, number, extra[0] if extra else None))
    return out
