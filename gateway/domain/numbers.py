"""Phone-number validation and normalisation to E.164 (with ``phonenumbers``).

An audience keeps every entry it was given; each entry is classified once, when the audience is
stored, so that a send never has to re-parse and so that the skip reasons of SPEC §3 (``empty``,
``invalid``, ``duplicate``) are decided in one place.
"""

from __future__ import annotations

import re

import phonenumbers

OK = "ok"
EMPTY = "empty"
INVALID = "invalid"
DUPLICATE = "duplicate"

_SEPARATORS = re.compile(r"[\s\-().]")


def classify(raw: str | None, region: str) -> tuple[str, str | None]:
    """Return ``(kind, e164)``: kind is ``ok``, ``empty`` or ``invalid``; e164 only for ``ok``."""
    if raw is None:
        return EMPTY, None
    text = raw.strip()
    if not text:
        return EMPTY, None
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException:
        return INVALID, None
    if not phonenumbers.is_valid_number(parsed):
        return INVALID, None
    return OK, phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """Show only the last four digits, as the seed's per-number table does."""
    if len(e164) <= 4:
        return "*" * len(e164)
    return "*" * (len(e164) - 4) + e164[-4:]


def is_region(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS
