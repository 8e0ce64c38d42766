"""The ``aliyun`` platform: sends through Alibaba Cloud SMS (Dysmsapi 2017-05-25 ``SendSms``, or
``smslab carrier`` speaking it), and takes its delivery reports (``SmsReport``) and replies
(``SmsUp``) as pushes at ``POST /api/v1/platforms/{name}/{token}/receipts``.

Settings (``config.extras["aliyun"]`` wins over the environment, which wins over the defaults):

=====================  ==================================  =================================
extras key             environment variable                default
=====================  ==================================  =================================
``name``               ``SMSLAB_ALIYUN_NAME``              ``aliyun``
``access_key_id``      ``SMSLAB_ALIYUN_ACCESS_KEY_ID``     (none: the platform is not registered)
``access_key_secret``  ``SMSLAB_ALIYUN_ACCESS_KEY_SECRET`` (none: the platform is not registered)
``endpoint``           ``SMSLAB_ALIYUN_ENDPOINT``          ``https://dysmsapi.aliyuncs.com``
``sign_name``          ``SMSLAB_ALIYUN_SIGN_NAME``         the text's ``【...】`` signature, else ``smslab``
``template_code``      ``SMSLAB_ALIYUN_TEMPLATE_CODE``     ``SMS_SMSLAB``
``template_param``     ``SMSLAB_ALIYUN_TEMPLATE_PARAM``    ``content`` (the variable the text goes in)
``report_token``       ``SMSLAB_ALIYUN_REPORT_TOKEN``      (none: every push is refused)
``batch``              ``SMSLAB_ALIYUN_BATCH``             ``1000`` numbers per SendSms
``timeout``            ``SMSLAB_ALIYUN_TIMEOUT``           ``30`` seconds per request
=====================  ==================================  =================================

Requests are signed here (RPC v1, HMAC-SHA1; no SDK needed at run time). The platform id of a
number is ``{BizId}:{phone}``, the phone as sent (mainland numbers without +86), which is how
Alibaba's reports name it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import quote, urlencode

import aiohttp
import msgspec

from gateway.hookspecs import hookimpl
from gateway.web.openapi import Param, documented
from gateway.platform import (InboundMessage, Platform, PlatformConfigError, PlatformContext, PlatformError, Receipt,
                              SubmitItem, SubmitResult, Throttled, WebhookRejected)

log = logging.getLogger("smslab.aliyun")

CST = timezone(timedelta(hours=8))  # Alibaba writes its dates in China Standard Time
MAX_NUMBERS = 1000  # SendSms's PhoneNumbers
MAX_PUSH = 4 * 1024 * 1024
SIGNATURE = re.compile(r"^\s*【([^【】]{1,40})】|【([^【】]{1,40})】\s*$")
RETRYABLE_AUTH = {"InvalidTimeStamp.Expired", "SignatureNonceUsed", "Throttling", "Throttling.User", "ServiceUnavailable"}
KEY_PREFIX = "k:"  # store: idempotency key -> platform id


@dataclass
class Settings:
    name: str = "aliyun"
    access_key_id: str = ""
    access_key_secret: str = ""
    endpoint: str = "https://dysmsapi.aliyuncs.com"
    sign_name: str = ""
    template_code: str = "SMS_SMSLAB"
    template_param: str = "content"
    report_token: str = ""
    batch: int = MAX_NUMBERS
    timeout: float = 30.0

    @classmethod
    def resolve(cls, extras: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        given = dict((extras or {}).get("aliyun") or {})

        def pick(key: str, default: Any) -> Any:
            value = given.get(key)
            if value in (None, ""):
                value = env.get(f"SMSLAB_ALIYUN_{key.upper()}")
            return default if value in (None, "") else value

        s = cls()
        s.name = str(pick("name", s.name))
        s.access_key_id = str(pick("access_key_id", ""))
        s.access_key_secret = str(pick("access_key_secret", ""))
        endpoint = str(pick("endpoint", s.endpoint)).rstrip("/")
        s.endpoint = endpoint if "://" in endpoint else f"https://{endpoint}"
        s.sign_name = str(pick("sign_name", ""))
        s.template_code = str(pick("template_code", s.template_code))
        s.template_param = str(pick("template_param", s.template_param))
        s.report_token = str(pick("report_token", ""))
        try:
            s.batch = int(pick("batch", s.batch))
            s.timeout = float(pick("timeout", s.timeout))
        except (TypeError, ValueError) as exc:
            raise PlatformConfigError(f"SMSLAB_ALIYUN_BATCH / SMSLAB_ALIYUN_TIMEOUT must be numbers: {exc}") from None
        if not 1 <= s.batch <= MAX_NUMBERS:
            raise PlatformConfigError(f"SMSLAB_ALIYUN_BATCH must be 1 to {MAX_NUMBERS}, not {s.batch}")
        if not s.endpoint.startswith(("http://", "https://")):
            raise PlatformConfigError(f"SMSLAB_ALIYUN_ENDPOINT must be an http(s) URL, not {s.endpoint!r}")
        return s


# -- signing (RPC v1, HMAC-SHA1: what every Alibaba Cloud RPC API takes) ------------------------------
def _enc(value: str) -> str:
    return quote(value, safe="~", encoding="utf-8")


def sign(params: dict[str, str], secret: str, method: str = "POST") -> str:
    canonical = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    string_to_sign = f"{method}&%2F&{_enc(canonical)}"
    return base64.b64encode(hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


def signed_params(action: str, params: dict[str, str], key_id: str, secret: str, method: str = "POST") -> dict[str, str]:
    out = {"Action": action, "Version": "2017-05-25", "Format": "JSON", "AccessKeyId": key_id,
           "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
           "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **params}
    out["Signature"] = sign(out, secret, method)
    return out


# -- numbers and text -------------------------------------------------------------------------------------
def alibaba_number(number: str) -> str | None:
    """An E.164 number as Alibaba takes it: mainland mobiles as 11 digits, others as country
    code + number (``00`` in front when that would look like a mainland number: +1 202...);
    None for what is not a phone number."""
    digits = number[1:] if number.startswith("+") else number
    if not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 15):
        return None
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]
    if len(digits) == 11 and digits[0] == "1":
        return "00" + digits  # would read as a mainland number: the international prefix says it is not
    return digits


def split_signature(text: str, configured: str) -> tuple[str, str]:
    """(sign name, text without it): the configured sign name, else the text's 【...】 at its
    start or end, else ``smslab``; a 【sign】 equal to the sign name is taken off the text (the
    provider adds it back)."""
    found = SIGNATURE.search(text)
    name = (found.group(1) or found.group(2)) if found else None
    sign_name = configured or name or "smslab"
    if found and name == sign_name:
        text = (text[:found.start()] + text[found.end():]).strip()
    return sign_name, text


def _cst_time(value: Any) -> float | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST).timestamp()
    except ValueError:
        return None


class _Answer(msgspec.Struct):
    Code: str = ""
    Message: str = ""
    BizId: str | None = None
    RequestId: str | None = None


_decode_answer = msgspec.json.Decoder(_Answer).decode
_platforms: dict[str, "AliyunPlatform"] = {}  # started platforms by name: the push route finds them here


class AliyunPlatform(Platform):
    description = "Alibaba Cloud SMS (Dysmsapi SendSms): delivery reports and replies pushed to a secret URL."

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.resolve()
        self.name = self.settings.name
        self._session: aiohttp.ClientSession | None = None
        self.ctx: PlatformContext | None = None

    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        _platforms[self.name] = self
        if not self.settings.report_token:
            log.info("platform %s: no SMSLAB_ALIYUN_REPORT_TOKEN; every pushed report will be refused", self.name)

    async def stop(self) -> None:
        if _platforms.get(self.name) is self:
            del _platforms[self.name]
        if self._session is not None:
            await self._session.close()
            self._session = None

    def max_recipients(self) -> int | None:
        return None

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="push", endpoint=self.settings.endpoint, template_code=self.settings.template_code,
                    report_path=f"/api/v1/platforms/{self.name}/<SMSLAB_ALIYUN_REPORT_TOKEN>/receipts")
        return info

    # -- submission ---------------------------------------------------------------------------------
    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        if not batch:
            return []
        if self._session is None or self.ctx is None:
            raise PlatformError(f"platform {self.name} is not started", retryable=True)
        store = self.ctx.store
        known = await store.get_many([KEY_PREFIX + i.key for i in batch]) if store is not None else {}
        results: dict[str, SubmitResult] = {}
        groups: dict[tuple[str, str], list[tuple[SubmitItem, str]]] = {}
        for item in batch:
            pid = known.get(KEY_PREFIX + item.key)
            if pid is not None:
                results[item.key] = SubmitResult(item.key, pid)
                continue
            phone = alibaba_number(item.number)
            if phone is None:
                results[item.key] = SubmitResult(item.key, None, "isv.MOBILE_NUMBER_ILLEGAL",
                                                  f"not a phone number: {item.number!r}")
                continue
            sign_name, text = split_signature(item.text, self.settings.sign_name)
            if not text.strip():
                results[item.key] = SubmitResult(item.key, None, "EMPTY_TEXT", "the message has no text")
                continue
            groups.setdefault((sign_name, text), []).append((item, phone))
        written = set(known)
        for (sign_name, text), members in groups.items():
            for start in range(0, len(members), self.settings.batch):
                try:
                    await self._send(sign_name, text, members[start:start + self.settings.batch], results)
                finally:
                    # written after every request: a crash resends at most the request in flight
                    fresh = {KEY_PREFIX + key: r.platform_id for key, r in results.items()
                             if r.platform_id is not None and KEY_PREFIX + key not in written}
                    if fresh and store is not None:
                        await store.put_many(fresh)
                        written.update(fresh)
        return [results.get(i.key) or SubmitResult(i.key, None, "NOT_SENT", "not sent") for i in batch]

    async def _send(self, sign_name: str, text: str, members: list[tuple[SubmitItem, str]],
                    results: dict[str, SubmitResult]) -> None:
        # one SendSms for up to 1000 numbers; a number twice in one request would get one report for
        # both, so a repeated number goes in a request of its own
        seen: set[str] = set()
        first, rest = [], []
        for member in members:
            (rest if member[1] in seen else first).append(member)
            seen.add(member[1])
        for part in ([first] if first else []) + [[m] for m in rest]:
            answer = await self._call(sign_name, text, [phone for _, phone in part])
            if answer.Code == "OK" and answer.BizId:
                for item, phone in part:
                    results[item.key] = SubmitResult(item.key, f"{answer.BizId}:{phone}")
            elif answer.Code == "isv.MOBILE_NUMBER_ILLEGAL" and len(part) > 1:
                for member in part:  # find the one Alibaba would not take
                    await self._send(sign_name, text, [member], results)
            elif answer.Code in ("isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.DAY_LIMIT_CONTROL",
                                 "isv.MONTH_LIMIT_CONTROL"):
                for item, _ in part:
                    results[item.key] = SubmitResult(item.key, None, answer.Code, answer.Message)
            elif answer.Code == "isv.BUSINESS_LIMIT_CONTROL":
                raise Throttled(f"Alibaba Cloud SMS is throttling: {answer.Message}", retry_after=0.5)
            else:
                raise PlatformError(f"Alibaba Cloud SMS refused the request: {answer.Code} {answer.Message}",
                                    retryable=answer.Code in RETRYABLE_AUTH or answer.Code.startswith("isp."))

    async def _call(self, sign_name: str, text: str, phones: list[str]) -> _Answer:
        s = self.settings
        params = signed_params("SendSms", {"PhoneNumbers": ",".join(phones), "SignName": sign_name,
                                           "TemplateCode": s.template_code,
                                           "TemplateParam": msgspec.json.encode({s.template_param: text}).decode()},
                               s.access_key_id, s.access_key_secret)
        try:
            async with self._session.post(s.endpoint + "/", data=urlencode(params),
                                          headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise PlatformError(f"Alibaba Cloud SMS at {s.endpoint} is unreachable: {type(exc).__name__} {exc}".rstrip(),
                                retryable=True) from None
        try:
            answer = _decode_answer(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            answer = _Answer("", body[:200].decode(errors="replace"))
        if status >= 500 or status == 429:
            raise PlatformError(f"Alibaba Cloud SMS answered {status}: {answer.Code} {answer.Message}", retryable=True)
        if status != 200 and answer.Code not in RETRYABLE_AUTH:
            raise PlatformError(f"Alibaba Cloud SMS refused the request ({status}): {answer.Code} {answer.Message}",
                                retryable=False)
        if status != 200:
            raise PlatformError(f"Alibaba Cloud SMS answered {status}: {answer.Code} {answer.Message}", retryable=True)
        return answer

    # -- pushes ---------------------------------------------------------------------------------------
    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """Not used: ``take_webhook`` takes the whole request (the token is in its URL)."""
        raise WebhookRejected("Alibaba Cloud reports need the platform's secret token", status=401)

    async def take_webhook(self, request):
        """``POST /api/v1/platforms/{name}/receipts?token=SECRET``: the gateway's own route hands
        the request over, since Alibaba signs nothing it pushes (the secret token authenticates it)
        and must be answered ``{"code": 0}``."""
        return await _answer_push(self, request, request.query.get("token", ""))

    def check_token(self, token: str) -> bool:
        want = self.settings.report_token
        return bool(want) and hmac.compare_digest(token.encode("utf-8", "replace"), want.encode())

    def parse_push(self, body: bytes, now: float) -> tuple[list[Receipt], list[InboundMessage]]:
        """An ``SmsReport`` or ``SmsUp`` JSON array as receipts and inbound messages; 400 for a
        body that is neither."""
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise WebhookRejected("body: not JSON", status=400) from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise WebhookRejected("body: an SmsReport or SmsUp JSON array", status=400)
        receipts, inbound = [], []
        for i, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise WebhookRejected(f"body.{i}: an object", status=400)
            phone = entry.get("phone_number")
            if not isinstance(phone, str) or not phone:
                raise WebhookRejected(f"body.{i}.phone_number: required", status=400)
            if "biz_id" in entry:
                biz_id, success = entry.get("biz_id"), entry.get("success")
                if not isinstance(biz_id, str) or not biz_id or not isinstance(success, bool):
                    raise WebhookRejected(f"body.{i}: an SmsReport has biz_id and success", status=400)
                at = _cst_time(entry.get("report_time"))
                code = entry.get("err_code") if isinstance(entry.get("err_code"), str) else None
                message = entry.get("err_msg") if isinstance(entry.get("err_msg"), str) else None
                receipts.append(Receipt(platform_id=f"{biz_id}:{phone}", status="delivered" if success else "failed",
                                        at=min(at, now) if at is not None else now, part=None,
                                        code=(code or "DELIVERED") if success else (code or "UNDELIV"),
                                        message=(message or None)))
            elif "content" in entry:
                content = entry.get("content")
                if not isinstance(content, str):
                    raise WebhookRejected(f"body.{i}.content: a string", status=400)
                at = _cst_time(entry.get("send_time"))
                digits = phone.lstrip("+")
                sender = f"+86{digits}" if len(digits) == 11 and digits.startswith("1") else f"+{digits}"
                recipient = entry.get("dest_code") or entry.get("sign_name") or ""
                seq = entry.get("sequence_id")
                inbound.append(InboundMessage(sender=sender, recipient=str(recipient)[:64], text=content,
                                              at=min(at, now) if at is not None else now,
                                              platform_id=f"up:{seq}" if seq is not None else None))
            else:
                raise WebhookRejected(f"body.{i}: neither an SmsReport (biz_id) nor an SmsUp (content)", status=400)
        return receipts, inbound

    async def take_push(self, body: bytes) -> int:
        """Commit a push: receipts to the gateway, replies as inbound messages; the count."""
        now = self.ctx.clock.now()
        receipts, inbound = self.parse_push(body, now)
        if receipts:
            await self.ctx.deliver_receipts(self.name, receipts)
        if inbound and self.ctx.deliver_inbound is not None:
            await self.ctx.deliver_inbound(self.name, inbound, None)
        return len(receipts) + len(inbound)


class PushAccepted(msgspec.Struct):
    """What Alibaba Cloud expects back from a push it should not send again."""

    code: int
    msg: str


@documented(
    "Alibaba Cloud SMS pushes (SmsReport, SmsUp) for the aliyun platform", "platforms",
    body=list[dict[str, Any]], response=PushAccepted, access="public",
    errors={400: ("invalid_request",), 401: ("webhook_rejected",), 413: ("too_large",)},
    path=(Param("name", str, "the platform's name (SMSLAB_ALIYUN_NAME, default aliyun)"),
          Param("token", str, "the secret path token (SMSLAB_ALIYUN_REPORT_TOKEN)")),
    description="Alibaba's pushes are unsigned: the secret token in the path authenticates them. The body is an"
                " SmsReport or SmsUp JSON array; it is committed before the answer `{\"code\": 0}` (anything"
                " else makes Alibaba push it again). A wrong token or an unknown platform is the usual 401"
                " `webhook_rejected`.",
)
async def _push_route(request):
    """``POST /api/v1/platforms/{name}/{token}/receipts``: Alibaba's pushes. A wrong token or an
    unknown platform is the gateway's usual 401; the body is committed before the answer
    ``{"code": 0, "msg": "ok"}`` (anything else makes Alibaba push it again)."""
    return await _answer_push(_platforms.get(request.match_info["name"]), request, request.match_info["token"])


async def _answer_push(platform: "AliyunPlatform | None", request, token: str):
    """Check the token, commit the push, answer as Alibaba expects (``{"code": 0}``, or the
    gateway's error: anything else is pushed again)."""
    from aiohttp import web

    from gateway.web.middleware import error_body
    from gateway.web.routes_system import _refused

    if platform is None or not platform.check_token(token):
        log.info("a push for platform %s was refused: unknown platform or wrong token", request.match_info["name"])
        return _refused()
    too_large = f"body: a push of at most {MAX_PUSH:,} bytes"
    if request.content_length is not None and request.content_length > MAX_PUSH:
        return error_body(413, "too_large", too_large, "body")
    body = await request.content.read(MAX_PUSH + 1)
    if len(body) > MAX_PUSH:
        return error_body(413, "too_large", too_large, "body")
    try:
        await platform.take_push(body)
    except WebhookRejected as exc:
        if exc.status == 401:
            return _refused()
        message = str(exc)
        head = message.split(": ", 1)[0] if ": " in message else ""
        return error_body(400, "invalid_request", message, head if head and " " not in head else "body")
    return web.json_response({"code": 0, "msg": "ok"})


@hookimpl
def smslab_register_routes():
    from aiohttp import web

    return [web.post("/api/v1/platforms/{name}/{token}/receipts", _push_route)]


@hookimpl
def smslab_register_platforms(config):
    """One ``aliyun`` platform once it has an AccessKey; an unconfigured plugin stays out of the
    platform list."""
    settings = Settings.resolve(getattr(config, "extras", None) or {})
    if not settings.access_key_id or not settings.access_key_secret:
        log.info("platform %r is off: set SMSLAB_ALIYUN_ACCESS_KEY_ID and SMSLAB_ALIYUN_ACCESS_KEY_SECRET (and"
                 " SMSLAB_ALIYUN_ENDPOINT for smslab carrier)", settings.name)
        return []
    return [AliyunPlatform(settings)]
