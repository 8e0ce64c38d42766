"""Twilio's Messages API (2010-04-01) on the carrier's HTTP port. (Being written.)"""

from __future__ import annotations

from typing import Any


class TwilioApi:
    protocol = "twilio"

    async def start(self, carrier) -> None:
        self.carrier = carrier

    async def stop(self) -> None:
        pass

    def routes(self) -> list:
        return []

    def authenticates(self, path: str) -> bool:
        return False

    def tenant_of(self, msg_id: str) -> str | None:
        return None

    def present(self, item: dict[str, Any]) -> None:
        pass

    async def account_removed(self, name: str) -> None:
        pass
