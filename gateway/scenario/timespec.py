"""Durations (``"20m"``, ``"1h30m"``, ``"72h"``) and step times (``"10:00"``, ``"10:00:30"``, an RFC 3339
time) as scenario files write them. These decode untrusted text: they raise :class:`TimeSpecError`
with a readable message and nothing else (tests/test_scenario.py has property tests)."""

from __future__ import annotations

import math
import re

from ..clock import MAX_TIME, parse_rfc3339

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = 100 * 365 * 86400.0  # a hundred years: anything longer is a typo
_PART = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)([dhms])")
_TOD = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class TimeSpecError(ValueError):
    pass


def parse_duration(value: object) -> float:
    """Seconds from ``"72h"``, ``"1h30m"``, ``"90s"``, ``"1.5d"`` or a plain number of seconds.

    Units ``d`` ``h`` ``m`` ``s``, each at most once and largest first; no sign, no spaces."""
    if isinstance(value, bool):
        raise TimeSpecError(f"a duration such as \"20m\" or \"72h\", got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
            raise TimeSpecError(f"a duration of 0 to {MAX_DURATION:.0f} seconds, got {value!r}")
        return seconds
    if not isinstance(value, str):
        raise TimeSpecError(f"a duration such as \"20m\" or \"72h\", got {type(value).__name__}")
    text = value
    if not text:
        raise TimeSpecError("a duration such as \"20m\" or \"72h\", got an empty string")
    pos, seconds, last_rank = 0, 0.0, -1
    order = list(UNITS)
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match:
            raise TimeSpecError(f"a duration such as \"20m\", \"1h30m\" or \"72h\" (units d, h, m, s), got {value!r}")
        rank = order.index(match.group(2))
        if rank <= last_rank:
            raise TimeSpecError(f"units in a duration come once each, largest first (\"1h30m\"), got {value!r}")
        last_rank = rank
        seconds += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if seconds > MAX_DURATION:
        raise TimeSpecError(f"a duration of at most {MAX_DURATION:.0f} seconds, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest canonical text for whole seconds (``5400`` → ``"1h30m"``); fractions as ``"1.5s"``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, out = int(seconds), []
    for unit, size in UNITS.items():
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def parse_at(value: object) -> tuple[str, float]:
    """``("tod", seconds after midnight)`` for ``"HH:MM"``/``"HH:MM:SS"`` (UTC, the scenario's day),
    or ``("abs", epoch seconds)`` for an RFC 3339 time."""
    if not isinstance(value, str):
        raise TimeSpecError(f"a time such as \"10:00\" or \"2024-05-01T10:00:00Z\", got {value!r}")
    match = _TOD.fullmatch(value)
    if match:
        h, m, s = match.group(1), match.group(2), match.group(3) or "0"
        return "tod", int(h) * 3600 + int(m) * 60 + int(s)
    if len(value) >= 20 and value[4:5] == "-" and "T" in value.upper():
        try:
            instant = parse_rfc3339(value)
        except (ValueError, OverflowError):
            pass
        else:
            if 0 <= instant <= MAX_TIME:
                return "abs", instant
    raise TimeSpecError(f"a time of day \"HH:MM\" or \"HH:MM:SS\" (00:00 to 23:59:59, UTC) or an RFC 3339 time, got {value!r}")


def format_tod(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
