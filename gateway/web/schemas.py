"""The bodies of the REST API (SPEC §9), requests and responses, as msgspec Structs on one base.

Requests are decoded with these types (``gateway.web.bodies``), so their ``Literal`` enums and
``Meta`` limits are enforced at the door and name the field on failure. The rules a type cannot
say are enforced by the services (``gateway.tasks``, ``gateway.domain.labels``) and are written
into the document as JSON Schema keywords (``extra_json_schema``), so the OpenAPI document says
exactly what the server accepts: a name is 1 to 200 characters, not only spaces, without control
characters; an id is 1 to 2^63-1; ``seconds`` is above 0 and at most ten years.

Responses are rendered as plain dicts from the services' records by ``gateway.web.present``; the
response Structs here describe them for the OpenAPI document, and the schemathesis run in
``tests/test_openapi.py`` proves that every answer matches them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gateway.clock import MAX_TIME
from gateway.domain.labels import MAX_NAME
from gateway.domain.segments import MAX_PARTS
from gateway.paging import MAX_ID, MAX_LIMIT

# -- character classes of the patterns ---------------------------------------------------------
# Written with \uXXXX escapes, which Python's re, ECMA-262 and Rust's regex read alike.
# Characters a name or a search term must not contain (gateway.domain.labels): C0 and C1 controls
# and the Unicode bidirectional controls.
_FORBIDDEN = r"\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069"
# What str.strip() removes (str.isspace()) besides the controls above.
_SPACES = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Every character str.isspace() takes for whitespace.
_WHITESPACE = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

NAME_PATTERN = rf"^[^{_FORBIDDEN}]*[^{_FORBIDDEN}{_SPACES}][^{_FORBIDDEN}]*$"
"""A name: no control character, and something besides spaces (``labels.check_name``)."""
TEXT_PATTERN = rf"^[^{_FORBIDDEN}]*$"
"""A one-line text that may be empty: no control character (``labels.check_text``)."""
NOT_BLANK_PATTERN = rf"[^{_WHITESPACE}]"
"""Something besides whitespace (a content text or template must not be blank)."""
NUMBER_SEARCH_PATTERN = r"^(?:[ +()\-]*[0-9][0-9 +()\-]*)?$"
"""Digits of a phone number, maybe written with +, spaces, dashes or brackets."""

MAX_ADVANCE = 10 * 365 * 86400.0
MAX_NUMBER = 32  # characters of a phone number as written
MAX_SIGNATURE = 40
# the longest text that can fit MAX_PARTS parts: GSM-7, 153 septets a part (the exact rule
# depends on the encoding and the signature; the server answers 400 naming content.text)
MAX_TEXT = MAX_PARTS * 153

# -- field types ---------------------------------------------------------------------------------
Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="an id this service gave out (1 to 2^63-1)")]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME, extra_json_schema={"pattern": NAME_PATTERN},
                           description=f"1 to {MAX_NAME} characters, not only spaces, no control characters;"
                                       " surrounding spaces are removed")]
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT, description=f"items per page, 1 to {MAX_LIMIT} (default 50)")]
Cursor = Annotated[str, Meta(description="the next_cursor of the previous page")]
DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"}, description="an RFC 3339 UTC time")]
SmsType = Literal["marketing", "notification", "digital"]
SendType = Literal["immediate", "scheduled"]
Result = Literal["succeeded", "failed", "pending"]
TaskStatus = Literal["moderating", "rejected", "scheduled", "sending", "completed", "failed"]
ClockMode = Literal["wall", "virtual"]
SearchText = Annotated[str, Meta(extra_json_schema={"pattern": TEXT_PATTERN})]
NumberSearch = Annotated[str, Meta(extra_json_schema={"pattern": NUMBER_SEARCH_PATTERN})]
PhoneNumber = Annotated[str, Meta(min_length=1, max_length=MAX_NUMBER, examples=["+8613800138000"],
                                  description="a phone number: E.164 (+8613800138000), or as written in the service's"
                                              " default region (13800138000); stored in E.164")]
PlatformName = Annotated[str, Meta(extra_json_schema={"x-smslab-enum": "platforms"},
                                   description="the name of an installed platform (GET /api/v1/platforms)")]
"""A platform name: the OpenAPI document lists the installed ones as its enum."""


class Schema(msgspec.Struct, forbid_unknown_fields=True):
    """The base of every body: unknown fields are refused (requests) and never sent (responses).

    ``__schema_extra__``: JSON Schema keywords added to the type's component in the OpenAPI
    document, for a rule across fields that a type cannot say."""

    __schema_extra__: ClassVar[dict] = {}


# -- requests ------------------------------------------------------------------------------------
class AudienceCreate(Schema):
    """A new audience from a list of numbers. Every entry is kept and classified (valid, empty,
    invalid, duplicate); a task's skipped counts come from that."""

    name: Name
    numbers: list[str | int | None]


class SubActivity(Schema):
    """A step of a marketing campaign that the task belongs to."""

    id: Name | int
    name: Name


class Template(Schema):
    """A template (digital SMS): ``${name}`` placeholders in ``body`` are filled from ``params``;
    every placeholder needs a value."""

    topic: Annotated[str, Meta(extra_json_schema={"pattern": NOT_BLANK_PATTERN})]
    body: Annotated[str, Meta(extra_json_schema={"pattern": NOT_BLANK_PATTERN})]
    params: dict[str, str | int | float] = {}


class Content(Schema):
    """Exactly one of ``text`` and ``template``. With the signature the message is at most
    63 parts (GSM-7: 153 characters a part, UCS-2: 67)."""

    __schema_extra__: ClassVar[dict] = {"oneOf": [
        {"properties": {"text": {"type": "string"}}, "required": ["text"]},
        {"properties": {"template": {"type": "object"}}, "required": ["template"]},
    ]}

    text: Annotated[str, Meta(extra_json_schema={"pattern": NOT_BLANK_PATTERN, "maxLength": MAX_TEXT})] | None = None
    template: Template | None = None


Signature = Annotated[str, Meta(max_length=MAX_SIGNATURE, extra_json_schema={"pattern": TEXT_PATTERN},
                                description="shown as 【signature】 before the text; it counts toward the length")]
SendAt = Annotated[str, Meta(extra_json_schema={"format": "date-time"},
                             description="RFC 3339, before the year 9000; required, and in the future, when send_type"
                                         " is scheduled (unused when immediate)")]


class TaskCreate(Schema):
    """A new send task: it enters moderation at once."""

    name: Name
    audience_id: Id
    content: Content
    platform: PlatformName = "sim"
    sms_type: SmsType = "marketing"
    signature: Signature = ""
    send_type: SendType = "immediate"
    send_at: SendAt | None = None
    sub_activities: list[SubActivity] = []


class TaskPatch(Schema):
    """The fields to change (null or absent: unchanged). The task enters moderation again."""

    name: Name | None = None
    audience_id: Id | None = None
    content: Content | None = None
    platform: PlatformName | None = None
    sms_type: SmsType | None = None
    signature: Signature | None = None
    send_type: SendType | None = None
    send_at: SendAt | None = None
    sub_activities: list[SubActivity] | None = None


class GenerateAudience(Schema):
    """A new audience from the numbers of a task whose result is one of ``results``."""

    name: Name
    results: Annotated[list[Result], Meta(min_length=1)]


class ClockAdvance(Schema):
    """Move the virtual clock forward; the call returns once everything due was processed."""

    seconds: Annotated[float, Meta(gt=0, le=MAX_ADVANCE, description="above 0, at most ten years; the clock stops"
                                                                      " at 9000-01-01")]


class PushedReceipt(Schema):
    """A receipt pushed by a platform (``gateway.wire.webhooks.WireReceipt``)."""

    platform_id: Annotated[str, Meta(min_length=1, max_length=256)]
    status: Literal["delivered", "failed"]
    at: DateTime | Annotated[float, Meta(ge=0, le=MAX_TIME)] | None = None
    part: Annotated[int, Meta(ge=0, le=62, description="the 0-based part of a multi-part message")] | None = None
    code: Annotated[str, Meta(max_length=64)] | None = None
    message: Annotated[str, Meta(max_length=1000)] | None = None


class PushedReceipts(Schema):
    """The body of a receipt webhook (the same for the simulated carrier and the HTTP platform)."""

    receipts: list[PushedReceipt]


class OptOutCreate(Schema):
    """A number to put on the workspace's opt-out list: tasks skip it as ``opted_out``."""

    number: PhoneNumber


# -- responses -----------------------------------------------------------------------------------
class Audience(Schema):
    id: Id
    name: str
    size: int
    source: Literal["upload", "task"]
    created_at: DateTime
    source_task_id: Id | UnsetType = UNSET


class AudiencePage(Schema):
    items: list[Audience]
    next_cursor: str | None


class TaskRow(Schema):
    """A task as the list shows it."""

    id: Id
    name: str
    sub_activities: list[SubActivity]
    content_summary: str
    audience_id: Id
    audience_name: str
    audience_size: int
    sent: int
    succeeded: int
    failed: int
    pending: int
    platform: str
    sms_type: SmsType
    send_type: SendType
    send_at: DateTime | None
    status: TaskStatus
    status_reason: str | None
    created_at: DateTime
    can_edit: bool
    can_delete: bool
    lock_reason: str | None


class Preview(Schema):
    text: str
    encoding: Literal["GSM-7", "UCS-2"]
    parts: int
    characters: int


_SKIP_REASONS = ("empty", "invalid", "duplicate", "over_limit")
_OTHER_SKIP_REASONS = ("refused", "opted_out")  # present once a number was skipped for them
Skipped = Annotated[dict[str, int], Meta(
    description="numbers not sent, by reason: also `refused` (by the platform) and `opted_out` (on the workspace's"
                " opt-out list) once they happen; a plugin may add reasons",
    extra_json_schema={"required": list(_SKIP_REASONS),
                       "properties": {r: {"type": "integer"} for r in (*_SKIP_REASONS, *_OTHER_SKIP_REASONS)}})]


class TaskDetail(TaskRow):
    """A task with its content, counts and explanation."""

    content: Content
    signature: str
    skipped: Skipped
    segments: int
    parts_per_message: int
    details_expire_at: DateTime | None
    details_expired: bool
    late_receipts: int
    duplicate_receipts: int
    started_at: DateTime | None
    completed_at: DateTime | None
    preview: Preview
    explanation: str


class TaskPage(Schema):
    items: list[TaskRow]
    next_cursor: str | None


class FailureReason(Schema):
    code: str
    message: str
    part: int | UnsetType = UNSET


class MessageRow(Schema):
    number_masked: str
    result: Result
    receipt_at: DateTime | None
    failure_reasons: list[FailureReason]
    segments: int


class MessagePage(Schema):
    items: list[MessageRow]
    total: int
    next_cursor: str | None


class Clock(Schema):
    now: DateTime
    mode: ClockMode
    rate: float


class PlatformInfo(Schema, forbid_unknown_fields=False):
    """A platform and what it can do; a platform may say more than these fields."""

    name: str
    description: str
    max_recipients: int | None
    moderation_delay_seconds: float
    receipts: str


class PlatformPage(Schema):
    items: list[PlatformInfo]
    next_cursor: None


class UnmatchedReceipt(Schema):
    platform: str
    platform_id: str
    part: int | None
    status: Literal["delivered", "failed"]
    code: str | None
    message: str | None
    at: DateTime
    received_at: DateTime


class UnmatchedPage(Schema):
    items: list[UnmatchedReceipt]
    total: int
    next_cursor: str | None


class ReceiptsAccepted(Schema):
    accepted: int


class InboundItem(Schema):
    """A message from a handset (a reply), as the gateway stored it."""

    id: Id
    workspace_id: Id | None
    platform: str
    sender: str
    recipient: str
    text: str
    at: DateTime
    received_at: DateTime
    platform_id: str | None
    opted_out: bool


class InboundPage(Schema):
    items: list[InboundItem]
    total: int
    next_cursor: str | None


class OptOut(Schema):
    """A number on the workspace's opt-out list: put there by a reply (``source`` ``reply``, with
    the reply's id and the keyword) or over the API (``api``)."""

    number: str
    source: Literal["reply", "api"]
    keyword: str | None
    inbound_id: Id | None
    created_at: DateTime


class OptOutPage(Schema):
    items: list[OptOut]
    total: int
    next_cursor: str | None


class Check(Schema):
    status: Literal["ok", "failing"]
    error: str | UnsetType = UNSET


class EngineCheck(Schema):
    status: Literal["ok", "stuck", "failing"]
    step_running_seconds: float | None
    last_error: str | None


class HealthChecks(Schema):
    database: Check
    writer: Check
    engine: EngineCheck | UnsetType = UNSET


class Instance(Schema):
    """This process among the instances sharing the database (SPEC §11)."""
    id: str
    leading: bool  # it runs the engine, the dispatches and the in-process carrier
    shared: bool  # its database can be shared with other instances (PostgreSQL)


class Health(Schema):
    status: Literal["ok", "degraded"]
    clock: ClockMode
    checks: HealthChecks
    instance: Instance | UnsetType = UNSET


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | UnsetType = UNSET


class Error(Schema):
    """Every error: ``field`` names the input at fault (always, for a 400)."""

    error: ErrorDetail


REQUESTS = (AudienceCreate, TaskCreate, TaskPatch, GenerateAudience, ClockAdvance, PushedReceipts, OptOutCreate)
RESPONSES = (Audience, AudiencePage, TaskDetail, TaskPage, MessagePage, Clock, PlatformPage, UnmatchedPage,
             ReceiptsAccepted, Health, Error, InboundItem, InboundPage, OptOut, OptOutPage)
ALL = (*REQUESTS, *RESPONSES)
