"""The service-state area: what the service keeps about itself between runs."""

from __future__ import annotations

from typing import Protocol


class ServiceStateStore(Protocol):
    async def virtual_now(self) -> float | None:
        """The virtual clock's time when it was last saved, or None if it never was."""

    async def save_virtual_now(self, now: float) -> None:
        """Keep ``now`` so that a restarted service continues the virtual timeline from there;
        replaces the time saved before."""
