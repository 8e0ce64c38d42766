"""The tasks area: a task's row, its edits under the lifecycle's lock, its per-number rows.

The service decides (validation, the edit window, what a result means); the store only keeps the
rows and answers each call in one transaction, so the edit it was told to make is made against the
state the service checked or not at all.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class TaskRow(NamedTuple):
    """A task as the API shows it. ``audience_size`` is the audience's current size until the send
    freezes it (the store works that out, so a list of tasks costs one query)."""

    id: int
    name: str
    sub_activities: str  # JSON text, as stored
    content_summary: str
    audience_id: int
    audience_name: str
    audience_size: int
    sent: int
    succeeded: int
    failed: int
    platform: str
    sms_type: str
    send_type: str
    send_at: float | None
    status: str
    status_reason: str | None
    created_at: float
    content: str  # JSON text
    signature: str
    skipped: str  # JSON text
    segments: int
    details_expire_at: float | None
    details_purged: int
    parts: int
    encoding: str
    late_receipts: int
    duplicate_receipts: int
    dispatch_started_at: float | None
    completed_at: float | None
    updated_at: float


class EditableTask(NamedTuple):
    """What an edit or a delete needs to check the lock and to fill in the fields a patch leaves out."""

    status: str
    send_type: str
    send_at: float | None
    name: str
    platform: str
    sms_type: str
    signature: str
    content: str  # JSON text
    audience_id: int
    sub_activities: str  # JSON text


class TaskFields(NamedTuple):
    """What a create or an edit stores; the task (re)enters moderation with it."""

    name: str
    platform: str
    sms_type: str
    signature: str
    content: str  # JSON text
    content_summary: str
    audience_id: int
    audience_name: str
    send_type: str
    send_at: float | None
    sub_activities: str  # JSON text
    moderation_due_at: float
    parts: int
    encoding: str


class DetailsState(NamedTuple):
    purged: bool
    expire_at: float | None


class Counters(NamedTuple):
    sent: int
    succeeded: int
    failed: int


class MessageRow(NamedTuple):
    """One number of a task, as the numbers page shows it."""

    id: int
    number: str
    result: int
    receipt_at: float | None
    reasons: str | None  # JSON text: [[code, text], or [code, text, part], ...]
    parts: int


class TaskStore(Protocol):
    async def create(self, workspace_id: int, fields: TaskFields, now: float) -> int:
        """Store a new task in moderation; returns its id. Raises ``NameTaken`` when the workspace
        already has a task of that name (nothing is stored)."""

    async def editable(self, workspace_id: int, task_id: int) -> EditableTask | None:
        """The task's editable state, or None when the workspace has no such task."""

    async def update(self, workspace_id: int, task_id: int, expected_status: str, fields: TaskFields, now: float) -> bool:
        """Replace the fields and put the task back in moderation, only if its status is still
        ``expected_status`` (the one the lock was checked against); False when it moved on. Raises
        ``NameTaken`` for a name another task of the workspace has."""

    async def delete(self, workspace_id: int, task_id: int, expected_status: str) -> bool:
        """Delete the task if its status is still ``expected_status``; False when it moved on."""

    async def get(self, workspace_id: int, task_id: int) -> TaskRow | None:
        """The task, or None when the workspace has no such task."""

    async def exists(self, workspace_id: int, task_id: int) -> bool:
        """Whether the workspace has this task."""

    async def page(self, workspace_id: int, limit: int, before: int | None, statuses: list[str],
                   platform: str | None, text: str | None) -> list[TaskRow]:
        """At most ``limit`` tasks, newest first, with ids below ``before``: only the given
        statuses (all when empty) and platform, and with ``text`` (taken literally, no wildcards)
        in the name, the content summary or the audience name."""

    async def details(self, workspace_id: int, task_id: int) -> DetailsState | None:
        """Whether the per-number rows were purged, and when they expire; None when no such task."""

    async def counters(self, task_id: int) -> Counters:
        """The task's sent/succeeded/failed counters (they equal its message rows)."""

    async def messages(self, task_id: int, results: list[int], digits: str, after: int | None, limit: int) -> list[MessageRow]:
        """At most ``limit`` of the task's per-number rows with ids above ``after``, in id order:
        those whose result is one of ``results`` and whose number contains ``digits`` (any when
        empty)."""

    async def count_messages(self, task_id: int, results: list[int], digits: str) -> int:
        """How many rows ``messages`` would walk in all with the same filter."""

    async def count_by_status(self) -> list[tuple[str, int]]:
        """(status, how many tasks) over every workspace, for the metrics."""
