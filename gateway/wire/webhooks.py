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
from typing import Annotated, Mapping

import msgspec

from gateway.clock import MAX_TIME, in_range, parse_rfc3339, to_rfc3339
from gateway.platform import Receipt, WebhookRejected

TIMESTAMP_HEADER = "X-Smslab-Timestamp"
SIGNATURE_HEADER = "X-Smslab-Signature"
SCHEME = "sha256"
TOLERANCE = 300.0  # seconds a signed request stays acceptable (either way, for clock skew)


MAX_PART = 62  # parts are tracked as bits of a 64-bit mask (a message has at most 63 parts)


class WireReceipt(msgspec.Struct, forbid_unknown_fields=True):
    platform_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    status: str
    at: str | float | None = None
    part: Annotated[int, msgspec.Meta(ge=0, le=MAX_PART)] | None = None
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    message: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


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
    ts_text = ts_text.strip()
    if not (ts_text.isascii() and ts_text.isdigit() and len(ts_text) <= 12):
        raise WebhookRejected(f"{TIMESTAMP_HEADER}: not unix seconds", status=401)
    ts = int(ts_text)
    expected = signature(secret, ts, body).encode()
    # a header may carry several signatures (key rotation), comma separated: any may match. A
    # header is whatever bytes the client sent (non-ASCII arrives as surrogate escapes), so the
    # candidates are compared as those bytes: a mismatch, never an error
    candidates = [c.strip().encode("utf-8", "surrogateescape") for c in sig.split(",") if c.strip()]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
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
    except msgspec.ValidationError as exc:
        from gateway.web.bodies import field_error

        raise WebhookRejected(field_error(exc).message, status=400) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise WebhookRejected(f"body: malformed JSON ({exc})", status=400) from None
    if b"\\u0000" in body:  # a NUL in a text: refused on either backend (see bodies.nul_path)
        from gateway.web.bodies import nul_path

        path = nul_path(pushed)
        if path is not None:
            raise WebhookRejected(f"{'.'.join(map(str, path))}: must not contain the character U+0000", status=400)
    out: list[Receipt] = []
    append = out.append
    texts: dict[str, str | None] = {}  # error_text per code, looked up once per body
    for i, r in enumerate(pushed.receipts):
        status = r.status
        if status != "delivered" and status != "failed":
            raise WebhookRejected(f"receipts.{i}.status: delivered or failed", status=400)
        part = r.part
        at = r.at
        if at is None:
            at = now
        elif isinstance(at, str):
            try:
                at = parse_rfc3339(at)
            except ValueError:
                raise WebhookRejected(f"receipts.{i}.at: not an RFC 3339 time between 1970 and the year 9000", status=400) from None
        elif not in_range(at):
            raise WebhookRejected(f"receipts.{i}.at: epoch seconds between 0 and {MAX_TIME:.0f}, or an RFC 3339 time", status=400)
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
