"""The ``twilio`` platform: sends a task's numbers through Twilio's Messages API
(``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``), at Twilio or at any base URL that
speaks it (``smslab carrier --twilio SID:TOKEN``), and takes Twilio's status callbacks at
``POST /api/v1/platforms/{name}/receipts``, verified by their ``X-Twilio-Signature``.

Idempotency: Twilio has no idempotency key. Each number's MessageSid is written to the
platform's store (``k:{key}``) as the answers come (``STORE_EVERY`` at a time, and the rest
before ``submit`` returns), and a key found there is answered from it without a request. What a
``kill -9`` of the gateway can resend: the requests in flight (at most ``concurrency``) and the
answered ones not yet written (fewer than ``STORE_EVERY``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import msgspec

from gateway.platform import Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult, Throttled, WebhookRejected

from .settings import Settings

log = logging.getLogger("smslab.twilio")

STORE_EVERY = 32  # answered numbers whose MessageSids are written to the store together

# Twilio's error codes whose batch may go again later (throttled, Twilio unavailable)
RETRYABLE_CODES = {20429, 20500, 20503, 30001}
# codes that say the credentials or the sender are wrong: the whole task fails
FATAL_CODES = {20003, 20005, 20008, 20404, 21606, 21603, 21212, 21701, 21611}
ERROR_TEXT = {
    30003: "Unreachable destination handset", 30004: "Message blocked", 30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier", 30007: "Message filtered", 30008: "Unknown error",
    30036: "Validity period expired", 30001: "Queue overflow", 30002: "Account suspended",
}


class _Answer(msgspec.Struct):
    sid: str | None = None
    status: str | int | None = None  # a message's status, or an error's HTTP status
    code: int | None = None
    more_info: str | None = None
    message: str | None = None


_answer = msgspec.json.Decoder(_Answer)


class TwilioPlatform(Platform):
    description = "Twilio's Messages API (or smslab carrier's emulation of it): receipts by signed status callbacks."
    webhook_requires_token = False  # status callbacks carry X-Twilio-Signature instead

    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.name
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(settings.concurrency)

    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        credentials = f"{self.settings.account_sid}:{self.settings.auth_token}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode(), "User-Agent": "smslab-twilio/0.1"}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout), headers=headers)
        if not self.settings.callback_url:
            log.info("platform %s: no SMSLAB_TWILIO_CALLBACK_URL; Twilio will send no status callbacks, so no receipts",
                     self.name)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="webhook", base_url=self.settings.base_url, account_sid=self.settings.account_sid,
                    callback_url=self.settings.callback_url or None)
        return info

    # -- submission ----------------------------------------------------------------------------------
    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        if not batch:
            return []
        if self._session is None:
            raise PlatformError(f"platform {self.name} is not started", retryable=True)
        known = await self.ctx.store.get_many([f"k:{item.key}" for item in batch]) if self.ctx.store is not None else {}
        results: dict[str, SubmitResult] = {}
        todo = []
        for item in batch:
            sid = known.get(f"k:{item.key}")
            if sid:
                results[item.key] = SubmitResult(item.key, sid)
            else:
                todo.append(item)
        buffer: dict[str, str] = {}
        halted: list[PlatformError] = []  # once Twilio refused the batch, the numbers not yet sent wait for the retry

        async def flush() -> None:
            if buffer and self.ctx.store is not None:
                batch_ids = dict(buffer)
                buffer.clear()
                await self.ctx.store.put_many(batch_ids)

        async def send(item: SubmitItem) -> SubmitResult | PlatformError:
            outcome = halted[0] if halted else await self._send(item, halted)
            if isinstance(outcome, PlatformError) and not halted:
                halted.append(outcome)
            if isinstance(outcome, SubmitResult) and outcome.platform_id:
                buffer[f"k:{item.key}"] = outcome.platform_id
                if len(buffer) >= STORE_EVERY:  # a crash resends at most these and the ones in flight
                    await flush()
            return outcome

        outcomes = await asyncio.gather(*(send(item) for item in todo))
        await flush()  # before anything is answered: see the module's docstring
        stop: PlatformError | None = None
        for item, outcome in zip(todo, outcomes):
            if isinstance(outcome, PlatformError):
                # the batch fails with the gravest: a fatal error, else throttling, else another
                if stop is None or _gravity(outcome) < _gravity(stop):
                    stop = outcome
                continue
            results[item.key] = outcome
        if stop is not None:
            raise stop
        return [results[item.key] for item in batch]

    async def _send(self, item: SubmitItem, halted: list | None = None) -> SubmitResult | PlatformError:
        s = self.settings
        form = {"To": item.number, "Body": item.text}
        if s.messaging_service_sid:
            form["MessagingServiceSid"] = s.messaging_service_sid
        if s.sender:
            form["From"] = s.sender
        if s.callback_url:
            form["StatusCallback"] = s.callback_url
        url = f"{s.base_url}/2010-04-01/Accounts/{s.account_sid}/Messages.json"
        async with self._limit:
            if halted:
                return halted[0]
            try:
                async with self._session.post(url, data=form) as resp:
                    status, body = resp.status, await resp.read()
                    retry_after = _seconds(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                return PlatformError(f"Twilio at {s.base_url} is unreachable: {type(exc).__name__} {exc}".rstrip(),
                                     retryable=True)
        try:
            answer = _answer.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            answer = _Answer(message=body[:200].decode(errors="replace"))
        if status == 201 and answer.sid:
            return SubmitResult(item.key, answer.sid)
        code = answer.code
        text = f"Twilio {code}: {answer.message}" if code else f"Twilio answered {status}: {answer.message}"
        if status == 429 or code == 20429:
            return Throttled(text, retry_after=retry_after if retry_after is not None else 1.0)
        if status >= 500 or status == 408 or code in RETRYABLE_CODES:
            return PlatformError(text, retryable=True, retry_after=retry_after)
        if status in (401, 403) or code in FATAL_CODES:
            return PlatformError(text, retryable=False)
        if 400 <= status < 500 and code:
            return SubmitResult(item.key, None, str(code), answer.message or f"Twilio error {code}")
        return PlatformError(text, retryable=True)

    # -- status callbacks ------------------------------------------------------------------------------
    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """401 without a valid ``X-Twilio-Signature`` for the callback URL; 400 for a body that is
        not a status callback. ``delivered``, ``undelivered`` and ``failed`` become receipts;
        the other statuses (queued, sent, ...) are taken and ignored."""
        s = self.settings
        given = next((v for k, v in headers.items() if k.lower() == "x-twilio-signature"), None)
        if not given:
            raise WebhookRejected("no X-Twilio-Signature", status=401)
        if not s.callback_url:
            raise WebhookRejected("no SMSLAB_TWILIO_CALLBACK_URL: status callbacks cannot be verified", status=401)
        params = parse_params(body)
        if params is None:
            raise WebhookRejected("not a form-encoded body", status=401)
        if not any(hmac.compare_digest(signature(s.auth_token, url, params).encode(), given.encode("utf-8", "replace"))
                   for url in url_variants(s.callback_url)):
            raise WebhookRejected("X-Twilio-Signature does not match", status=401)
        values = dict(params)
        sid, status = values.get("MessageSid") or values.get("SmsSid"), values.get("MessageStatus") or values.get("SmsStatus")
        if not sid or not status:
            raise WebhookRejected("body: MessageSid and MessageStatus are required", status=400)
        if values.get("AccountSid") not in (None, s.account_sid):
            raise WebhookRejected("AccountSid: not this platform's account", status=401)
        if status == "delivered":
            return [Receipt(platform_id=sid, status="delivered", at=now, code="DELIVERED")]
        if status in ("undelivered", "failed"):
            code = values.get("ErrorCode") or ("30008" if status == "failed" else "30003")
            text = ERROR_TEXT.get(int(code), f"Twilio error {code}") if code.isdigit() and len(code) < 9 else f"Twilio error {code}"
            return [Receipt(platform_id=sid, status="failed", at=now, code=code[:64], message=f"{status}: {text}")]
        return []


def parse_params(body: bytes) -> list[tuple[str, str]] | None:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return None


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted parameters."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def url_variants(url: str) -> list[str]:
    """The URL as configured, and with its default port added or dropped (Twilio's own
    validators accept either: a proxy may have changed it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    default = {"https": 443, "http": 80}.get(parts.scheme)
    out = [url]
    if port is None and default and parts.hostname:
        out.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif port == default and parts.hostname:
        out.append(urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])))
    return out


def _gravity(error: PlatformError) -> int:
    return 0 if not error.retryable else 1 if isinstance(error, Throttled) else 2


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


__all__ = ["TwilioPlatform", "parse_params", "signature", "url_variants"]
