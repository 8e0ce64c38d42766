"""Alibaba Cloud SMS (Dysmsapi 2017-05-25) on the carrier's HTTP port. (Being written.)"""

from __future__ import annotations

from typing import Any


class AliyunApi:
    protocol = "aliyun"

    def __init__(self, report_url: str | None = None):
        self.report_url = report_url

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
