"""The contract between the gateway and an SMS platform.

A platform plugin returns Platform objects from ``smslab_register_platforms``. The gateway
calls ``start`` once with a PlatformContext, ``submit`` with batches of messages, and ``stop``
at shutdown. Receipts travel the other way: a platform hands them to ``ctx.deliver_receipts``
(which returns only after they are committed), or they arrive over HTTP at
``POST /api/v1/platforms/{name}/receipts`` and are verified by ``parse_webhook``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal

import msgspec


# ``gc=False`` on the messages below: they hold only strings and numbers, so they can never be
# part of a reference cycle, and the collector need not track the few per number a task makes.
class SubmitItem(msgspec.Struct, frozen=True, gc=False):
    """One number of one task. ``key`` is the idempotency key: the same key submitted twice
    (after a crash, say) must not reach the handset twice; the platform answers with the
    platform id it gave the first time."""

    key: str
    task_id: int
    number: str
    text: str
    parts: int


class SubmitResult(msgspec.Struct, frozen=True, gc=False):
    key: str
    platform_id: str | None = None
    error_code: str | None = None  # set when this one number was refused
    error_message: str | None = None


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """A delivery report. ``part`` is the 0-based part of a multi-part message, or None for the
    whole message. ``at`` is the platform's time of the event, in epoch seconds."""

    platform_id: str
    status: Literal["delivered", "failed"]
    at: float
    part: int | None = None
    code: str | None = None
    message: str | None = None


class InboundMessage(msgspec.Struct, frozen=True, gc=False):
    """A message from a handset to the sender of a campaign (a mobile-originated reply: "STOP").
    ``sender`` is the handset's number (E.164), ``recipient`` the number or code it was sent to,
    ``at`` the platform's time of it (epoch seconds), ``platform_id`` the platform's id for it."""

    sender: str
    recipient: str
    text: str
    at: float
    platform_id: str | None = None


class PlatformConfigError(ValueError):
    """A platform's configuration is wrong (raised from ``smslab_register_platforms`` or
    ``start``). ``smslab serve`` prints the message and exits with status 2, without a traceback:
    say which setting is wrong and what it must be."""


class PlatformError(Exception):
    """The whole batch was not accepted. ``retryable`` errors are retried with backoff (the
    platform is unreachable or busy); others fail the task with this message.

    ``retry_at``: the service-clock time the platform knows it is back (a simulated outage's
    end). On a virtual clock an advance stops there, so the numbers go out at that instant and a
    replay of "an outage from 10:00 to 10:20" sends at 10:20 however far the clock is moved."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None,
                 retry_at: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.retry_at = retry_at


class Throttled(PlatformError):
    """Above the platform's throughput limit: slow down and send the same batch again."""

    def __init__(self, message: str = "throttled", retry_after: float = 0.05):
        super().__init__(message, retryable=True, retry_after=retry_after)


@dataclass
class PlatformContext:
    """What the gateway lends a platform when it starts."""

    clock: Any
    database: Any
    deliver_receipts: Callable[[str, list[Receipt]], Awaitable[None]]
    config: Any
    extras: dict[str, Any] = field(default_factory=dict)
    # ask the gateway to step soon (and so call ``on_clock``), e.g. when receipts just became
    # due; without it the next step comes with the engine's tick
    wake: Callable[[], None] = lambda: None
    # hand mobile-originated messages to the gateway: (platform name, messages, the workspace they
    # belong to, or None when the platform cannot tell: the gateway keeps them without a workspace,
    # seen only by admin tokens, and they opt nobody out; a platform that can tell, remembers whom
    # it sent to, as the smpp plugin does in its store); returns once they are stored
    deliver_inbound: Callable[[str, list[InboundMessage], int | None], Awaitable[None]] = None  # type: ignore[assignment]
    # the platform's own namespaced store (gateway.storage.sqlite.platform_store.PlatformStore)
    store: Any = None


class Platform:
    """Base class with the optional parts filled in; a platform overrides what it supports."""

    name: str = ""
    description: str = ""
    # How many batches of one task the gateway may have in ``submit`` at once. With 1 the next
    # batch is submitted once this one returned; a platform that keeps a window of requests open
    # (the smpp plugin) sets 4, so the next batches' numbers queue behind this one's and the window
    # drains neither at a batch's end nor while the batch before is being recorded. Results are
    # recorded in the audience's order either way.
    batches_in_flight: int = 1

    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx

    def for_workspace(self, workspace_id: int) -> "Platform":
        """The platform as one workspace sees it. The gateway calls ``max_recipients``,
        ``moderation_delay``, ``moderate`` and ``submit`` for a task on the object this returns
        for the task's workspace, so a platform can keep settings per workspace (the simulated
        carrier keeps a profile, presets and ground truth per workspace). The default is the
        platform itself: one behaviour for every workspace."""
        return self

    async def stop(self) -> None:
        return None

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        raise NotImplementedError

    def max_recipients(self) -> int | None:
        """The per-task recipient limit; numbers past it are skipped as ``over_limit``."""
        return None

    def moderation_delay(self) -> float:
        """Seconds of service time that a content review takes on this platform."""
        return 0.0

    async def moderate(self, text: str, task: dict) -> list[str]:
        """Reasons to reject the content; empty to pass it."""
        return []

    async def on_clock(self, now: float) -> None:
        """Called on every engine step: emit whatever fell due by ``now``."""
        return None

    async def on_leadership(self) -> None:
        """This instance has just become the one that runs the gateway's background work (engine
        steps, dispatches, ``on_clock``). With several ``smslab serve`` processes on one
        PostgreSQL database (SPEC §11) only the leader calls ``submit`` and ``on_clock``; when it
        dies, another instance takes over and calls this first. A platform that keeps shared
        state in memory (the in-process carrier's queue of receipts to emit) reloads it from the
        database here, since the previous leader changed it. Called once at start on a single
        instance too."""
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """Verify and decode receipts pushed over HTTP. Raise WebhookRejected to refuse."""
        raise WebhookRejected("this platform does not accept receipts over HTTP", status=404)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "max_recipients": self.max_recipients(),
            "moderation_delay_seconds": self.moderation_delay(),
            "receipts": "push",
        }


class WebhookRejected(Exception):
    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status
