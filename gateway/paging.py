"""Opaque cursors: a page ends at a row id, and the next page starts after it."""

from __future__ import annotations

import base64

from .errors import Invalid

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
MAX_ID = 2**63 - 1  # SQLite's largest integer: row ids are at most this


def parse_id(text: str) -> int | None:
    """A row id written as 1 to 19 ASCII digits, at most ``MAX_ID``; else None. ``int()`` alone
    would take full-width digits, underscores and spaces, and a value SQLite cannot hold."""
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        last = parse_id(value) if kind == "id" else None
        if last is None:
            raise ValueError
        return last
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor: not a cursor this service gave out", field="cursor") from None


def limit_of(raw: str | None) -> int:
    """The page size a query asks for: absent, the default; given, 1 to ``MAX_LIMIT`` (an empty
    ``limit=`` is no number either)."""
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT):
        raise Invalid(f"limit: an integer between 1 and {MAX_LIMIT}", field="limit")
    return int(raw)


def encode_key(last_key: str) -> str:
    """A cursor for a page ordered by a text key (an opt-out list, by number)."""
    return base64.urlsafe_b64encode(f"key:{last_key}".encode()).decode().rstrip("=")


def decode_key(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    kind, _, value = text.partition(":")
    if kind != "key" or not value:
        raise Invalid("cursor: not a cursor this service gave out", field="cursor")
    return value
