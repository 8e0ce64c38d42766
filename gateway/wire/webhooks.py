"""Signed receipt webhooks: the format the standalone carrier (``smslab carrier``) pushes and
the HTTP platform plugin (``smslab-http``) verifies. Both sides import this module, so the
signature is defined in exactly one place.

A webhook is a POST whose body is JSON::

    {"receipts": [{"platform_id": "cr-7-12", "status": "delivered", "at": "2024-05-01T10:00:00.250Z",
                   "part": null, "code": "DELIVERED", "message": "delivered"}, ...]}

with two headers::

    X-Smslab-Timestamp: 1714557600
    X-Smslab-Signature: sha256=<hex HMAC-SHA256(secret, "1714557600" + "." + body)>

The timestamp is unix seconds of real (wall) time when the request was signed, and it is part of
the signed text, so an old request cannot be replayed with a fresh timestamp. A receiver refuses a
request whose timestamp is more than ``TOLERANCE`` seconds (5 minutes) away from its own time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping

import msgspec

from gateway.clock import parse_rfc3339, to_rfc3339
from gateway.platform import Receipt, WebhookRejected

TIMESTAMP_HEADER = "X-Smslab-Timestamp"
SIGNATURE_HEADER = "X-Smslab-Signature"
SCHEME = "sha256"
TOLERANCE = 300.0  # seconds a signed request stays acceptable (either way, for clock skew)


class WireReceipt(msgspec.Struct, forbid_unknown_fields=True):
    platform_id: str
    status: str
    at: str | float | None = None
    part: int | None = None
    code: str | None = None
    message: str | None = None


class WireReceipts(msgspec.Struct, forbid_unknown_fields=True):
    receipts: list[WireReceipt]


_decoder = msgspec.json.Decoder(WireReceipts)
_encoder = msgspec.json.Encoder()


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(_key(secret), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def sign_headers(secret: str | bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers to send with ``body``: content type, timestamp and signature."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature(secret, ts, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
           also_now: float | None = None, tolerance: float = TOLERANCE) -> int:
    """Check the timestamp and signature of a webhook; returns the timestamp.

    ``now`` defaults to the wall clock. ``also_now`` is a second acceptable reference time (the
    gateway passes its service clock, which may be virtual): the timestamp must be within
    ``tolerance`` seconds of one of them. Raises WebhookRejected(status=401) otherwise.
    Header names are matched case-insensitively."""
    if not secret:
        raise WebhookRejected("webhook verification is not configured: no shared secret", status=401)
    ts_text = _header(headers, TIMESTAMP_HEADER)
    sig = _header(headers, SIGNATURE_HEADER)
    if not ts_text or not sig:
        raise WebhookRejected(f"unsigned webhook: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required", status=401)
    try:
        ts = int(ts_text.strip())
    except ValueError:
        raise WebhookRejected(f"{TIMESTAMP_HEADER}: not unix seconds", status=401) from None
    expected = signature(secret, ts, body)
    # a header may carry several signatures (key rotation), comma separated: any may match
    candidates = [s.strip() for s in sig.split(",") if s.strip()]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise WebhookRejected(f"{SIGNATURE_HEADER}: the signature does not match", status=401)
    references = [time.time() if now is None else now]
    if also_now is not None:
        references.append(also_now)
    if not any(abs(ref - ts) <= tolerance for ref in references):
        raise WebhookRejected(
            f"{TIMESTAMP_HEADER}: the timestamp is more than {int(tolerance)} seconds away from now (stale or replayed)",
            status=401,
        )
    return ts


def encode_receipts(receipts: list[dict]) -> bytes:
    """A webhook body from receipt dicts (``at`` as epoch seconds is sent as RFC 3339)."""
    out = []
    for r in receipts:
        item = dict(r)
        if isinstance(item.get("at"), (int, float)):
            item["at"] = to_rfc3339(item["at"])
        out.append(item)
    return _encoder.encode({"receipts": out})


def decode_receipts(body: bytes, now: float, error_text=None) -> list[Receipt]:
    """Receipts from a (verified) webhook body. Raises WebhookRejected(status=400) naming the field."""
    try:
        pushed = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise WebhookRejected(f"body: {exc}", status=400) from None
    out: list[Receipt] = []
    append = out.append
    texts: dict[str, str | None] = {}  # error_text per code, looked up once per body
    for i, r in enumerate(pushed.receipts):
        status = r.status
        if status != "delivered" and status != "failed":
            raise WebhookRejected(f"receipts[{i}].status: delivered or failed", status=400)
        if not r.platform_id:
            raise WebhookRejected(f"receipts[{i}].platform_id: must not be empty", status=400)
        part = r.part
        if part is not None and part < 0:
            raise WebhookRejected(f"receipts[{i}].part: must be 0 or more", status=400)
        at = r.at
        if at is None:
            at = now
        elif isinstance(at, str):
            try:
                at = parse_rfc3339(at)
            except ValueError:
                raise WebhookRejected(f"receipts[{i}].at: not an RFC 3339 time", status=400) from None
        else:
            at = float(at)
        code = r.code or ("DELIVERED" if status == "delivered" else "UNDELIV")
        message = r.message or None
        if message is None and error_text is not None:
            if code not in texts:
                texts[code] = error_text(code)
            message = texts[code]
        append(Receipt(r.platform_id, status, at, part, code, message))  # positional: built faster
    return out
