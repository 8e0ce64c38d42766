"""The unmatched-receipts listing: receipts for message ids no task knows, kept aside and shown.
(How they are stored and matched belongs to the receipts' writer; this area only reads them.)"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class UnmatchedReceipt(NamedTuple):
    id: int
    platform: str
    platform_id: str
    part: int | None
    status: str
    code: str | None
    message: str | None
    at: float | None
    received_at: float


class UnmatchedStore(Protocol):
    async def page(self, workspace_id: int, with_unowned: bool, platform: str | None, after: int | None,
                   limit: int) -> tuple[int, list[UnmatchedReceipt]]:
        """(how many unmatched receipts the filter chooses in all, at most ``limit`` of them with
        ids above ``after``, in id order). The workspace's receipts, and with ``with_unowned``
        also those that belong to no workspace (pushed by a platform itself)."""
