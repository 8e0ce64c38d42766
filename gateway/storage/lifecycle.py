"""The lifecycle area: task rows as the engine and the dispatcher move them along (due work,
guarded status changes, the dispatch's start and end, the next event on the virtual clock).

Which transition is allowed is ``gateway.domain.lifecycle``'s to say; a store only applies one,
guarded by the status it expects, so two writers can never both move the same task.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class ModerationDue(NamedTuple):
    """A task whose moderation review fell due, with what the review looks at."""

    id: int
    name: str
    platform: str
    sms_type: str
    signature: str
    content: str  # the JSON content as stored
    send_type: str
    send_at: float | None
    updated_at: float  # the review is thrown away if the task was edited after this
    workspace_id: int


class TaskToSend(NamedTuple):
    """What the dispatcher needs of a sending task to resume it where its last batch left off."""

    platform: str
    audience_id: int
    content: str
    signature: str
    parts: int
    cursor: int
    accepted: int
    skipped: str  # the JSON object of skip counts
    dispatch_started_at: float | None
    sms_type: str
    name: str
    workspace_id: int


class Upcoming(NamedTuple):
    """The raw material of the next event after some time: the earliest moderation, send time or
    retention deadline still to come, and the earliest dispatch start and end whose receipt
    timeout is still to come (the engine turns those into event times with the domain's rule)."""

    at: float | None
    dispatch_started_at: float | None
    dispatch_done_at: float | None


class LifecycleStore(Protocol):
    async def transition(self, task_id: int, old: str, new: str, reason: str | None, now: float,
                         unchanged_since: float | None = None, finished: bool = False) -> bool:
        """Atomically move the task from ``old`` to ``new`` (``updated_at`` = ``now``); a no-op
        returning False when it is no longer ``old``, or was edited after ``unchanged_since``.
        ``finished`` also sets ``completed_at``: ``now`` for a failure, and for a completion the
        time its last result came in (never later than ``now``), since a jumped clock steps later
        than that."""

    async def due_for_moderation(self, now: float) -> list[ModerationDue]:
        """Tasks moderating whose review is due at ``now``, oldest due first."""

    async def due_to_start(self, now: float) -> list[int]:
        """Scheduled tasks to start sending at ``now`` (immediate ones, or whose send time came)."""

    async def sending_undispatched(self) -> list[int]:
        """Tasks sending whose dispatch has not finished (a dispatcher may need starting)."""

    async def finished_sending(self) -> list[int]:
        """Tasks sending, dispatch done, with every sent number final: ready to complete."""

    async def upcoming(self, now: float, submitted_before: float) -> Upcoming:
        """What comes after ``now``; dispatches started (or done) before ``submitted_before``
        have timed out already and are left out."""

    async def task_to_send(self, task_id: int) -> TaskToSend | None:
        """The task if it is sending, else None."""

    async def start_dispatch(self, task_id: int, audience_id: int, now: float) -> str | None:
        """Atomically: if the audience exists, is not deleted and is not empty, mark the dispatch
        started at ``now`` with the audience's size and return None; else return why not
        (``"deleted"`` or ``"empty"``) and change nothing."""

    async def sent_and_skipped(self, task_id: int) -> tuple[int, str]:
        """The task's ``sent`` count and its skip counts (JSON) as recorded."""

    async def dispatch_done(self, task_id: int, now: float, details_expire_at: float) -> None:
        """Mark the dispatch done at ``now``; per-number details expire at ``details_expire_at``."""
