"""Task statuses and the rules that move a task between them (SPEC §2)."""

from __future__ import annotations

from enum import StrEnum

EDIT_WINDOW_SECONDS = 5 * 60


class Status(StrEnum):
    MODERATING = "moderating"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    COMPLETED = "completed"
    FAILED = "failed"


SEED_WORDING = {
    Status.MODERATING: "Moderating",
    Status.REJECTED: "Rejected",
    Status.SCHEDULED: "To be sent",
    Status.SENDING: "Sending",
    Status.COMPLETED: "Completed",
    Status.FAILED: "Execution Failed",
}

_ALLOWED = {
    Status.MODERATING: {Status.REJECTED, Status.SCHEDULED, Status.FAILED},
    Status.REJECTED: {Status.MODERATING},
    Status.SCHEDULED: {Status.SENDING, Status.MODERATING, Status.FAILED},
    Status.SENDING: {Status.COMPLETED, Status.FAILED},
    Status.COMPLETED: set(),
    Status.FAILED: set(),
}


class TransitionError(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if Status(new) not in _ALLOWED[Status(current)]:
        raise TransitionError(f"a {current} task cannot become {new}")


_STATE_SENTENCES = {
    Status.SENDING: "is sending",
    Status.COMPLETED: "has completed",
    Status.FAILED: "failed to send (Execution Failed)",
}


def modification_lock(status: str, send_type: str, send_at: float | None, now: float) -> str | None:
    """Why the task cannot be edited or deleted now, or None when it can.

    Allowed only when the task was rejected, or when it is a scheduled send whose send_at is
    more than five minutes away (and it has not started sending). Inside those five minutes the
    dispatcher may already be preparing it, so the window closes early on purpose.
    """
    if status == Status.REJECTED:
        return None
    if status in (Status.SENDING, Status.COMPLETED, Status.FAILED):
        return f"the task {_STATE_SENTENCES[Status(status)]}; only rejected or scheduled tasks can change"
    if send_type != "scheduled" or send_at is None:
        return "an immediate task can be changed only after it was rejected"
    if send_at - now <= EDIT_WINDOW_SECONDS:
        return "the scheduled send time is 5 minutes away or less"
    return None


def after_moderation(rejections: list[str], send_type: str) -> str:
    return Status.REJECTED if rejections else Status.SCHEDULED
