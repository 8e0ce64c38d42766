"""Twilio's wire formats, as pure functions: form bodies, HTTP Basic credentials, the
``X-Twilio-Signature`` of a webhook, the error body, RFC 2822 dates, and how the carrier core's
codes read as Twilio's (refusals at ``POST …/Messages.json``, ``ErrorCode`` of a status
callback). Everything here takes untrusted input and never raises on it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from email.utils import formatdate
from typing import Iterable
from urllib.parse import parse_qsl

API_VERSION = "2010-04-01"
PREFIX = f"/{API_VERSION}/Accounts/"
MAX_FORM = 256 * 1024  # bytes of a form body the API reads
MAX_BODY_CHARS = 1600  # Twilio's limit for Body (21617 above it)

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
SHORT_CODE = re.compile(r"^[0-9]{3,8}$")

# the "Message resource" statuses of Twilio; the final ones come from the core's receipts
FINAL_STATUSES = ("delivered", "undelivered", "failed")

# a failed receipt's code (the profile's ``failure_codes``) → (status, Twilio ErrorCode)
FAILURE_CODES: dict[str, tuple[str, int]] = {
    "UNDELIV": ("undelivered", 30003),  # Unreachable destination handset
    "MK:0001": ("undelivered", 30003),  # the handset is switched off: unreachable
    "MK:0005": ("undelivered", 30005),  # Unknown destination handset (out of service)
    "IB:0008": ("undelivered", 30004),  # Message blocked (operator's blacklist)
    "REJECTD": ("undelivered", 30007),  # Message filtered by the carrier
    "EXPIRED": ("undelivered", 30036),  # Validity period expired
}
UNKNOWN_FAILURE = ("failed", 30008)  # any other code: Unknown error
FAILED_ERRORS = {30001, 30002, 30008}  # Twilio reports these with status "failed"

# a refusal by the core (a magic number, a profile rule) → (HTTP status, Twilio code, message)
REFUSALS: dict[str, tuple[int, int, str]] = {
    "21211": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "21612": (400, 21612, "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: "
                          "{sender} via SMS."),
    "21408": (400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
                          "number: {to}."),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "21614": (400, 21614, "'To' number {to} is not a valid mobile number"),
    "INVALID_NUMBER": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "ESME_RINVDSTADR": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "ESME_RTHROTTLED": (429, 20429, "Too Many Requests"),
    "ESME_RSYSERR": (503, 20503, "Service Unavailable"),
    "ESME_RMSGQFUL": (400, 21611, "This 'From' number has exceeded the maximum number of queued messages"),
}
UNKNOWN_REFUSAL = (400, 21612, "The 'To' phone number: {to}, is not currently reachable via SMS (carrier code {code}).")

# Twilio's test "From" numbers (test credentials docs): refused before anything is sent
MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (21212, "The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    "+15005550007": (21606, "The 'From' phone number provided ({sender}) is not a valid message-capable Twilio phone "
                            "number for this destination/account."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages"),
}

OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_WORDS = {"START", "YES", "UNSTOP"}


def error_body(status: int, code: int, message: str) -> dict:
    """Twilio's error JSON."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def parse_form(raw: bytes) -> dict[str, list[str]] | None:
    """An ``application/x-www-form-urlencoded`` body as name → values, or None when it is not
    one (too long, not UTF-8). A blank value is kept (Twilio treats ``Body=`` as missing)."""
    if len(raw) > MAX_FORM:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except (ValueError, UnicodeDecodeError):
        return None
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(user:password)`` → (user, password), or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature``: HMAC-SHA1, keyed by the auth token, of the full URL followed by
    every POST parameter, sorted by name, as name and value concatenated; base64."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def rfc2822(ts: float | None) -> str | None:
    """Twilio's dates: ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    if ts is None:
        return None
    return formatdate(int(ts), usegmt=False).replace("-0000", "+0000")


def final_status(status: str, code: str | None) -> tuple[str, int | None]:
    """(Twilio status, ErrorCode) of a final receipt of the core."""
    if status == "delivered":
        return "delivered", None
    if code and code.isdigit() and len(code) == 5:
        number = int(code)
        return ("failed" if number in FAILED_ERRORS else "undelivered"), number
    return FAILURE_CODES.get(code or "", UNKNOWN_FAILURE)


def refusal(code: str | None, to: str, sender: str | None) -> tuple[int, int, str]:
    """(HTTP status, Twilio code, message) of a number the core refused at submission."""
    status, number, text = REFUSALS.get(code or "", UNKNOWN_REFUSAL)
    return status, number, text.format(to=to, sender=sender or "", code=code)


def valid_status_callback(url: str) -> bool:
    from urllib.parse import urlsplit

    if len(url) > 2048 or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:
        return False
