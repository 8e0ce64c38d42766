"""Alibaba Cloud SMS (Dysmsapi, API version 2017-05-25) on the carrier's HTTP port (SPEC §13).

An application points ``alibabacloud-dysmsapi20170525`` (or any client of the RPC API) at the
carrier: ``SendSms``, ``SendBatchSms`` and ``QuerySendDetails`` at ``/`` (GET query string or POST,
parameters in the query string and/or a form body), signed ACS3-HMAC-SHA256 (the SDK's default)
or RPC v1 HMAC-SHA1 (see ``aliyun_auth``) with an account's AccessKey secret. Each account
(``--aliyun KEYID:SECRET`` or ``PUT /accounts/{KEYID}`` with ``"protocol": "aliyun"``) is a tenant of
the carrier core, so the profile, seed, number rules, outages and throughput decide as for every
other front end.

Answers are Alibaba's: ``{"Code": "OK", "Message": "OK", "BizId", "RequestId"}``; a business
error (``isv.*``) comes with HTTP 200 and its code in the body, as the real service does (the SDK
then raises nothing: the application checks ``body.code``); a request error (a missing
parameter, a bad signature, an unknown AccessKeyId, an outage) with a 4xx/5xx and Alibaba's error
body ``{"Code", "Message", "RequestId", "HostId", "Recommend"}``, which the SDK raises.

Account settings (``extra``): ``templates`` ``{TemplateCode: "text with ${var}"}`` (when given,
other codes are ``isv.SMS_TEMPLATE_ILLEGAL`` and missing variables
``isv.TEMPLATE_MISSING_PARAMETERS``; without it any code passes and the text is the
TemplateParam's values joined by spaces), ``sign_names`` (when given, other sign names are
``isv.SMS_SIGNATURE_ILLEGAL``), ``report_url`` (else ``--aliyun-report-url``) and ``up_url`` (else
the report URL).

The text of a message is ``【SignName】`` + the template with its parameters; its ``sms_size`` is
Alibaba's count: one message up to 70 characters, else 67 characters a part. A message gets one
report for the whole (``sms_size`` parts), pushed as an ``SmsReport`` JSON array; replies
(``POST /mo``) as ``SmsUp`` arrays. Each push carries ``X-Smslab-Push: SmsReport|SmsUp``; it is
acknowledged by an answer ``{"code": 0}``, anything else is retried on the carrier's schedule.
Dates are China Standard Time (UTC+8) ``yyyy-MM-dd HH:mm:ss``, as Alibaba writes them.

Ids: a request gets one ``BizId`` (``{18 digits}^0``); each of its numbers is a message
``ali-{biz}-{index:04d}@{KEYID}`` inside (ground truth shows ``biz_id``, ``phone_number`` and
``platform_id`` = ``{BizId}:{phone_number}``, the number as the request wrote it). Decisions are
keyed ``{KEYID}:{E.164}:{n}`` like the SMSC's, so batching does not change them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import msgspec
from aiohttp import web

from gateway.platform import SubmitItem
from gateway.storage.sqlite import bulk
from gateway.wire.codes import error_text

from ..core import books_sqlite as books
from ..core.outbox import RECEIPT, OutItem, keep_delivering
from .aliyun_auth import TIMESTAMP_SKEW, AuthError, claims, parse_time

log = logging.getLogger("smslab.aliyun")

VERSION = "2017-05-25"
HOST_ID = "dysmsapi.aliyuncs.com"
CST = timezone(timedelta(hours=8))
MAX_BODY = 2 * 1024 * 1024
MAX_NUMBERS = 1000  # SendSms
MAX_BATCH_NUMBERS = 100  # SendBatchSms
PUSH_BATCH = 100  # reports per push
PUSH_TIMEOUT = 10.0  # real seconds a push may take
META_KEPT = 200_000
NONCES_KEPT = 200_000
BIZ_BASE = 100_000_000_000_000_000
ID_PREFIX = "ali-"
MO_PREFIX = "amo-"
VARIABLE = re.compile(r"\$\{([^}]{0,64})\}")
INVALID_NUMBER_CODES = {"21211", "21614", "INVALID_NUMBER", "ESME_RINVDSTADR"}


class Meta(msgspec.Struct, array_like=True, gc=False, omit_defaults=True):
    """What a message's reports and QuerySendDetails need that the core does not keep."""

    biz_id: str
    phone: str  # as the request wrote it
    sign: str
    template: str
    content: str  # the whole text, 【SignName】 included
    size: int
    at: float  # when it was submitted (carrier's clock)
    out_id: str = ""
    ext: str = ""
    numbers: int = 1  # in its request: a refused number of a one-number request got no BizId


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def sms_size(text: str) -> int:
    """Alibaba's count: up to 70 characters is one message, a longer one 67 characters a part."""
    n = len(text)
    return 1 if n <= 70 else math.ceil(n / 67)


def e164(raw: str) -> str | None:
    """A number as Alibaba takes it (11-digit mainland mobile, or country code + number, with or
    without ``+``/``00``) in E.164, or None."""
    s = raw.strip()
    if s.startswith("+"):
        digits, international = s[1:], True
    elif s.startswith("00"):
        digits, international = s[2:], True
    else:
        digits, international = s, False
    if not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 15):
        return None
    if not international and len(digits) == 11 and digits[0] == "1":
        return "+86" + digits
    return "+" + digits


def cst(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%d %H:%M:%S")


def render(template: str, params: dict[str, Any]) -> tuple[str, list[str]]:
    """The template with its ``${var}`` replaced; and the variables the parameters lack."""
    missing = [name for name in VARIABLE.findall(template) if name not in params]
    return VARIABLE.sub(lambda m: _plain(params.get(m.group(1), m.group(0))), template), missing


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return msgspec.json.encode(value).decode() if isinstance(value, (dict, list)) else str(value)


def _json_param(value: str | None, name: str, kind: type) -> Any:
    try:
        data = msgspec.json.decode(value.encode("utf-8", "replace")) if value is not None else None
    except msgspec.DecodeError:
        raise ApiError(200, "isv.INVALID_JSON_PARAM", f"{name} is not valid JSON.") from None
    if not isinstance(data, kind):
        raise ApiError(200, "isv.INVALID_JSON_PARAM", f"{name} must be a JSON {'object' if kind is dict else 'array'}.")
    return data


class AliyunApi:
    protocol = "aliyun"

    def __init__(self, report_url: str | None = None):
        self.report_url = report_url or None
        self.carrier = None
        self._counts: dict[tuple[str, str], int] = {}  # (account, E.164) -> messages so far
        self._by_number: dict[tuple[str, str], list[str]] = {}  # (account, E.164) -> its message ids
        self._metas: OrderedDict[str, Meta] = OrderedDict()
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()  # (key id, nonce) -> kept until (wall)
        self._next_biz = BIZ_BASE
        self._next_mo = 1
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.stats = {"requests": 0, "messages": 0, "pushes": 0, "pushes_failed": 0, "reports_sent": 0, "ups_sent": 0}

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, carrier) -> None:
        self.carrier = carrier
        for tenant, number, msg_id in await carrier.db.read(_aliyun_messages):
            key = (tenant, number)
            self._counts[key] = self._counts.get(key, 0) + 1
            self._by_number.setdefault(key, []).append(msg_id)
            self._next_biz = max(self._next_biz, int(msg_id[len(ID_PREFIX):].split("-", 1)[0]) + 1)
        for (mo,) in await carrier.db.fetchall("SELECT mo FROM sim_outbox WHERE mo IS NOT NULL"):
            msg_id = msgspec.json.decode(mo)[1]
            if msg_id.startswith(MO_PREFIX) and msg_id[4:16].isdigit():
                self._next_mo = max(self._next_mo, int(msg_id[4:16]) + 1)
        for name, account in carrier.accounts.by_name.items():
            if account.protocol == self.protocol:
                carrier.core.tenant(name).throughput_limit = account.throughput_limit
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT))
        self._tasks.append(asyncio.create_task(self._push_loop(), name="aliyun-push"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def routes(self) -> list:
        return [web.get("/", self.handle), web.post("/", self.handle)]

    def authenticates(self, path: str) -> bool:
        return path == "/"

    async def account_removed(self, name: str) -> None:
        pass  # nothing is held open per account: its requests fail from now on

    # -- the carrier's view -----------------------------------------------------------------------
    def tenant_of(self, msg_id: str) -> str | None:
        if msg_id.startswith(ID_PREFIX) or msg_id.startswith(MO_PREFIX):
            at = msg_id.rfind("@")
            return msg_id[at + 1:] if at > 0 else None
        return None

    def present(self, item: dict[str, Any]) -> None:
        msg_id = item["_id"]
        meta = self._metas.get(msg_id)
        if meta is None and item.get("_extra") is not None:
            try:
                meta = msgspec.convert(item["_extra"], Meta)
            except msgspec.ValidationError:
                meta = None
        item["destination"] = item.pop("number")
        item["message_id"] = msg_id
        if meta is not None:
            item.update(biz_id=meta.biz_id, phone_number=meta.phone, sign_name=meta.sign, template_code=meta.template,
                        content=meta.content, sms_size=meta.size, out_id=meta.out_id or None)
            refused_alone = item["outcome"] == "refused" and meta.numbers == 1  # answered with an error, no BizId
            item["platform_id"] = None if refused_alone else f"{meta.biz_id}:{meta.phone}"
        else:
            item["platform_id"] = None

    # -- requests ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        carrier = self.carrier
        request_id = str(uuid.uuid4()).upper()
        action, account_name, fields = None, None, {}
        try:
            params, action, account = await self._authenticate(request)
            account_name = account.name
            self.stats["requests"] += 1
            if action == "SendSms":
                out = await self._send_sms(account, params, fields)
            elif action == "SendBatchSms":
                out = await self._send_batch_sms(account, params, fields)
            else:
                out = await self._query(account, params, fields)
            status = 200
            body = {**out, "RequestId": request_id}
            if "Code" not in body:
                body = {"Code": "OK", "Message": "OK", **body}
        except ApiError as exc:
            status = exc.status
            body = {"Code": exc.code, "Message": exc.message, "RequestId": request_id}
            if status != 200:
                body.update(HostId=HOST_ID, Recommend=f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=Dysmsapi")
        carrier.journal.add(carrier.clock.now(), "in", account_name, action or "(unknown)", request_id=request_id,
                            status=status, code=body["Code"], **fields)
        return web.json_response(body, status=status)

    async def _authenticate(self, request: web.Request) -> tuple[dict[str, str], str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
        raw = b""
        if request.can_read_body:
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                raise ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
        form: dict[str, str] = {}
        if raw and request.content_type in ("application/x-www-form-urlencoded", "", "application/octet-stream"):
            try:
                form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10_000))
            except ValueError:
                raise ApiError(400, "InvalidParameter", "The form body has too many fields.") from None
        query = list(request.query.items())
        params = {**dict(query), **form}
        action = params.get("Action") or request.headers.get("x-acs-action") or ""
        version = params.get("Version") or request.headers.get("x-acs-version") or ""
        if not action:
            raise ApiError(400, "MissingAction", "Action is mandatory for this request.")
        if action not in ("SendSms", "SendBatchSms", "QuerySendDetails"):
            raise ApiError(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
        if version != VERSION:
            raise ApiError(400, "InvalidVersion", f"Specified parameter Version is not valid (this API is {VERSION}).")
        try:
            signed = claims(request.method, request.path, query, form, request.headers, raw)
        except AuthError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        account = self.carrier.accounts.get(signed.key_id)
        if account is None or account.protocol != self.protocol or not account.secret:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if not signed.matches(account.secret):
            raise ApiError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        stamped = parse_time(signed.timestamp)
        wall = time.time()
        if stamped is None:
            raise ApiError(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
        if abs(stamped - wall) > TIMESTAMP_SKEW:
            raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        self._use_nonce(signed.key_id, signed.nonce, wall)
        self.carrier.core.tenant(account.name).throughput_limit = account.throughput_limit
        return params, action, account

    def _use_nonce(self, key_id: str, nonce: str, wall: float) -> None:
        nonces = self._nonces
        while nonces and (next(iter(nonces.values())) < wall or len(nonces) > NONCES_KEPT):
            nonces.popitem(last=False)
        key = (key_id, nonce)
        if key in nonces:
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        nonces[key] = wall + 2 * TIMESTAMP_SKEW

    # -- SendSms / SendBatchSms ---------------------------------------------------------------------
    def _text(self, account, sign: str, template_code: str, params: dict) -> str:
        extra = account.extra or {}
        signs = extra.get("sign_names")
        if isinstance(signs, list) and signs and sign not in signs:
            raise ApiError(200, "isv.SMS_SIGNATURE_ILLEGAL", f"The sign name {sign!r} is not approved for this account.")
        templates = extra.get("templates")
        if isinstance(templates, dict) and templates:
            template = templates.get(template_code)
            if not isinstance(template, str):
                raise ApiError(200, "isv.SMS_TEMPLATE_ILLEGAL", f"The template {template_code!r} is not approved for this account.")
            content, missing = render(template, params)
            if missing:
                raise ApiError(200, "isv.TEMPLATE_MISSING_PARAMETERS",
                               f"The template parameters lack {', '.join(missing)}.")
        else:
            content = " ".join(_plain(v) for v in params.values())
        return f"【{sign}】{content}"

    async def _send_sms(self, account, p: dict[str, str], fields: dict) -> dict:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not p.get(name):
                raise ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        phones = [n.strip() for n in p["PhoneNumbers"].split(",")]
        fields["numbers"] = len(phones)
        if len(phones) > MAX_NUMBERS:
            raise ApiError(200, "isv.MOBILE_COUNT_OVER_LIMIT", f"At most {MAX_NUMBERS} numbers in one request.")
        template_params = _json_param(p["TemplateParam"], "TemplateParam", dict) if p.get("TemplateParam") else {}
        text = self._text(account, p["SignName"], p["TemplateCode"], template_params)
        entries = [(phone, p["SignName"], text) for phone in phones]
        return await self._submit(account, entries, p["TemplateCode"], p.get("OutId", ""), p.get("SmsUpExtendCode", ""),
                                  fields)

    async def _send_batch_sms(self, account, p: dict[str, str], fields: dict) -> dict:
        for name in ("PhoneNumberJson", "SignNameJson", "TemplateCode"):
            if not p.get(name):
                raise ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        phones = _json_param(p["PhoneNumberJson"], "PhoneNumberJson", list)
        signs = _json_param(p["SignNameJson"], "SignNameJson", list)
        values = _json_param(p["TemplateParamJson"], "TemplateParamJson", list) if p.get("TemplateParamJson") else None
        fields["numbers"] = len(phones)
        if not phones or len(phones) > MAX_BATCH_NUMBERS:
            raise ApiError(200, "isv.MOBILE_COUNT_OVER_LIMIT", f"1 to {MAX_BATCH_NUMBERS} numbers in one request.")
        if len(signs) != len(phones) or (values is not None and len(values) != len(phones)):
            raise ApiError(200, "isv.INVALID_PARAMETERS",
                           "PhoneNumberJson, SignNameJson and TemplateParamJson must have as many elements.")
        entries = []
        for i, (phone, sign) in enumerate(zip(phones, signs)):
            if not isinstance(phone, str) or not isinstance(sign, str) or not sign:
                raise ApiError(200, "isv.INVALID_PARAMETERS", f"element {i}: numbers and sign names are strings.")
            params = values[i] if values is not None else {}
            if not isinstance(params, dict):
                raise ApiError(200, "isv.INVALID_JSON_PARAM", f"TemplateParamJson element {i} is not an object.")
            entries.append((phone.strip(), sign, self._text(account, sign, p["TemplateCode"], params)))
        return await self._submit(account, entries, p["TemplateCode"], p.get("OutId", ""), "", fields)

    async def _submit(self, account, entries: list[tuple[str, str, str]], template: str, out_id: str, ext: str,
                      fields: dict) -> dict:
        carrier = self.carrier
        numbers = []
        for phone, _, _ in entries:
            number = e164(phone)
            if number is None:
                raise ApiError(200, "isv.MOBILE_NUMBER_ILLEGAL", f"Illegal phone number: {phone[:32]!r}.")
            numbers.append(number)
        name = account.name
        tenant = carrier.core.tenant(name)
        refusal = tenant.admit(len(entries), carrier.clock.now())
        if refusal is not None:
            if refusal.kind == "throttled":
                carrier.stats["throttled_batches"] += 1
                raise ApiError(200, "isv.BUSINESS_LIMIT_CONTROL", f"Flow control triggered: {refusal.message}.")
            carrier.stats["outage_refusals"] += 1
            raise ApiError(503, "ServiceUnavailable", f"The request has failed due to a temporary failure of the server"
                                                      f" ({refusal.message}).")
        now = carrier.clock.now()
        biz = self._next_biz
        self._next_biz += 1
        biz_id = f"{biz}^0"
        batch, ids, keys, metas = [], [], [], []
        for i, ((phone, sign, text), number) in enumerate(zip(entries, numbers)):
            msg_id = f"{ID_PREFIX}{biz}-{i:04d}@{name}"
            count_key = (name, number)
            count = self._counts.get(count_key, 0)
            self._counts[count_key] = count + 1
            self._by_number.setdefault(count_key, []).append(msg_id)
            size = sms_size(text)
            batch.append(SubmitItem(msg_id, 0, number, text, size))
            ids.append(msg_id)
            keys.append(f"{name}:{number}:{count}")
            metas.append(Meta(biz_id, phone, sign, template, text, size, now, out_id[:256], ext[:32], len(entries)))
        refused, due_rows = await carrier.core.submit(tenant, batch, ids, keys, known=False, extras=metas,
                                                      receipt_parts=[1] * len(batch))
        for msg_id, meta in zip(ids, metas):
            self._remember(msg_id, meta)
        if due_rows:
            carrier.wake()
        self.stats["messages"] += len(batch)
        fields.update(biz_id=biz_id, refused=len(refused))
        if refused and len(batch) == 1:
            code = refused[ids[0]]
            raise ApiError(200, _aliyun_code(code), error_text(code) or code)
        for msg_id, meta in zip(ids, metas):  # the others go on; the refused ones fail by report, as Alibaba's do
            if msg_id in refused:
                await self._refused_report(name, msg_id, meta, _aliyun_code(refused[msg_id]))
        return {"BizId": biz_id}

    async def _refused_report(self, account: str, msg_id: str, meta: Meta, code: str) -> None:
        now = self.carrier.clock.now()
        report = {"phone_number": meta.phone, "send_time": cst(now), "report_time": cst(now), "success": False,
                  "err_code": code, "err_msg": error_text(code) or code, "sms_size": str(meta.size), "biz_id": meta.biz_id,
                  "out_id": meta.out_id}
        await self.carrier.outbox.add_mo(account, f"{MO_PREFIX}r-{msg_id}", now, {"report": report})

    def _remember(self, msg_id: str, meta: Meta) -> None:
        self._metas[msg_id] = meta
        self._metas.move_to_end(msg_id)
        while len(self._metas) > META_KEPT:
            self._metas.popitem(last=False)

    async def _metas_of(self, tenant: str, msg_ids: list[str]) -> dict[str, Meta]:
        found = {m: self._metas[m] for m in msg_ids if m in self._metas}
        missing = [m for m in msg_ids if m not in found]
        if missing:
            for row in await self.carrier.db.read(books.message_rows, tenant, missing):
                if row[-1] is not None:
                    try:
                        found[row[0]] = msgspec.convert(row[-1], Meta)
                    except msgspec.ValidationError:
                        continue
        return found

    # -- QuerySendDetails ---------------------------------------------------------------------------
    async def _query(self, account, p: dict[str, str], fields: dict) -> dict:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not p.get(name):
                raise ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        number = e164(p["PhoneNumber"])
        if number is None:
            raise ApiError(200, "isv.MOBILE_NUMBER_ILLEGAL", "Illegal phone number.")
        date = p["SendDate"]
        if not (len(date) == 8 and date.isascii() and date.isdigit()):
            raise ApiError(400, "InvalidSendDate.Malformed", "SendDate is yyyyMMdd.")
        try:
            size, page = int(p["PageSize"]), int(p["CurrentPage"])
        except ValueError:
            raise ApiError(400, "InvalidParameter", "PageSize and CurrentPage are integers.") from None
        if not 1 <= size <= 50 or page < 1:
            raise ApiError(400, "InvalidParameter", "PageSize is 1 to 50 and CurrentPage at least 1.")
        biz_filter = p.get("BizId") or None
        name = account.name
        ids = list(self._by_number.get((name, number), ()))
        if biz_filter:
            prefix = f"{ID_PREFIX}{biz_filter.split('^', 1)[0]}-"
            ids = [m for m in ids if m.startswith(prefix)]
        items = await self.carrier.core.messages(name, ids, self.carrier.receipt_timeout) if ids else []
        metas = await self._metas_of(name, [i["_id"] for i in items])
        now = self.carrier.clock.now()
        rows = []
        for item in items:
            if datetime.fromtimestamp(item["submitted_at"], CST).strftime("%Y%m%d") != date:
                continue
            meta = metas.get(item["_id"])
            rows.append((item["submitted_at"], item["_id"], _detail(item, meta, now)))
        rows.sort(key=lambda r: (r[0], r[1]))
        fields.update(total=len(rows))
        shown = [r[2] for r in rows[(page - 1) * size: page * size]]
        return {"Code": "OK", "Message": "OK", "TotalCount": len(rows), "SmsSendDetailDTOs": {"SmsSendDetailDTO": shown}}

    # -- replies ------------------------------------------------------------------------------------
    async def mobile_originated(self, account: str, sender: str, to: str, text: str) -> dict:
        now = self.carrier.clock.now()
        seq = self._next_mo
        self._next_mo += 1
        mo_id = f"{MO_PREFIX}{seq:012d}@{account}"
        acct = self.carrier.accounts.get(account)
        signs = (acct.extra or {}).get("sign_names") if acct is not None else None
        up = {"phone_number": _national(sender), "send_time": cst(now), "content": text,
              "sign_name": signs[0] if isinstance(signs, list) and signs and isinstance(signs[0], str) else "",
              "dest_code": to, "sequence_id": seq}
        item = await self.carrier.outbox.add_mo(account, mo_id, now, {"up": up})
        self._wake.set()
        return {"id": mo_id, "account": account, "from": sender, "to": to, "text": text,
                "at": _iso(now), "delivery": "planned", "rid": item.rid, "sequence_id": seq}

    # -- pushes: SmsReport, SmsUp ---------------------------------------------------------------------
    async def _push_loop(self) -> None:
        await keep_delivering(self.carrier.outbox, self.push_due, self._wake, log,
                              "pushing Alibaba Cloud reports failed; retrying")

    async def push_due(self) -> int:
        carrier = self.carrier
        sent = 0
        for name, account in list(carrier.accounts.by_name.items()):
            if account.protocol != self.protocol:
                continue
            extra = account.extra or {}
            report_url = extra.get("report_url") or self.report_url
            up_url = extra.get("up_url") or report_url
            if not report_url and not up_url:
                continue  # held until the account gets a URL
            while True:
                items = carrier.outbox.take(carrier.clock.now(), name, PUSH_BATCH)
                if not items:
                    break
                reports, ups = [], []
                for i in items:
                    (reports if i.kind == RECEIPT or "report" in _body(i) else ups).append(i)
                if reports:
                    sent += await self._push(name, "SmsReport", report_url, reports)
                if ups:
                    sent += await self._push(name, "SmsUp", up_url, ups)
                if len(items) < PUSH_BATCH:
                    break
        return sent

    async def _push(self, account: str, kind: str, url: str | None, items: list[OutItem]) -> int:
        carrier = self.carrier
        if not url:
            carrier.outbox.again(items, carrier.clock.now() + carrier.retry_schedule[0], f"no URL for {kind}")
            return 0
        if kind == "SmsReport":
            metas = await self._metas_of(account, [i.msg_id for i in items if i.kind == RECEIPT])
            body = []
            for item in items:
                if item.kind != RECEIPT:
                    body.append(_body(item).get("report"))
                    continue
                meta = metas.get(item.msg_id)
                delivered = item.status == "delivered"
                code = "DELIVERED" if delivered else _aliyun_code(item.code or "UNDELIV")
                body.append({"phone_number": meta.phone if meta else "", "send_time": cst(meta.at if meta else item.due_at),
                             "report_time": cst(item.due_at), "success": delivered, "err_code": code,
                             "err_msg": "用户接收成功" if delivered else (error_text(code) or code),
                             "sms_size": str(meta.size if meta else 1), "biz_id": meta.biz_id if meta else "",
                             "out_id": meta.out_id if meta else ""})
        else:
            body = [_body(item).get("up") for item in items]
        data = msgspec.json.encode(body)
        error = None
        try:
            async with self._session.post(url, data=data, headers={"Content-Type": "application/json",
                                                                  "X-Smslab-Push": kind}) as resp:
                text = await resp.read()
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}: {text[:200].decode(errors='replace')}"
                else:
                    try:
                        answer = msgspec.json.decode(text)
                    except msgspec.DecodeError:
                        answer = None
                    if not (isinstance(answer, dict) and answer.get("code") == 0 and not isinstance(answer.get("code"), bool)):
                        error = f"answered {text[:200].decode(errors='replace')!r}, not {{\"code\": 0}}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        at = carrier.clock.now()
        carrier.journal.add(at, "out", account, kind, url=url, count=len(items), error=error)
        if error is None:
            self.stats["pushes"] += 1
            self.stats["reports_sent" if kind == "SmsReport" else "ups_sent"] += len(items)
            carrier.outbox.sent(items, at, acked=True)
            return len(items)
        self.stats["pushes_failed"] += 1
        log.warning("%s push to %s failed (%d items): %s", kind, url, len(items), error)
        carrier.outbox.failed(items, at, error, carrier.retry_schedule)
        return 0


def _detail(item: dict, meta: Meta | None, now: float) -> dict:
    """One SmsSendDetailDTO: the message as its receipts say at the carrier's clock ``now``."""
    status, code, received = 1, "", None
    if item["outcome"] == "refused":
        status, code, received = 2, _aliyun_code(item["code"] or "REFUSED"), item["submitted_at"]
    else:
        due = [r for r in item["receipts"] if not r["swallowed"] and not r["duplicate"] and r["due_at"] <= now]
        if due:
            first = min(due, key=lambda r: r["due_at"])
            delivered = first["status"] == "delivered"
            status = 3 if delivered else 2
            code = "DELIVERED" if delivered else _aliyun_code(first["code"] or "UNDELIV")
            received = first["due_at"]
    return {"PhoneNum": meta.phone if meta else item["number"].lstrip("+"), "SendStatus": status, "ErrCode": code,
            "TemplateCode": meta.template if meta else "", "Content": meta.content if meta else "",
            "SendDate": cst(item["submitted_at"]), "ReceiveDate": cst(received) if received is not None else "",
            "OutId": meta.out_id if meta else ""}


def _aliyun_code(code: str) -> str:
    return "isv.MOBILE_NUMBER_ILLEGAL" if code in INVALID_NUMBER_CODES else code


def _national(number: str) -> str:
    """A handset's number as Alibaba writes it: mainland numbers without +86, others without +."""
    digits = number.lstrip("+")
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits


def _body(item: OutItem) -> dict:
    try:
        body = msgspec.json.decode(item.body or "{}")
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _iso(ts: float) -> str:
    from gateway.clock import to_rfc3339

    return to_rfc3339(ts)


def _aliyun_messages(conn) -> list[tuple[str, str, str]]:
    """(account, E.164, message id) of every message this front end recorded, in id order."""
    out = []
    for tenant, messages in conn.execute("SELECT tenant, messages FROM sim_batches WHERE tenant IS NOT NULL"):
        for msg_id, number, *_ in bulk.decode(messages):
            if msg_id.startswith(ID_PREFIX):
                out.append((tenant, number, msg_id))
    out.sort(key=lambda r: r[2])
    return out
