"""Inbound messages (replies from handsets) and each workspace's opt-out list.

A platform hands mobile-originated messages to ``InboundService.deliver`` (through
``PlatformContext.deliver_inbound``). They are stored in one transaction with the opt-outs they
cause: a reply whose text is an opt-out keyword ("STOP", see ``gateway.domain.optout``) puts its
sender on the workspace's opt-out list. Then every plugin's ``smslab_inbound_message`` hook is
told about each new message. A reply whose workspace the platform could not tell is kept
without one: only admin tokens see it, and it opts nobody out.

The dispatcher asks ``opted_out(workspace, numbers)`` once per batch and skips those numbers as
``opted_out``. Most workspaces have no opt-out at all, so whether a workspace has any is cached
(one query per workspace, forgotten whenever its list changes): a batch of a workspace without
opt-outs costs no query, and one with some costs one look-up of the batch's numbers by the
primary key. The cache belongs to this process; several gateway processes on one database
would each need to hear of the others' changes (not built: SQLite is one process).

Plain Python over the inbound store (``gateway/storage/inbound.py``): the web layer only turns
HTTP into these calls, the store keeps the rows.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import msgspec

from . import paging
from .clock import MAX_TIME, to_rfc3339
from .domain import numbers as N
from .domain.optout import opt_out_keyword
from .errors import Invalid, NotFound
from .platform import InboundMessage
from .plugins import call_async
from .storage.inbound import InboundRecord, InboundStore, NewInbound, OptOutRecord

log = logging.getLogger(__name__)

SOURCES = ("reply", "api")
_NUMBER_SEPARATORS = str.maketrans("", "", " +-()")


def number_digits(q: str | None, field: str = "q") -> str:
    """The digits to look for in numbers: ``q`` may be written with a ``+``, spaces, dashes or
    brackets (``schemas.NUMBER_SEARCH_PATTERN`` says the same)."""
    if not q:
        return ""
    digits = q.translate(_NUMBER_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()):
        raise Invalid(f"{field}: search numbers by their digits, e.g. 8000 or +86 138", field=field)
    return digits


def e164_of(raw: Any, region: str) -> str | None:
    """``raw`` as an E.164 number, or None when it is no valid phone number."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        kind, e164 = N.classify(raw, region)
    except Exception:  # phonenumbers on odd input: not a number
        return None
    return e164 if kind == N.OK else None


def inbound_json(m: InboundRecord) -> dict[str, Any]:
    return {"id": m.id, "workspace_id": m.workspace_id, "platform": m.platform, "sender": m.sender,
            "recipient": m.recipient, "text": m.text, "at": to_rfc3339(m.at), "received_at": to_rfc3339(m.received_at),
            "platform_id": m.platform_id, "opted_out": m.opted_out}


def opt_out_json(e: OptOutRecord) -> dict[str, Any]:
    return {"number": e.number, "source": e.source, "keyword": e.keyword, "inbound_id": e.inbound_id,
            "created_at": to_rfc3339(e.created_at)}


class InboundService:
    def __init__(self, store: InboundStore, clock, pm, config):
        self.store = store
        self.clock = clock
        self.pm = pm
        self.config = config
        self._any: dict[int, bool] = {}  # workspace -> has it any opt-out (see opted_out)
        self._changes: dict[int, int] = {}  # workspace -> how often its list changed in this process

    # -- inbound messages ------------------------------------------------------------------------
    async def deliver(self, platform: str, messages: list[InboundMessage], workspace_id: int | None) -> list[int]:
        """Store ``messages`` of ``platform`` for ``workspace_id`` (None: no workspace) in one
        transaction with the opt-outs they ask for, then call ``smslab_inbound_message`` for each
        one stored. Returns the ids of the messages stored (one the platform handed over before,
        by its ``platform_id``, is not stored again)."""
        if not messages:
            return []
        now = self.clock.now()
        region = self.config.default_region
        keywords = self.config.opt_out_keywords
        rows, stored_messages = [], []
        for message in messages:
            sender = message.sender if isinstance(message.sender, str) else str(message.sender)
            e164 = e164_of(sender, region)
            text = message.text if isinstance(message.text, str) else ("" if message.text is None else str(message.text))
            keyword = opt_out_keyword(text, keywords) if workspace_id is not None and e164 else None
            at = message.at if isinstance(message.at, (int, float)) and not isinstance(message.at, bool) else now
            if not 0 <= at <= MAX_TIME:  # NaN, or a time no page could show
                at = now
            recipient = message.recipient if isinstance(message.recipient, str) else str(message.recipient or "")
            platform_id = None if message.platform_id is None else str(message.platform_id)
            rows.append(NewInbound(e164 or sender, recipient, text, float(at), platform_id, keyword))
            stored_messages.append(msgspec.structs.replace(message, sender=e164 or sender, recipient=recipient, text=text,
                                                           at=float(at), platform_id=platform_id))
        stored = await self.store.store_replies(workspace_id, platform, rows, now)
        if workspace_id is not None and any(opted for _, _, opted in stored):
            self._changed(workspace_id)
        for index, _inbound_id, opted in stored:
            try:
                await call_async(self.pm.hook.smslab_inbound_message, platform=platform, message=stored_messages[index],
                                 workspace_id=workspace_id, opted_out=opted)
            except Exception:  # an observer's failure must not fail a delivery that is stored already
                log.exception("a smslab_inbound_message hook failed")
        return [inbound_id for _, inbound_id, _ in stored]

    async def inbound_page(self, workspace_id: int, admin: bool, limit: int, cursor: int | None,
                           sender: str | None = None, platform: str | None = None) -> dict[str, Any]:
        """A workspace's inbound messages, newest first; an admin also sees those that belong to
        no workspace. ``sender``: digits of the sender's number."""
        page = await self.store.inbound_page(workspace_id, admin, limit, cursor, number_digits(sender, "sender"), platform)
        return {"items": [inbound_json(m) for m in page.items], "total": page.total,
                "next_cursor": paging.encode(page.items[-1].id) if page.more else None}

    async def inbound_by_platform_id(self, workspace_id: int | None, platform: str, platform_id: str) -> dict[str, Any]:
        found = await self.store.inbound_by_platform_id(workspace_id, platform, platform_id)
        if found is None:
            raise NotFound(f"no inbound message {platform_id!r} of platform {platform!r}")
        return inbound_json(found)

    # -- the opt-out list ------------------------------------------------------------------------
    def _number(self, raw: Any, field: str = "number") -> str:
        e164 = e164_of(raw, self.config.default_region)
        if e164 is None:
            raise Invalid(f"{field}: {raw!r} is not a valid phone number (write it in E.164, like +8613800138000)",
                          field=field)
        return e164

    def _changed(self, workspace_id: int) -> None:
        """The workspace's list changed (and was committed): forget what was cached about it."""
        self._changes[workspace_id] = self._changes.get(workspace_id, 0) + 1
        self._any.pop(workspace_id, None)

    async def opt_outs_page(self, workspace_id: int, limit: int, cursor: str | None, q: str | None = None) -> dict[str, Any]:
        """The workspace's opt-outs in number order, with ``total``: how many the search (``q``,
        digits of the number) chooses."""
        page = await self.store.opt_outs_page(workspace_id, limit, cursor, number_digits(q, "q"))
        return {"items": [opt_out_json(e) for e in page.items], "total": page.total,
                "next_cursor": paging.encode_key(page.items[-1].number) if page.more else None}

    async def add_opt_out(self, workspace_id: int, raw_number: Any) -> tuple[dict[str, Any], bool]:
        """Put a number on the list (source ``api``). Returns the entry and whether it is new; a
        number already there keeps its entry as it was."""
        number = self._number(raw_number)
        entry, created = await self.store.add_opt_out(workspace_id, number, self.clock.now())
        if created:
            self._changed(workspace_id)
        return opt_out_json(entry), created

    async def remove_opt_out(self, workspace_id: int, raw_number: Any) -> None:
        """Take a number off the list: it can be sent to again. NotFound when it is not there."""
        number = self._number(raw_number)
        removed = await self.store.remove_opt_out(workspace_id, number)
        if not removed:
            raise NotFound(f"number: {number} is not on this workspace's opt-out list", field="number")
        self._changed(workspace_id)

    def may_have_opt_outs(self, workspace_id: int) -> bool:
        """False when the workspace is known to have no opt-out (no await, no query): the
        dispatcher's fast path for the usual case."""
        return self._any.get(workspace_id, True)

    async def has_opt_outs(self, workspace_id: int) -> bool:
        known = self._any.get(workspace_id)
        if known is not None:
            return known
        changes = self._changes.get(workspace_id, 0)
        found = await self.store.has_opt_outs(workspace_id)
        if self._changes.get(workspace_id, 0) == changes:  # no change committed while it was read
            self._any[workspace_id] = found
        return found

    async def opted_out(self, workspace_id: int, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` (E.164) are on the workspace's opt-out list: no query at all when
        the list is empty, else one look-up by the primary key."""
        numbers = list(numbers)
        if not numbers or not await self.has_opt_outs(workspace_id):
            return set()
        return await self.store.opted_out(workspace_id, numbers)
