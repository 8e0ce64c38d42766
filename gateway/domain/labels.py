"""Names people give things (tasks, audiences, sub-activities) and search terms.

A name is shown in lists, in the console and in exports, next to other people's names. Control
characters have no place in one: a NUL cuts the text short in C libraries (SQLite's LIKE stops
at it, which made ``q=%00`` match every task), line breaks and tabs break one-line layouts, and
the Unicode bidirectional controls (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F) let a name
display as something else than it is ("Trojan Source"). Zero-width joiners stay: emoji need them.
"""

from __future__ import annotations

import unicodedata

from gateway.errors import Invalid

MAX_NAME = 200
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def forbidden_character(text: str) -> str | None:
    """The first character a name must not contain, or None."""
    for ch in text:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or a 400 naming ``field`` and the offending character."""
    bad = forbidden_character(value)
    if bad is not None:
        raise Invalid(f"{field}: must not contain the control character U+{ord(bad):04X}", field=field)
    return value


def check_name(value: object, field: str = "name", max_length: int = MAX_NAME) -> str:
    """A required one-line name: a non-empty string of at most ``max_length`` characters without
    control characters, returned stripped of surrounding spaces."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field}: required, a non-empty string", field=field)
    if len(value) > max_length:
        raise Invalid(f"{field}: at most {max_length} characters", field=field)
    return check_text(value, field).strip()
