"""The service's clock.

Every rule with a time in it (moderation delay, send_at, the 5-minute edit window, the 72-hour
receipt timeout, the 168-hour retention, carrier receipt delays) reads time from one Clock
object, so a virtual clock can move all of them together. Nothing else in the code base calls
``time.time()`` or ``datetime.now()`` for domain time.

Times are float seconds since the Unix epoch (UTC): cheap to store in SQLite and to compare in
hot loops; they are turned into RFC 3339 strings only at the API edge.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


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
        """Move to ``instant``; virtual time never goes backwards."""
        current = self.now()
        self._base = max(current, float(instant))
        self._anchor = time.monotonic()

    def resume(self, instant: float) -> None:
        """Continue a virtual timeline saved by an earlier run of the service."""
        self._base = float(instant)
        self._anchor = time.monotonic()

    def advance(self, seconds: float) -> float:
        self.set(self.now() + seconds)
        return self.now()


def to_rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp; a naive one is taken as UTC. Raises ValueError."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
