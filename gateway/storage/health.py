"""The health area: whether the database answers, for ``/healthz``."""

from __future__ import annotations

from typing import Protocol


class HealthStore(Protocol):
    async def ping(self) -> None:
        """Return once the database answered a trivial query; raise what the driver raised if it
        cannot (the message is shown in ``/healthz``)."""
