"""The service's clock.

Every rule with a time in it (moderation delay, send_at, the 5-minute edit window, the 72-hour
receipt timeout, the 168-hour retention, carrier receipt delays) reads time from one Clock
object, so a virtual clock can move all of them together. Nothing else in the code base calls
``time.time()`` or ``datetime.now()`` for domain time.

Times are float seconds since the Unix epoch (UTC): cheap to store in SQLite and to compare in
hot loops; they are turned into RFC 3339 strings only at the API edge.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

# The range of instants the service accepts and reaches: from the Unix epoch to the start of the
# year 9000. Every time given to it (a send time, a receipt's time, a clock advance) is checked
# against this range before anything is stored, so that adding a retention or a timeout to any
# stored time still gives a date that RFC 3339 (years 0001-9999) can write: a time past 9999
# once made every list that showed it fail.
MIN_TIME = 0.0
MAX_TIME = 221845392000.0  # 9000-01-01T00:00:00Z


def in_range(instant: float) -> bool:
    """Whether ``instant`` (epoch seconds) is a finite time the service can hold."""
    return math.isfinite(instant) and MIN_TIME <= instant <= MAX_TIME


class Clock:
    mode = "wall"
    rate = 1.0

    def now(self) -> float:
        raise NotImplementedError

    @property
    def can_advance(self) -> bool:
        return False


class WallClock(Clock):
    """Real time. ``advance`` is refused: real time cannot be moved."""

    mode = "wall"

    def now(self) -> float:
        return time.time()


class VirtualClock(Clock):
    """Time that starts at a chosen instant and moves when told to, optionally also flowing at
    ``rate`` times real time (``rate=0`` freezes it between advances, which makes tests exact)."""

    mode = "virtual"

    def __init__(self, start: float | None = None, rate: float = 0.0):
        self._base = time.time() if start is None else float(start)
        self._anchor = time.monotonic()
        self.rate = float(rate)

    def now(self) -> float:
        if self.rate:
            return self._base + (time.monotonic() - self._anchor) * self.rate
        return self._base

    @property
    def can_advance(self) -> bool:
        return True

    def set(self, instant: float) -> None:
        """Move to ``instant``; virtual time never goes backwards, nor past ``MAX_TIME``."""
        current = self.now()
        self._base = min(max(current, float(instant)), MAX_TIME)
        self._anchor = time.monotonic()

    def resume(self, instant: float) -> None:
        """Continue a virtual timeline saved by an earlier run of the service (one saved out of
        range by an older version is brought back into it)."""
        instant = float(instant)
        self._base = min(max(instant, MIN_TIME), MAX_TIME) if math.isfinite(instant) else time.time()
        self._anchor = time.monotonic()

    def advance(self, seconds: float) -> float:
        self.set(self.now() + seconds)
        return self.now()


def to_rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    dt = datetime.fromtimestamp(min(max(ts, MIN_TIME), MAX_TIME), tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp; a naive one is taken as UTC. Raises ValueError, also for a
    time outside ``MIN_TIME``..``MAX_TIME``."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        instant = dt.timestamp()
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None
    if not in_range(instant):
        raise ValueError(f"{text!r} is outside 1970-01-01T00:00:00Z..9000-01-01T00:00:00Z")
    return instant
