"""Opaque cursors: a page ends at a row id, and the next page starts after it."""

from __future__ import annotations

import base64

from .errors import Invalid

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor: not a cursor this service gave out", field="cursor") from None


def limit_of(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise Invalid("limit: must be an integer", field="limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise Invalid(f"limit: must be between 1 and {MAX_LIMIT}", field="limit")
    return value
