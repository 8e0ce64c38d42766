"""The inbound area: replies from handsets and each workspace's opt-out list.

What the service asks of a backend for ``gateway/inbound.py``. The rules (which text opts out,
which sender is a valid number, what is cached) stay in the service; a store only keeps rows and
answers for them. Numbers arrive here in E.164 already, and searches as digits.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Protocol


class NewInbound(NamedTuple):
    """A reply to store: the service has cleaned each field; ``keyword`` is the opt-out keyword
    its text is (None: it opts nobody out)."""

    sender: str
    recipient: str
    text: str
    at: float
    platform_id: str | None
    keyword: str | None


class StoredInbound(NamedTuple):
    """One reply ``store_replies`` kept: its place in the list given, its id, whether it opted out."""

    index: int
    inbound_id: int
    opted_out: bool


class InboundRecord(NamedTuple):
    id: int
    workspace_id: int | None
    platform: str
    sender: str
    recipient: str
    text: str
    at: float
    received_at: float
    platform_id: str | None
    opted_out: bool


class OptOutRecord(NamedTuple):
    number: str
    source: str  # "reply" or "api"
    keyword: str | None
    inbound_id: int | None
    created_at: float


class InboundPage(NamedTuple):
    """``items`` newest first; ``more``: another page follows the last item's id."""

    items: list[InboundRecord]
    total: int
    more: bool


class OptOutPage(NamedTuple):
    """``items`` in number order; ``more``: another page follows the last item's number."""

    items: list[OptOutRecord]
    total: int
    more: bool


class InboundStore(Protocol):
    async def store_replies(self, workspace_id: int | None, platform: str, replies: list[NewInbound],
                            now: float) -> list[StoredInbound]:
        """Store the replies and the opt-outs their keywords ask for, all in one transaction.
        A reply whose (platform, platform_id) is stored already is skipped (a platform handing
        it over again stores nothing twice) and left out of the result. A number already on
        the workspace's list keeps its first entry; its reply still says it opted out."""
        ...

    async def inbound_page(self, workspace_id: int, admin: bool, limit: int, before_id: int | None,
                           sender_digits: str = "", platform: str | None = None) -> InboundPage:
        """Up to ``limit`` of the workspace's replies with an id below ``before_id``, newest
        first; ``admin`` also sees replies of no workspace. ``total`` counts every reply the
        filters choose, not just this page's."""
        ...

    async def inbound_by_platform_id(self, workspace_id: int | None, platform: str,
                                     platform_id: str) -> InboundRecord | None:
        """The reply the platform knows by ``platform_id``, if it belongs to ``workspace_id``
        (None: to no workspace)."""
        ...

    async def opt_outs_page(self, workspace_id: int, limit: int, after: str | None,
                            digits: str = "") -> OptOutPage:
        """Up to ``limit`` of the workspace's opt-outs with a number after ``after``, in number
        order; ``total`` counts every entry the search chooses."""
        ...

    async def add_opt_out(self, workspace_id: int, number: str, now: float) -> tuple[OptOutRecord, bool]:
        """Put ``number`` on the list (source ``api``) in one transaction. Returns the entry as
        stored and whether it is new: an entry already there is left as it was."""
        ...

    async def remove_opt_out(self, workspace_id: int, number: str) -> bool:
        """Take ``number`` off the list; False when it was not on it."""
        ...

    async def has_opt_outs(self, workspace_id: int) -> bool:
        """Whether the workspace's list has any entry (one cheap query: the service caches it)."""
        ...

    async def opted_out(self, workspace_id: int, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` are on the list, in one look-up by the primary key."""
        ...
