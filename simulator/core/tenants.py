"""Who the carrier serves, and what it admits from each.

A *tenant* is whoever the carrier keeps apart: a gateway workspace (the in-process ``sim``
platform), an SMPP ``system_id`` or a provider account (``smslab carrier``), or the carrier's
default. Each has a profile (its own, or the default's until it sets one), the instant its
relative outage windows count from, a throughput window of real time and counters of what it
refused. Admission (outages, throughput) is decided here, the same way for every front end.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import msgspec

from .. import profile as profiles
from ..model import RuleBook, submit_outage_until


class RateWindow:
    """Admission over a sliding window of real time (``time.monotonic``).

    Each admitted batch occupies the window for one second, or for ``n / limit`` seconds when it
    alone is bigger than the limit (it is admitted only into an empty window, so progress is
    always possible, and the average rate still stays at the limit)."""

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self._held: deque[tuple[float, int]] = deque()  # (released at, messages), in order of release
        self._total = 0

    def reset(self) -> None:
        self._held.clear()
        self._total = 0

    def in_window(self) -> int:
        self._expire(self._now())
        return self._total

    def _expire(self, t: float) -> None:
        while self._held and self._held[0][0] <= t:
            self._total -= self._held.popleft()[1]

    def take(self, n: int, limit: float) -> float | None:
        """Admit ``n`` messages and return None, or refuse them and return the seconds to wait."""
        t = self._now()
        self._expire(t)
        if self._total == 0 or self._total + n <= limit:
            hold = max(1.0, n / limit)
            self._held.append((t + hold, n))
            # keep the deque ordered by release time (holds differ only for oversized batches)
            if len(self._held) > 1 and self._held[-2][0] > self._held[-1][0]:
                self._held = deque(sorted(self._held))
            self._total += n
            return None
        need = self._total + n - limit if n <= limit else self._total
        freed = 0
        for released, k in self._held:
            freed += k
            if freed >= need:
                return max(released - t, 0.005)
        return max(self._held[-1][0] - t, 0.005)


def outages_moved(anchor: float | None, old: profiles.Profile, new: profiles.Profile) -> bool:
    """Relative outage windows restart only when the ``outages`` list itself changed."""
    return anchor is None or msgspec.to_builtins(old.outages) != msgspec.to_builtins(new.outages)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a submission was not admitted: ``outage`` (until ``until``, service time) or
    ``throttled`` (try again in ``retry_after`` real seconds). ``message`` is for people."""

    kind: str
    message: str
    retry_after: float | None = None
    until: float | None = None


class CarrierTenant:
    """One tenant's settings of the simulated carrier, and what it admits."""

    def __init__(self, key: str | None, default: "CarrierTenant | None", monotonic: Callable[[], float] = time.monotonic):
        self.key = key  # None for the carrier's default
        self.default = default  # whose profile and anchor this follows until it has its own
        self.own_profile: profiles.Profile | None = None
        self.own_anchor: float | None = None
        self.throughput_limit: float | None = None  # an account's own limit, over the profile's
        self.rate = RateWindow(monotonic)
        self.throttled = 0  # batches refused as throttled
        self.outage_refusals = 0  # batches refused by a submit outage
        self._rules: tuple[int, RuleBook] | None = None

    @property
    def profile(self) -> profiles.Profile:
        if self.own_profile is None and self.default is not None:
            return self.default.profile
        return self.own_profile or profiles.Profile()

    @property
    def outages_anchor(self) -> float | None:
        if self.own_anchor is None and self.default is not None:
            return self.default.outages_anchor
        return self.own_anchor

    def state_key(self, name: str) -> str:
        """Its keys in the carrier's state table: the default's are the unsuffixed ones."""
        return name if self.key is None else f"{name}:{self.key}"

    def rulebook(self, profile: profiles.Profile) -> RuleBook:
        if self._rules is None or self._rules[0] != id(profile):
            self._rules = (id(profile), RuleBook(profile.number_rules))
        return self._rules[1]

    def admit(self, count: int, now: float) -> Refusal | None:
        """None if ``count`` messages may be submitted at service time ``now``; else why not.
        A submit outage refuses everything; past the throughput limit (the tenant's own, else the
        profile's) a batch waits for room in the sliding second."""
        from gateway.clock import to_rfc3339

        profile = self.profile
        if profile.outages:
            anchor = self.outages_anchor if self.outages_anchor is not None else now
            until = submit_outage_until(profile, now, anchor)
            if until is not None:
                self.outage_refusals += 1
                return Refusal("outage", f"simulated outage: the carrier refuses submissions until {to_rfc3339(until)}",
                               until=until)
        limit = self.throughput_limit if self.throughput_limit is not None else profile.throughput_limit
        if limit is not None and count:
            wait = self.rate.take(count, limit)
            if wait is not None:
                self.throttled += 1
                return Refusal("throttled", f"throttled: above {limit:g} messages per second", retry_after=wait)
        return None
