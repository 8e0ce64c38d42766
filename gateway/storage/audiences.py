"""The audiences area: named lists of numbers, written in batches and usable once complete.

An audience exists unready from its first write (so its name is claimed before any entry is read)
and becomes ``ready`` in the call that completes it; readers only ever see ready ones.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class AudienceRow(NamedTuple):
    id: int
    name: str
    source: str  # "upload" or "task"
    size: int
    created_at: float
    source_task_id: int | None


# the entry kinds as stored (classified once, when written)
KIND_OK, KIND_EMPTY, KIND_INVALID, KIND_DUPLICATE = 0, 1, 2, 3


class AudienceStore(Protocol):
    async def begin(self, workspace_id: int, name: str, source: str, source_task_id: int | None, now: float) -> int:
        """Create an unready, empty audience; returns its id. Raises ``NameTaken`` when a
        (not deleted) audience of the workspace has that name."""

    async def add_entries(self, rows: list[tuple]) -> None:
        """Store a batch of entries ``(audience_id, seq, raw, e164, kind)`` in one transaction."""

    async def complete(self, audience_id: int, size: int) -> None:
        """Mark every repeat of a valid number a duplicate (the first occurrence is kept), record
        the size and make the audience ready, in one transaction."""

    async def discard(self, audience_id: int) -> None:
        """Remove an unfinished audience and its entries in one transaction."""

    async def unready(self) -> list[int]:
        """The ids of every audience not (yet) ready, whoever is writing it."""

    async def remove_unready(self, audience_id: int) -> None:
        """Remove an abandoned unready audience however many entries it has, in short
        transactions (a chunk of entries each) so the writer is never held for long."""

    async def get(self, workspace_id: int, audience_id: int) -> AudienceRow | None:
        """The ready, not deleted audience; None otherwise."""

    async def page(self, workspace_id: int, limit: int, before: int | None) -> list[AudienceRow]:
        """At most ``limit`` ready, not deleted audiences, newest first, with ids below ``before``."""

    async def delete(self, audience_id: int) -> None:
        """Mark the audience deleted (tasks not sent yet still point at it and fail with a reason
        when due) and drop its entries unless a task still reading them is unsent or sending."""

    async def from_task_results(self, workspace_id: int, task_id: int, name: str, results: list[int], now: float) -> int:
        """A new ready audience (source "task") of the task's numbers whose result is one of
        ``results``, in message order; returns its id. Raises ``NameTaken`` (nothing stored)."""
