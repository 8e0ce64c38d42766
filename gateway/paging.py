"""Opaque cursors: a page ends at a row id, and the next page starts after it."""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

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


def encode_tagged(tag: str, value: str) -> str:
    """A cursor holding ``value`` under ``tag`` (what kind of position it is)."""
    return base64.urlsafe_b64encode(f"{tag}:{value}".encode()).decode().rstrip("=")


def decode_tagged(cursor: str, tag: str) -> str | None:
    """The value of a cursor made by ``encode_tagged(tag, ...)``; None for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    kind, sep, value = text.partition(":")
    return value if sep and kind == tag else None


def encode(last_id: int) -> str:
    return encode_tagged("id", str(last_id))


def decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    value = decode_tagged(cursor, "id")
    last = parse_id(value) if value is not None else None
    if last is None:
        raise Invalid("cursor: not a cursor this service gave out", field="cursor")
    return last


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
    return encode_tagged("key", last_key)


def decode_key(cursor: str | None) -> str | None:
    if not cursor:
        return None
    value = decode_tagged(cursor, "key")
    if not value:
        raise Invalid("cursor: not a cursor this service gave out", field="cursor")
    return value


class Page(NamedTuple):
    """A page of records (each with an ``id``) and the cursor to the next one, as a service
    returns it; the web layer renders the records."""

    items: list[Any]
    next_cursor: str | None
    total: int | None = None  # how many the filter chooses in all, where a page says it

    @classmethod
    def of(cls, rows: list[Any], limit: int, total: int | None = None) -> "Page":
        """The page of ``rows``, fetched as ``limit + 1`` so that a further one shows there is more."""
        more = len(rows) > limit
        rows = rows[:limit]
        return cls(rows, encode(rows[-1].id) if more else None, total)
