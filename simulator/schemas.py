"""The request and answer bodies of the simulated carrier's testbed routes (simulator/routes.py).

They live with the simulator, not in ``gateway.web.schemas``: the gateway documents whatever
its plugins route, and knows nothing of profiles. They use the gateway's ``Schema`` base, so
unknown fields are refused and the OpenAPI document shows their limits and enums.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gateway.web.schemas import MAX_NUMBER, DateTime, PhoneNumber, Schema

from .profile import (Delay, FixedDelay, LognormalDelay, Moderation, NumberRule, Outage, Outcomes, Profile, Seconds,
                      UniformDelay, Weight)

MAX_MO_TEXT = 1600  # characters of a reply (ten concatenated parts)
PresetName = Annotated[str, Meta(extra_json_schema={"x-smslab-enum": "presets"})]

SHORT_CODE_PATTERN = r"^\+?[0-9A-Za-z]+$"
"""The number or short code a reply was sent to (``simulator.routes``: the same rule)."""



ShortCode = Annotated[str, Meta(min_length=1, max_length=MAX_NUMBER, extra_json_schema={"pattern": SHORT_CODE_PATTERN},
                                description="the number or code a reply was sent to: letters and digits, maybe"
                                            " after a +")]


class DelayChange(Schema):
    """Some parameters of the current delay, its kind unchanged (a PATCH merges them)."""

    seconds: Seconds | UnsetType = UNSET
    low: Seconds | UnsetType = UNSET
    high: Seconds | UnsetType = UNSET
    median: Annotated[float, Meta(gt=0, le=365 * 86400.0)] | UnsetType = UNSET
    sigma: Annotated[float, Meta(ge=0, le=10)] | UnsetType = UNSET


_DELAYS = [{"$ref": f"#/components/schemas/{t.__name__}"} for t in (FixedDelay, UniformDelay, LognormalDelay)]
_DELAY_CHANGE = {"$ref": "#/components/schemas/DelayChange"}
_OBJECT = dict[str, Any]


class ProfilePatch(Schema):
    """Some fields of the simulated carrier's profile. ``outcomes`` and ``moderation`` merge key
    by key; ``receipt_delay`` and ``submit_latency`` merge when the kind stays (or is left out),
    and are replaced when it changes; lists are replaced whole. The result is validated as a
    whole profile."""

    seed: int | UnsetType = UNSET
    outcomes: Outcomes | UnsetType = UNSET
    failure_codes: dict[Annotated[str, Meta(min_length=1, max_length=64)], Weight] | UnsetType = UNSET
    receipt_delay: Annotated[_OBJECT, Meta(extra_json_schema={"anyOf": [*_DELAYS, _DELAY_CHANGE]})] | UnsetType = UNSET
    max_recipients: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    moderation: Moderation | UnsetType = UNSET
    duplicate_rate: Annotated[float, Meta(ge=0, le=1)] | UnsetType = UNSET
    reorder: bool | UnsetType = UNSET
    part_policy: Literal["all", "first", "last"] | UnsetType = UNSET
    throughput_limit: Annotated[float, Meta(gt=0, le=1e9)] | None | UnsetType = UNSET
    submit_latency: Annotated[Any, Meta(extra_json_schema={"anyOf": [
        *_DELAYS, _DELAY_CHANGE, {"type": "number", "minimum": 0, "maximum": 365 * 86400.0}]})] | UnsetType = UNSET
    outages: list[Outage] | UnsetType = UNSET
    number_rules: list[NumberRule] | UnsetType = UNSET




class MobileOriginated(Schema):
    """A reply from a handset to the simulated carrier (mobile-originated), handed to the gateway
    as an inbound message of the caller's workspace."""

    from_: PhoneNumber = msgspec.field(name="from")
    text: Annotated[str, Meta(max_length=MAX_MO_TEXT, examples=["STOP"], description="what the handset sent; an opt-out keyword"
                                                                  " (STOP, UNSUBSCRIBE, TD by default) opts the"
                                                                  " number out")]
    to: ShortCode | None = None




class CarrierReset(Schema):
    reset: Literal[True]
    profile: Profile


class Preset(Schema):
    name: str
    description: str
    active: bool
    profile: Profile


class PresetPage(Schema):
    items: list[Preset]
    active: str | None
    next_cursor: None


class PlannedReceipt(Schema):
    part: int | None
    status: Literal["delivered", "failed"]
    code: str | None
    at: DateTime
    duplicate: bool
    swallowed: bool
    emitted_at: DateTime | None


class GroundTruth(Schema):
    """What the simulated carrier decided for one message, and the receipts it planned."""

    platform_id: str | None
    number: str
    parts: int
    submitted_at: DateTime
    outcome: Literal["delivered", "failed", "missing", "refused"]
    code: str | None
    submit_latency: float
    rule: str | None
    expected_result: Literal["succeeded", "failed", "receipt_timeout", "refused"]
    receipts: list[PlannedReceipt]


class GroundTruthPage(Schema):
    items: list[GroundTruth]
    next_cursor: str | None


COMPONENTS = (Profile, DelayChange, Delay)
"""Types the routes' bodies refer to by a written ``$ref`` (ProfilePatch's delays), which the
document must hold besides the bodies themselves."""
