"""The service-state area: what the service keeps about itself between runs."""

from __future__ import annotations

from typing import Protocol


class ServiceStateStore(Protocol):
    async def virtual_now(self) -> float | None:
        """The virtual clock's time when it was last saved, or None if it never was."""

    async def save_virtual_now(self, now: float) -> None:
        """Keep ``now`` so that a restarted service continues the virtual timeline from there;
        replaces the time saved before."""

    async def virtual_clock(self) -> tuple[float, float] | None:
        """The virtual time last saved and the wall-clock time (epoch seconds) it was saved at,
        or None: an instance that does not lead follows the leader's clock from these (a clock
        flowing at ``rate`` has moved on by ``rate × (wall now − saved at)`` since)."""

    async def leader_url(self) -> str | None:
        """The URL the leading instance announced when it took the lead (None before any did)."""

    async def save_leader_url(self, url: str) -> None:
        """Announce this instance's URL as the leader's: the others forward to it what only the
        leader serves (a clock advance, the in-process carrier's routes)."""


class StateReads:
    """The reads of the service-state area, in SQL both backends speak alike (no parameters):
    the base of both stores, so they are written once."""

    db: object

    async def virtual_now(self) -> float | None:
        saved = await self.db.fetchone("SELECT value FROM service_state WHERE key='virtual_now'")
        return None if saved is None else float(saved[0])

    async def virtual_clock(self) -> tuple[float, float] | None:
        rows = dict(await self.db.fetchall(
            "SELECT key, value FROM service_state WHERE key IN ('virtual_now', 'virtual_saved_at')"))
        if "virtual_now" not in rows:
            return None
        return float(rows["virtual_now"]), float(rows.get("virtual_saved_at", "0"))

    async def leader_url(self) -> str | None:
        row = await self.db.fetchone("SELECT value FROM service_state WHERE key='leader_url'")
        return None if row is None else row[0]
