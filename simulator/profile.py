"""The simulated carrier's behaviour profile (SPEC §7), as msgspec Structs.

Every field has a default, so a replacement that leaves a field out gets the default, and a
partial update (PATCH) merges into the active profile before it is validated again.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

import msgspec

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]


class FixedDelay(msgspec.Struct, tag="fixed", tag_field="kind", forbid_unknown_fields=True):
    seconds: NonNegative = 0.0


class UniformDelay(msgspec.Struct, tag="uniform", tag_field="kind", forbid_unknown_fields=True):
    low: NonNegative = 0.0
    high: NonNegative = 1.0


class LognormalDelay(msgspec.Struct, tag="lognormal", tag_field="kind", forbid_unknown_fields=True):
    median: Positive = 5.0
    sigma: NonNegative = 1.0


Delay = Union[FixedDelay, UniformDelay, LognormalDelay]


class Outcomes(msgspec.Struct, forbid_unknown_fields=True):
    delivered: NonNegative = 0.90
    failed: NonNegative = 0.07
    missing: NonNegative = 0.03


class Moderation(msgspec.Struct, forbid_unknown_fields=True):
    banned_words: list[str] = msgspec.field(default_factory=lambda: ["lottery"])
    review_seconds: NonNegative = 30.0


def _default_failure_codes() -> dict[str, NonNegative]:
    return {"UNDELIV": 3, "EXPIRED": 1, "MK:0005": 1}


class Profile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seed: int = 42
    outcomes: Outcomes = msgspec.field(default_factory=Outcomes)
    failure_codes: dict[str, NonNegative] = msgspec.field(default_factory=_default_failure_codes)
    receipt_delay: Delay = msgspec.field(default_factory=lambda: LognormalDelay(5.0, 1.0))
    max_recipients: Annotated[int, msgspec.Meta(ge=0)] = 1_000_000
    moderation: Moderation = msgspec.field(default_factory=Moderation)
    duplicate_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    reorder: bool = False
    part_policy: Literal["all", "first", "last"] = "all"
    throughput_limit: Positive | None = None


class ProfileError(ValueError):
    """A profile that does not validate; the message names the field."""


def validate(profile: Profile) -> Profile:
    if sum((profile.outcomes.delivered, profile.outcomes.failed, profile.outcomes.missing)) <= 0:
        raise ProfileError("outcomes: at least one weight must be above 0")
    if profile.outcomes.failed > 0 and sum(profile.failure_codes.values()) <= 0:
        raise ProfileError("failure_codes: a profile that fails messages needs a code with a weight above 0")
    delay = profile.receipt_delay
    if isinstance(delay, UniformDelay) and delay.high < delay.low:
        raise ProfileError("receipt_delay.high: must not be below receipt_delay.low")
    return profile


def from_builtins(data: object) -> Profile:
    try:
        return validate(msgspec.convert(data, Profile))
    except msgspec.ValidationError as exc:
        raise ProfileError(str(exc)) from None


def from_json(body: bytes) -> Profile:
    try:
        return validate(msgspec.json.decode(body, type=Profile))
    except msgspec.ValidationError as exc:
        raise ProfileError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProfileError(f"body: not valid JSON ({exc})") from None


def to_builtins(profile: Profile) -> dict:
    return msgspec.to_builtins(profile)


def merge(profile: Profile, patch: dict) -> Profile:
    """A partial update: nested objects merge key by key, except ``receipt_delay`` whose kind
    may change (then the new object replaces the old)."""
    if not isinstance(patch, dict):
        raise ProfileError("body: expected a JSON object")
    base = to_builtins(profile)
    for key, value in patch.items():
        if key in ("outcomes", "moderation") and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif key == "receipt_delay" and isinstance(value, dict) and value.get("kind", base[key]["kind"]) == base[key]["kind"]:
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return from_builtins(base)


def load_file(path: str | Path) -> Profile:
    """A profile from a TOML or JSON file."""
    p = Path(path)
    data = p.read_bytes()
    if p.suffix.lower() == ".json":
        return from_json(data)
    try:
        return from_builtins(tomllib.loads(data.decode()))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{p.name}: not valid TOML ({exc})") from None


PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_preset(name: str) -> Profile:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file() or name not in preset_names():
        raise KeyError(name)
    return load_file(path)


def preset_description(name: str) -> str:
    """The first comment line of the preset file."""
    for line in (PRESETS_DIR / f"{name}.toml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
