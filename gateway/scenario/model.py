"""The scenario file, as msgspec Structs: what ``gateway.scenario.load`` converts the TOML into.

docs/scenarios/README.md is the reference for every field; keep the two in step."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Duration = Annotated[str, Meta(min_length=1, max_length=40)] | int | float
Time = Annotated[str, Meta(min_length=1, max_length=40)]
Count = Annotated[int, Meta(ge=0)]

ACTIONS = ("preset", "profile", "outage", "outage_end", "reply", "audience", "task", "advance", "expect",
           "expect_ground_truth")
COUNT_NAMES = ("audience_size", "sent", "succeeded", "failed", "pending", "segments", "late_receipts",
               "duplicate_receipts")
TaskStatus = Literal["moderating", "rejected", "scheduled", "sending", "completed", "failed"]
CountName = Literal["audience_size", "sent", "succeeded", "failed", "pending", "segments", "late_receipts",
                    "duplicate_receipts"]


class Struct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Generate(Struct):
    """``numbers = {prefix = "+8613800", count = 1000}``: prefix + a zero-padded counter."""

    prefix: Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{0,13}$")]
    count: Annotated[int, Meta(ge=1, le=1_000_000)]
    first: Annotated[int, Meta(ge=0)] = 0
    digits: Annotated[int, Meta(ge=1, le=14)] | None = None


class Audience(Struct):
    name: Name
    numbers: list[str] | Generate
    extra: list[str] = []


class Outage(Struct):
    kind: Literal["submit", "receipts"]
    start: Time | None = None
    end: Time | None = None
    duration: Duration | None = None


class Reply(Struct):
    from_: Annotated[str, Meta(min_length=1, max_length=40)] = msgspec.field(name="from")
    text: Annotated[str, Meta(min_length=1, max_length=1600)]
    to: Annotated[str, Meta(min_length=1, max_length=40)] | None = None


class SubActivity(Struct):
    id: Name
    name: Name


class Task(Struct):
    name: Name
    audience: Name
    text: Annotated[str, Meta(min_length=1)]
    signature: str = "Shop"
    sms_type: Literal["marketing", "notification"] = "marketing"
    send_type: Literal["immediate", "scheduled"] = "immediate"
    send_at: Time | None = None
    platform: Name = "sim"
    sub_activities: list[SubActivity] = []


class Expect(Struct):
    task: Name
    status: TaskStatus | None = None
    status_reason: str | None = None  # a part of the task's status_reason
    counts: dict[CountName, Count] = {}
    skipped: dict[Annotated[str, Meta(min_length=1)], Count] = {}
    reasons: dict[Annotated[str, Meta(min_length=1)], Count] = {}  # failed numbers per failure code


class Step(Struct):
    at: Time | None = None
    after: Duration | None = None
    note: str | None = None
    preset: Name | None = None
    profile: dict[str, Any] | None = None
    outage: Outage | None = None
    outage_end: Literal["submit", "receipts", "all"] | None = None
    reply: Reply | None = None
    audience: Audience | None = None
    task: Task | None = None
    advance: Duration | None = None
    expect: Expect | None = None
    expect_ground_truth: Name | None = None

    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)


class Scenario(Struct):
    name: str | None = None
    description: str | None = None
    start: Time | None = None
    steps: list[Step] = msgspec.field(name="step", default_factory=list)
