"""The simulated carrier's behaviour profile (SPEC §7), as msgspec Structs.

Every field has a default, so a replacement that leaves a field out gets the default, and a
partial update (PATCH) merges into the active profile before it is validated again.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, Union

import msgspec

# Bounds keep every derived time finite and representable: a receipt delay of 1e300 seconds
# once planned receipts no clock could reach, and weights of 1e308 summed to infinity.
MAX_DELAY = 365 * 86400.0  # a year of service time
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_DELAY)]
Weight = Annotated[float, msgspec.Meta(ge=0, le=1e9)]


class FixedDelay(msgspec.Struct, tag="fixed", tag_field="kind", forbid_unknown_fields=True):
    seconds: Seconds = 0.0


class UniformDelay(msgspec.Struct, tag="uniform", tag_field="kind", forbid_unknown_fields=True):
    low: Seconds = 0.0
    high: Seconds = 1.0


class LognormalDelay(msgspec.Struct, tag="lognormal", tag_field="kind", forbid_unknown_fields=True):
    median: PositiveSeconds = 5.0
    sigma: Annotated[float, msgspec.Meta(ge=0, le=10)] = 1.0


Delay = Union[FixedDelay, UniformDelay, LognormalDelay]


class Outcomes(msgspec.Struct, forbid_unknown_fields=True):
    delivered: Weight = 0.90
    failed: Weight = 0.07
    missing: Weight = 0.03


class Moderation(msgspec.Struct, forbid_unknown_fields=True):
    banned_words: list[str] = msgspec.field(default_factory=lambda: ["lottery"])
    review_seconds: Seconds = 30.0


def _default_failure_codes() -> dict[str, Weight]:
    return {"UNDELIV": 3, "EXPIRED": 1, "MK:0005": 1}


class Outage(msgspec.Struct, forbid_unknown_fields=True):
    """A span of service-clock time when the carrier is down.

    ``start``/``end`` are either seconds (counted from the moment the ``outages`` list became
    active) or absolute RFC 3339 times. ``kind``: ``submit`` refuses submissions (a retryable
    platform error), ``receipts`` swallows every receipt due inside the window."""

    start: float | str
    end: float | str
    kind: Literal["submit", "receipts"] = "submit"


class NumberRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A "magic number": an exact ``number`` or a number ``prefix`` (E.164, with the +) whose fate
    is fixed. ``outcome`` is delivered, failed, missing, or refused (refused at submission, so
    the number is not sent). ``code`` is the failure/refusal code (default: drawn from
    ``failure_codes`` for failed, ``REFUSED`` for refused). ``delay`` fixes the receipt delay in
    seconds."""

    outcome: Literal["delivered", "failed", "missing", "refused"]
    number: str | None = None
    prefix: str | None = None
    code: str | None = None
    delay: Seconds | None = None
    note: str | None = None
    # what the SMSC answers a submit_sm for the number (other front ends ignore these):
    # ``smpp_status`` a command_status (the message is not accepted); ``respond`` "never" leaves
    # the submit_sm unanswered; ``respond_after`` holds the response that many real seconds
    smpp_status: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)] | None = None
    respond: Literal["always", "never"] = "always"
    respond_after: Annotated[float, msgspec.Meta(ge=0, le=3600)] | None = None


# Twilio's test numbers (+1 500 555 0001 ... 0009) keep the meaning they have at Twilio; the
# rest of the +1 500 555 00xx block is smslab's own. These numbers are valid E.164 numbers that
# no real subscriber has, so the list is safe to keep in every profile.
MAGIC_NUMBERS: tuple[tuple[str, str, str | None, float | None, str], ...] = (
    ("+15005550000", "delivered", None, 0.0, "delivered at once"),
    ("+15005550001", "refused", "21211", None, "refused at submission: invalid 'To' number (Twilio 21211)"),
    ("+15005550002", "refused", "21612", None, "refused at submission: cannot route to this number (Twilio 21612)"),
    ("+15005550003", "refused", "21408", None, "refused at submission: no permission for the region (Twilio 21408)"),
    ("+15005550004", "refused", "21610", None, "refused at submission: the recipient unsubscribed (Twilio 21610)"),
    ("+15005550006", "delivered", None, None, "a valid number: delivered after the profile's receipt delay (Twilio)"),
    ("+15005550009", "refused", "21614", None, "refused at submission: not a mobile number (Twilio 21614)"),
    ("+15005550010", "failed", "UNDELIV", None, "fails with UNDELIV"),
    ("+15005550011", "failed", "EXPIRED", None, "fails with EXPIRED"),
    ("+15005550012", "failed", "MK:0005", None, "fails with MK:0005 (out of service)"),
    ("+15005550013", "failed", "REJECTD", None, "fails with REJECTD"),
    ("+15005550020", "missing", None, None, "no receipt ever: RECEIPT_TIMEOUT after 72 h"),
    ("+15005550030", "delivered", None, 3600.0, "delivered one hour after submission"),
    ("+15005550031", "delivered", None, 73 * 3600.0, "delivered after 73 hours: a late receipt, after RECEIPT_TIMEOUT"),
)


# What the SMSC answers, as Melrose Labs' simulator does with its magic numbers: a status, no
# answer, a slow answer. The +1 500 555 01xx block; other front ends see a refused or an
# ordinary delivered number.
SMPP_MAGIC_NUMBERS: tuple[dict, ...] = (
    {"number": "+15005550101", "outcome": "refused", "code": "ESME_RSYSERR", "smpp_status": 0x08,
     "note": "SMPP: submit_sm answered ESME_RSYSERR (0x08)"},
    {"number": "+15005550102", "outcome": "refused", "code": "ESME_RTHROTTLED", "smpp_status": 0x58,
     "note": "SMPP: submit_sm answered ESME_RTHROTTLED (0x58)"},
    {"number": "+15005550103", "outcome": "refused", "code": "ESME_RINVDSTADR", "smpp_status": 0x0B,
     "note": "SMPP: submit_sm answered ESME_RINVDSTADR (0x0B)"},
    {"number": "+15005550104", "outcome": "refused", "code": "ESME_RMSGQFUL", "smpp_status": 0x14,
     "note": "SMPP: submit_sm answered ESME_RMSGQFUL (0x14)"},
    {"number": "+15005550105", "outcome": "refused", "code": "ESME_RSUBMITFAIL", "smpp_status": 0x45,
     "note": "SMPP: submit_sm answered ESME_RSUBMITFAIL (0x45)"},
    {"number": "+15005550111", "outcome": "delivered", "respond": "never",
     "note": "SMPP: the submit_sm is never answered (the message is not accepted)"},
    {"number": "+15005550112", "outcome": "delivered", "respond_after": 5.0,
     "note": "SMPP: submit_sm answered after 5 real seconds"},
    {"number": "+15005550113", "outcome": "delivered", "respond_after": 60.0,
     "note": "SMPP: submit_sm answered after 60 real seconds (past most clients' response timeout)"},
)


def default_number_rules() -> list[NumberRule]:
    rules = [NumberRule(outcome=o, number=n, code=c, delay=d, note=note) for n, o, c, d, note in MAGIC_NUMBERS]
    return rules + [NumberRule(**rule) for rule in SMPP_MAGIC_NUMBERS]


class SessionChaos(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """SMPP session faults (the SMSC only). ``drop_after_pdus``: a bind is cut after this many
    PDUs from the client; ``drop_at``: every bind is cut at these service-clock instants (seconds
    from when the list became active, like outages, or RFC 3339); ``unanswered_rate``: the share
    of requests left without any response (decided per account and request count, seeded);
    ``response_delay``: real seconds before each response; ``enquire_link_interval``: the SMSC
    sends an enquire_link this often (real seconds) and unbinds a client that does not answer
    within ``enquire_link_timeout``."""

    drop_after_pdus: Annotated[int, msgspec.Meta(ge=1)] | None = None
    drop_at: list[float | str] = msgspec.field(default_factory=list)
    unanswered_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    response_delay: Annotated[float, msgspec.Meta(ge=0, le=600)] = 0.0
    enquire_link_interval: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    enquire_link_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0


class Profile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seed: int = 42
    outcomes: Outcomes = msgspec.field(default_factory=Outcomes)
    failure_codes: dict[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], Weight] = msgspec.field(default_factory=_default_failure_codes)
    receipt_delay: Delay = msgspec.field(default_factory=lambda: LognormalDelay(5.0, 1.0))
    max_recipients: Annotated[int, msgspec.Meta(ge=0)] = 1_000_000
    moderation: Moderation = msgspec.field(default_factory=Moderation)
    duplicate_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    reorder: bool = False
    part_policy: Literal["all", "first", "last"] = "all"
    throughput_limit: Annotated[float, msgspec.Meta(gt=0, le=1e9)] | None = None
    submit_latency: Union[FixedDelay, UniformDelay, LognormalDelay, Seconds] = 0.0
    outages: list[Outage] = msgspec.field(default_factory=list)
    number_rules: list[NumberRule] = msgspec.field(default_factory=default_number_rules)
    session: SessionChaos = msgspec.field(default_factory=SessionChaos)


class ProfileError(ValueError):
    """A profile that does not validate; the message starts with the field it names."""

    @property
    def field(self) -> str:
        return self.located()[0]

    def located(self) -> tuple[str, str]:
        """(field, "field: message"): msgspec's "... - at `$.a.b`" becomes "a.b: ..."."""
        text = str(self)
        if " - at `$" in text:
            message, _, path = text.partition(" - at `$")
            field = path.rstrip("`").lstrip(".") or "body"
            return field, f"{field}: {message}"
        head = text.split(":", 1)[0]
        if ":" in text and " " not in head:
            return head, text
        return "body", f"body: {text}"

    def invalid(self):
        """The 400 the API answers with, naming the field."""
        from gateway.errors import Invalid

        field, message = self.located()
        return Invalid(message, field=field)


def profile_from_request(body: bytes, patching: "Profile | None" = None) -> "Profile":
    """The profile a PUT (``patching=None``: a whole new one) or a PATCH (``patching``: that one
    with some fields changed) asks for, for both HTTP APIs (the gateway's testbed routes and the
    standalone carrier): a bad body raises the 400 naming its field."""
    try:
        return replacement_from_body(body) if patching is None else patched_from_body(patching, body)
    except ProfileError as exc:
        raise exc.invalid() from None


def replacement_from_body(body: bytes) -> "Profile":
    """A whole new profile from a request body (PUT): fields left out take their defaults."""
    if not body.strip():
        raise ProfileError("body: a JSON profile is required")
    return from_json(body)


def patched_from_body(profile: "Profile", body: bytes) -> "Profile":
    """The profile with some fields changed, from a request body (PATCH)."""
    try:
        patch = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProfileError(f"body: malformed JSON ({exc})") from None
    except RecursionError:
        raise ProfileError("body: JSON nested too deeply") from None
    return merge(profile, patch)


_E164_PREFIX = re.compile(r"^\+[0-9]{1,15}$")


def outage_time(value: float | str, anchor: float) -> float:
    """An outage bound as epoch seconds: a number counts from ``anchor``; a string is RFC 3339."""
    if isinstance(value, str):
        return _parse_time(value)
    return anchor + float(value)


def _parse_time(text: str) -> float:
    from gateway.clock import parse_rfc3339

    return parse_rfc3339(text)


def validate(profile: Profile) -> Profile:
    if sum((profile.outcomes.delivered, profile.outcomes.failed, profile.outcomes.missing)) <= 0:
        raise ProfileError("outcomes: at least one weight must be above 0")
    has_codes = sum(profile.failure_codes.values()) > 0
    if profile.outcomes.failed > 0 and not has_codes:
        raise ProfileError("failure_codes: a profile that fails messages needs a code with a weight above 0")
    for name in ("receipt_delay", "submit_latency"):
        delay = getattr(profile, name)
        if isinstance(delay, UniformDelay) and delay.high < delay.low:
            raise ProfileError(f"{name}.high: must not be below {name}.low")
    for i, outage in enumerate(profile.outages):
        for bound in ("start", "end"):
            value = getattr(outage, bound)
            if isinstance(value, str):
                try:
                    _parse_time(value)
                except ValueError:
                    raise ProfileError(f"outages[{i}].{bound}: seconds or an RFC 3339 time, got {value!r}") from None
            elif value != value or value in (float("inf"), float("-inf")):
                raise ProfileError(f"outages[{i}].{bound}: must be a finite number of seconds")
        if type(outage.start) is type(outage.end) and outage_time(outage.end, 0.0) <= outage_time(outage.start, 0.0):
            raise ProfileError(f"outages[{i}].end: must be after outages[{i}].start")
    for i, value in enumerate(profile.session.drop_at):
        if isinstance(value, str):
            try:
                _parse_time(value)
            except ValueError:
                raise ProfileError(f"session.drop_at[{i}]: seconds or an RFC 3339 time, got {value!r}") from None
        elif value != value or value in (float("inf"), float("-inf")):
            raise ProfileError(f"session.drop_at[{i}]: must be a finite number of seconds")
    for i, rule in enumerate(profile.number_rules):
        if (rule.number is None) == (rule.prefix is None):
            raise ProfileError(f"number_rules[{i}]: give exactly one of \"number\" or \"prefix\"")
        field = "number" if rule.number is not None else "prefix"
        if not _E164_PREFIX.match(getattr(rule, field)):
            raise ProfileError(f"number_rules[{i}].{field}: an E.164 number or prefix: + and digits, like +15005550006")
        if rule.outcome == "failed" and rule.code is None and not has_codes:
            raise ProfileError(f"number_rules[{i}].code: required when failure_codes has no weight above 0")
    return profile


def _toml_times(value: object) -> object:
    """TOML has native datetimes; the profile keeps times as RFC 3339 strings."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00Z"
    if isinstance(value, dict):
        return {k: _toml_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_toml_times(v) for v in value]
    return value


def from_builtins(data: object) -> Profile:
    try:
        return validate(msgspec.convert(data, Profile))
    except msgspec.ValidationError as exc:
        raise ProfileError(str(exc)) from None
    except RecursionError:
        raise ProfileError("body: nested too deeply") from None


def from_json(body: bytes) -> Profile:
    try:
        return validate(msgspec.json.decode(body, type=Profile))
    except msgspec.ValidationError as exc:
        raise ProfileError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProfileError(f"body: not valid JSON ({exc})") from None
    except RecursionError:
        raise ProfileError("body: JSON nested too deeply") from None


def to_builtins(profile: Profile) -> dict:
    return msgspec.to_builtins(profile)


def merge(profile: Profile, patch: dict) -> Profile:
    """A partial update: nested objects merge key by key, except ``receipt_delay`` and
    ``submit_latency`` whose kind may change (then the new object replaces the old); lists
    (``outages``, ``number_rules``) are replaced as a whole."""
    if not isinstance(patch, dict):
        raise ProfileError("body: expected a JSON object")
    base = to_builtins(profile)
    for key, value in patch.items():
        if key in ("outcomes", "moderation", "session") and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif (
            key in ("receipt_delay", "submit_latency")
            and isinstance(value, dict)
            and isinstance(base.get(key), dict)
            and value.get("kind", base[key]["kind"]) == base[key]["kind"]
        ):
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
        return from_builtins(_toml_times(tomllib.loads(data.decode())))
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
