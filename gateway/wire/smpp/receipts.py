"""Delivery receipts in the dialects that make gateways lose them (SPEC §10).

The SMSC writes receipts through one formatter driven by a :class:`Dialect`, so an operator quirk
is a preset, not code. The ESME reads them with one tolerant parser and matches ids through
:func:`normalise_id`, whatever the dialect. The text is SMPP 3.4 Appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...

which the spec itself calls "SMSC vendor specific"; the presets below are the variants met in the
field, each with the public report of the gateway failure it reproduces.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from .pdu import DATA_SM, DELIVER_SM, Pdu, encode

ESM_RECEIPT = 0x04  # esm_class: SMSC delivery receipt

# message_state, SMPP 3.4 section 5.2.28
ENROUTE, DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED, UNKNOWN, REJECTED = range(1, 9)
MESSAGE_STATES = {
    "ENROUTE": ENROUTE, "DELIVERED": DELIVERED, "EXPIRED": EXPIRED, "DELETED": DELETED,
    "UNDELIVERABLE": UNDELIVERABLE, "ACCEPTED": ACCEPTED, "UNKNOWN": UNKNOWN, "REJECTED": REJECTED,
}
# The stat words of Appendix B.
STANDARD_STAT_WORDS = {
    "ENROUTE": "ENROUTE", "DELIVERED": "DELIVRD", "EXPIRED": "EXPIRED", "DELETED": "DELETED",
    "UNDELIVERABLE": "UNDELIV", "ACCEPTED": "ACCEPTD", "UNKNOWN": "UNKNOWN", "REJECTED": "REJECTD",
}
RECEIPT_FIELDS = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text")

StateName = Literal[
    "ENROUTE", "DELIVERED", "EXPIRED", "DELETED", "UNDELIVERABLE", "ACCEPTED", "UNKNOWN", "REJECTED"
]
FieldName = Literal["id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"]
StatWord = Annotated[str, msgspec.Meta(pattern=r"^\S{1,20}$")]
# date_format: (digits of the year, with seconds). strftime and strptime cost 3-9 µs a call here,
# a %-format or a few int() calls a third of that.
_DATE_LAYOUTS = {
    "YYMMDDhhmm": (2, False), "YYMMDDhhmmss": (2, True),
    "YYYYMMDDhhmm": (4, False), "YYYYMMDDhhmmss": (4, True),
}
_DATE_WRITERS = {
    "YYMMDDhhmm": lambda t: "%02d%02d%02d%02d%02d" % (t.year % 100, t.month, t.day, t.hour, t.minute),
    "YYMMDDhhmmss": lambda t: "%02d%02d%02d%02d%02d%02d" % (t.year % 100, t.month, t.day, t.hour, t.minute, t.second),
    "YYYYMMDDhhmm": lambda t: "%04d%02d%02d%02d%02d" % (t.year, t.month, t.day, t.hour, t.minute),
    "YYYYMMDDhhmmss": lambda t: "%04d%02d%02d%02d%02d%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second),
}


@functools.lru_cache(maxsize=None)
def _date_writer(date_format: str):
    """The date writer of a format, remembering the last few thousand dates it wrote: receipts
    come in bursts that share their seconds (the SMSC reuses one datetime per second), and a
    look-up is a third of the formatting."""
    return functools.lru_cache(maxsize=4096)(_DATE_WRITERS[date_format])


class Dialect(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How one account's SMSC writes ids and receipts (SPEC §10; every default is SMPP 3.4).

    ``stat_words`` overrides the Appendix B word of the states it names. ``fields`` lists the
    receipt-text keys that appear (always in Appendix B order); it also takes ``id`` and ``stat``,
    and an empty list sends no text at all, only the TLVs. ``receipt_pdu`` is applied by
    :func:`receipt_pdu`; ``receipt_before_resp`` and ``resend_unacked_after`` are timing, carried
    here for the SMSC session. Build one with :func:`dialect_from`, which checks the constraints.
    """

    message_id: Literal["decimal", "hex", "HEX", "uuid"] = "decimal"
    message_id_width: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    receipt_id: Literal["same", "decimal", "hex", "HEX"] = "same"
    date_format: Literal["YYMMDDhhmm", "YYMMDDhhmmss", "YYYYMMDDhhmm", "YYYYMMDDhhmmss"] = "YYMMDDhhmm"
    stat_words: dict[StateName, StatWord] = msgspec.field(default_factory=lambda: dict(STANDARD_STAT_WORDS))
    err_width: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    text_field: Literal["text", "Text"] | None = "text"
    fields: tuple[FieldName, ...] = RECEIPT_FIELDS
    tlvs: bool = True
    receipt_pdu: Literal["deliver_sm", "data_sm"] = "deliver_sm"
    receipt_before_resp: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    resend_unacked_after: Annotated[float, msgspec.Meta(gt=0)] | None = None

    def __post_init__(self) -> None:
        if "id" not in self.fields and not self.tlvs:
            raise ValueError("fields: a receipt without `id` in its text needs tlvs=true to carry the id")


# name: (description naming the gateway failure and its public source, dialect settings)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "standard": (
        "SMPP 3.4 Appendix B text plus receipted_message_id/message_state/network_error_code TLVs; "
        "the baseline every gateway must match (SMPP 3.4 Appendix B, 5.3.2.12/5.3.2.35).",
        {},
    ),
    "hex-ids": (
        "submit_sm_resp gives a hex id, the receipt text the same id in decimal and no TLVs: exact "
        "matching loses every receipt (MavoCz/smscsim#4; Jasmin #20, #210).",
        {"message_id": "hex", "receipt_id": "decimal", "tlvs": False},
    ),
    "padded-ids": (
        "zero-padded ids in submit_sm_resp, unpadded in the receipt text: a gateway that keeps "
        "or strips the zeros on one side only loses them (Jasmin #375, #1129, #643; jsmpp #178).",
        {"message_id": "HEX", "message_id_width": 8, "receipt_id": "HEX", "tlvs": False},
    ),
    "upper-hex": (
        "lower-case hex ids in submit_sm_resp, upper-case in the receipt: case-sensitive matching "
        "loses them (Jasmin #916, #514).",
        {"message_id": "hex", "receipt_id": "HEX", "tlvs": False},
    ),
    "uuid-ids": (
        "UUID ids, upper-cased in the receipt text: the 36-character id and its case both trip "
        "gateways (Jasmin #643, #153, #290).",
        {"message_id": "uuid", "receipt_id": "HEX", "tlvs": False},
    ),
    "long-dates": (
        "12-digit dates with a 4-digit year, YYYYMMDDhhmm: parsers that expect 10 digits fail "
        "(Jasmin #753).",
        {"date_format": "YYYYMMDDhhmm"},
    ),
    "seconds-dates": (
        "12-digit dates with seconds, YYMMDDhhmmss, the other reading of 12 digits (Jasmin #70).",
        {"date_format": "YYMMDDhhmmss"},
    ),
    "no-sub-dlvrd": (
        "sub: and dlvrd: left out of the text: parsers that require them throw the receipt away "
        "(jsmpp #62, cloudhopper-smpp #105).",
        {"fields": ("id", "submit date", "done date", "stat", "err", "text")},
    ),
    "nonstandard-stat": (
        "stat words other than Appendix B's (DELIVERED, FAILED, ...) and a `Text:` key: gateways "
        "that only know DELIVRD/UNDELIV mark them unknown (jsmpp #9; Jasmin #447).",
        {
            "stat_words": {
                "DELIVERED": "DELIVERED", "UNDELIVERABLE": "FAILED", "REJECTED": "FAILED", "EXPIRED": "EXPIRD",
            },
            "text_field": "Text",
        },
    ),
    "tlv-only": (
        "an empty short_message, the id and state only in the TLVs: text-only parsers find "
        "nothing (Jasmin #139; MavoCz/smscsim#4 discussion; cloudhopper-smpp #105).",
        {"fields": ()},
    ),
    "data-sm": (
        "receipts in data_sm (text in message_payload) instead of deliver_sm: gateways that only "
        "handle deliver_sm drop them (Jasmin #139, #92).",
        {"receipt_pdu": "data_sm"},
    ),
    "early-receipts": (
        "every receipt sent before its submit_sm_resp: a gateway that has not stored the id yet "
        "finds no message for it (Jasmin #423; the DLR-lookup retries in Jasmin #643, #916).",
        {"receipt_before_resp": 1.0},
    ),
    "resend-until-acked": (
        "a receipt without deliver_sm_resp is sent again after 5 s: a gateway that never acks, or "
        "counts each copy, double-counts (raykrueger/ruby-smpp#5).",
        {"resend_unacked_after": 5.0},
    ),
}
_PRESET_DIALECTS = {name: msgspec.convert(settings, Dialect) for name, (_, settings) in PRESETS.items()}


def dialect_from(obj: Dialect | str | dict[str, Any] | None) -> Dialect:
    """A Dialect from itself, a preset name, or a JSON object; ValueError names the bad field."""
    if obj is None:
        return _PRESET_DIALECTS["standard"]
    if isinstance(obj, Dialect):
        return obj
    if isinstance(obj, str):
        try:
            return _PRESET_DIALECTS[obj]
        except KeyError:
            raise ValueError(f"dialect: unknown preset {obj!r}; presets: {', '.join(PRESETS)}") from None
    try:
        return msgspec.convert(obj, Dialect)
    except msgspec.ValidationError as error:
        raise ValueError(f"dialect: {error}") from None


# --- ids ------------------------------------------------------------------------------------------


def _uuid(n: int) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.blake2b(n.to_bytes(16, "big"), digest_size=16).digest(), version=4)


def format_message_id(dialect: Dialect, n: int) -> str:
    """The id of the SMSC's n-th message as its submit_sm_resp carries it (deterministic in n)."""
    style = dialect.message_id
    if style == "uuid":
        return str(_uuid(n))
    text = str(n) if style == "decimal" else format(n, "x" if style == "hex" else "X")
    return text.zfill(dialect.message_id_width)


def receipt_text_id(dialect: Dialect, n: int) -> str:
    """The same id as the receipt text writes it: ``same``, or the id's value in another base
    without padding (for a UUID the value is its 128-bit number; hex/HEX keep the dashed layout)."""
    style = dialect.receipt_id
    if style == "same":
        return format_message_id(dialect, n)
    if dialect.message_id == "uuid":
        value = _uuid(n)
        if style == "decimal":
            return str(value.int)
        return str(value) if style == "hex" else str(value).upper()
    return str(n) if style == "decimal" else format(n, "x" if style == "hex" else "X")


# --- building -------------------------------------------------------------------------------------


def build_receipt(
    dialect: Dialect,
    *,
    message_number: int,
    submit_time: datetime,
    done_time: datetime,
    stat: str,
    err: int = 0,
    sub: int = 1,
    dlvrd: int | None = None,
    text_bytes: bytes = b"",
    message_state: int | None = None,
    network_error: int | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """(short_message, TLVs) of the receipt for message ``message_number`` in ``dialect``.

    ``stat`` is a state name (DELIVERED, UNDELIVERABLE, ...); ``message_state`` defaults to its
    number, ``dlvrd`` to 1 when delivered else 0, ``network_error`` (the GSM code in the
    network_error_code TLV) to ``err``. The text carries the first 20 octets of ``text_bytes``.
    """
    state = MESSAGE_STATES.get(stat)
    if state is None:
        raise ValueError(f"stat must be one of {', '.join(MESSAGE_STATES)}, not {stat!r}")
    if dlvrd is None:
        dlvrd = 1 if state == DELIVERED else 0
    write_date = _date_writer(dialect.date_format)
    message_id = format_message_id(dialect, message_number)
    text_id = message_id if dialect.receipt_id == "same" else receipt_text_id(dialect, message_number)
    slots = {_ID: text_id.encode("ascii"), _SUBMIT: write_date(submit_time).encode("ascii"),
             _DONE: write_date(done_time).encode("ascii")}
    short_message = b"".join(p if type(p) is bytes else slots[p] for p in _text_layout(dialect, stat, err, sub, dlvrd, text_bytes))
    tlvs: dict[str, Any] = {}
    if dialect.tlvs:
        code = err if network_error is None else network_error
        tlvs = {
            "receipted_message_id": message_id,
            "message_state": state if message_state is None else message_state,
            "network_error_code": b"\x03" + (code & 0xFFFF).to_bytes(2, "big"),  # 3 = GSM
        }
    return short_message, tlvs


_ID, _SUBMIT, _DONE = 0, 1, 2  # the slots of a receipt text that change receipt by receipt


def _text_layout(dialect: Dialect, stat: str, err: int, sub: int, dlvrd: int, text_bytes: bytes) -> tuple[bytes | int, ...]:
    """A receipt's text as constant octets around the slots each receipt fills (its id and its
    two dates): everything the dialect, the state and the quoted text decide, worked out once by
    :class:`ReceiptWriter` for a whole burst of receipts."""
    show = dialect.fields
    words: list[tuple[bytes | int, ...]] = []
    if "id" in show:
        words.append((b"id:", _ID))
    if "sub" in show:
        words.append((f"sub:{sub:03d}".encode(),))
    if "dlvrd" in show:
        words.append((f"dlvrd:{dlvrd:03d}".encode(),))
    if "submit date" in show:
        words.append((b"submit date:", _SUBMIT))
    if "done date" in show:
        words.append((b"done date:", _DONE))
    if "stat" in show:
        words.append((f"stat:{dialect.stat_words.get(stat) or STANDARD_STAT_WORDS[stat]}".encode("ascii"),))
    if "err" in show:
        words.append(((f"err:{err:0{dialect.err_width}d}" if dialect.err_width else f"err:{err}").encode(),))
    if "text" in show and dialect.text_field:
        words.append((f"{dialect.text_field}:".encode() + text_bytes[:20],))
    layout: list[bytes | int] = []
    for i, word in enumerate(words):
        for piece in ((b" ", *word) if i else word):
            if type(piece) is bytes and layout and type(layout[-1]) is bytes:
                layout[-1] += piece
            else:
                layout.append(piece)
    return tuple(layout)


class ReceiptWriter:
    """One dialect's receipts as wire bytes: :meth:`body` is what ``encode(receipt_pdu(dialect,
    *build_receipt(...)))`` puts after the 16-octet header, octet for octet.

    Why a second way to the same octets: the SMSC sends a receipt for every message, and the
    general path (the words of the text, a Pdu of 17 fields, the codec's checks) cost it about
    7 µs a receipt, a fifth of its own time at full rate. A burst of receipts shares its state,
    error and quoted text, so the text is laid out once per (state, error, text) as a %-format
    with only the id and the two dates left to fill, and the PDU around it is a few joins. What
    this path does not cover (an address or text the fields cannot hold) goes the general way,
    where the codec raises as it always did.
    """

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self.command_id = DATA_SM if dialect.receipt_pdu == "data_sm" else DELIVER_SM
        self._same_id = dialect.receipt_id == "same"
        self._max_address = 64 if self.command_id == DATA_SM else 20
        write = _date_writer(dialect.date_format)
        self._date = functools.lru_cache(maxsize=4096)(lambda t: write(t).encode("ascii"))
        self._plans: dict[tuple[str, int, bytes], tuple[bytes, tuple[int, ...], bytes]] = {}

    def _plan(self, stat: str, err: int, text_bytes: bytes) -> tuple[bytes, tuple[int, ...], bytes]:
        state = MESSAGE_STATES.get(stat)
        if state is None:
            raise ValueError(f"stat must be one of {', '.join(MESSAGE_STATES)}, not {stat!r}")
        layout = _text_layout(self.dialect, stat, err, 1, 1 if state == DELIVERED else 0, text_bytes)
        text = b"".join(p.replace(b"%", b"%%") if type(p) is bytes else b"%s" for p in layout)
        slots = tuple(p for p in layout if type(p) is int)
        state_tlvs = b"\x04\x27\x00\x01" + bytes((state,)) + b"\x04\x23\x00\x03\x03" + (err & 0xFFFF).to_bytes(2, "big")
        if len(self._plans) >= 1024:  # a task's text and a handful of states: more is a changing text
            self._plans.clear()
        plan = self._plans[(stat, err, text_bytes)] = (text, slots, state_tlvs)
        return plan

    def body(self, *, message_number: int, submit_time: datetime, done_time: datetime, stat: str, err: int,
             text_bytes: bytes, source_addr: str, destination_addr: str, dest_addr_ton: int = 1,
             dest_addr_npi: int = 1) -> bytes:
        """The receipt's PDU body (source_addr_ton/npi 1/1, as :func:`receipt_pdu` writes them)."""
        dialect = self.dialect
        plan = self._plans.get((stat, err, text_bytes)) or self._plan(stat, err, text_bytes)
        text, slots, state_tlvs = plan
        message_id = format_message_id(dialect, message_number)
        if slots:
            date = self._date
            values = ((message_id if self._same_id else receipt_text_id(dialect, message_number)).encode("ascii"),
                      date(submit_time), date(done_time))
            short_message = text % tuple([values[i] for i in slots])
        else:
            short_message = text.replace(b"%%", b"%")
        source, destination = source_addr.encode("latin-1"), destination_addr.encode("latin-1")
        if len(source) > self._max_address or len(destination) > self._max_address or len(short_message) > 254:
            return encode(receipt_pdu(dialect, *build_receipt(
                dialect, message_number=message_number, submit_time=submit_time, done_time=done_time, stat=stat,
                err=err, text_bytes=text_bytes), sequence_number=0, source_addr=source_addr,
                destination_addr=destination_addr, dest_addr_ton=dest_addr_ton, dest_addr_npi=dest_addr_npi))[16:]
        tlvs = b""
        if dialect.tlvs:
            mid = message_id.encode("ascii")
            tlvs = b"\x00\x1e" + (len(mid) + 1).to_bytes(2, "big") + mid + b"\x00" + state_tlvs
        addresses = (b"\x00\x01\x01", source, b"\x00", bytes((dest_addr_ton, dest_addr_npi)), destination)
        if self.command_id == DATA_SM:
            payload = b"\x04\x24" + len(short_message).to_bytes(2, "big") + short_message if short_message else b""
            return b"".join((*addresses, b"\x00\x04\x00\x00", tlvs, payload))
        # esm_class 4, then protocol_id ... sm_default_msg_id all 0 / empty, then sm_length
        return b"".join((*addresses, b"\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00", bytes((len(short_message),)),
                         short_message, tlvs))


def receipt_pdu(
    dialect: Dialect,
    short_message: bytes,
    tlvs: dict[str, Any],
    *,
    sequence_number: int,
    source_addr: str,
    destination_addr: str,
    source_addr_ton: int = 1,
    source_addr_npi: int = 1,
    dest_addr_ton: int = 1,
    dest_addr_npi: int = 1,
) -> Pdu:
    """The deliver_sm or data_sm (per ``dialect.receipt_pdu``) carrying a receipt; its source is
    the handset the message went to, its destination the original sender."""
    if dialect.receipt_pdu == "data_sm":
        if short_message:
            tlvs = {**tlvs, "message_payload": short_message}
        fields = {
            "service_type": "", "source_addr_ton": source_addr_ton, "source_addr_npi": source_addr_npi,
            "source_addr": source_addr, "dest_addr_ton": dest_addr_ton, "dest_addr_npi": dest_addr_npi,
            "destination_addr": destination_addr, "esm_class": ESM_RECEIPT, "registered_delivery": 0,
            "data_coding": 0,
        }
        return Pdu(DATA_SM, 0, sequence_number, fields, tlvs)
    fields = {
        "service_type": "", "source_addr_ton": source_addr_ton, "source_addr_npi": source_addr_npi,
        "source_addr": source_addr, "dest_addr_ton": dest_addr_ton, "dest_addr_npi": dest_addr_npi,
        "destination_addr": destination_addr, "esm_class": ESM_RECEIPT, "protocol_id": 0,
        "priority_flag": 0, "schedule_delivery_time": "", "validity_period": "", "registered_delivery": 0,
        "replace_if_present_flag": 0, "data_coding": 0, "sm_default_msg_id": 0, "short_message": short_message,
    }
    return Pdu(DELIVER_SM, 0, sequence_number, fields, tlvs)


# --- parsing --------------------------------------------------------------------------------------

# Stat words seen in the field, by the state they mean. Words not listed map to outcome "unknown".
STAT_WORD_STATES = {
    **{word: MESSAGE_STATES[state] for state, word in STANDARD_STAT_WORDS.items()},
    **dict.fromkeys(("DELIVERED", "DELIVER", "DLVRD", "DELIVRED", "SUCCESS", "DELIVERY_SUCCESS"), DELIVERED),
    **dict.fromkeys(("EXPIRD", "EXPIRE"), EXPIRED),
    **dict.fromkeys(("DELETD",), DELETED),
    **dict.fromkeys(
        ("UNDELIVERABLE", "UNDELIVERED", "UNDELIVRD", "FAILED", "FAIL", "FAILURE", "ERROR", "ERR"), UNDELIVERABLE
    ),
    **dict.fromkeys(("REJECTED", "REJECT", "REJECTED_BY_SMSC"), REJECTED),
    **dict.fromkeys(("ACCEPTED", "BUFFRED", "BUFFERED", "SENT", "SUBMITD", "SUBMITTED"), ACCEPTED),
    **dict.fromkeys(("UNKNOWN", "UNKNWN"), UNKNOWN),
}
# message_state -> outcome: ENROUTE and ACCEPTED are not final (Jasmin #885: an ACCEPTD receipt
# right after the submit, the final one later), so they read as "pending".
STATE_OUTCOMES = {
    ENROUTE: "pending", ACCEPTED: "pending", DELIVERED: "delivered", EXPIRED: "failed",
    DELETED: "failed", UNDELIVERABLE: "failed", REJECTED: "failed", UNKNOWN: "unknown",
}


class ParsedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What a receipt says. ``id`` is receipted_message_id when present, else the text's id
    (``text_id`` keeps the text's own); ``outcome`` is delivered, failed, pending or unknown."""

    id: str
    outcome: str
    stat: str | None = None
    state: int | None = None
    err: str | None = None
    network_error: int | None = None
    sub: int | None = None
    dlvrd: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    text: str | None = None
    text_id: str | None = None


_KEYS = {
    "id": "id", "sub": "sub", "dlvrd": "dlvrd", "stat": "stat", "err": "err", "text": "text",
    **dict.fromkeys(("submit date", "submit_date", "submitdate"), "submit date"),
    **dict.fromkeys(("done date", "done_date", "donedate"), "done date"),
}
# length of the digits: the (year digits, with seconds) readings to try, in order; a 12-digit date
# is read as YYMMDDhhmmss first, since read as YYYYMMDDhhmm it would be a year from 2001-2012
_DATE_READINGS = {10: ((2, False),), 12: ((2, True), (4, False)), 14: ((4, True),)}


def _receipt_values(text: str) -> dict[str, str]:
    """The key:value pairs of a receipt text, keys in any case; ``text`` takes the rest, colons
    and all. Splitting on colons measured 5x faster than a regular expression."""
    parts = text.split(":")
    values: dict[str, str] = {}
    key = None
    for index, chunk in enumerate(parts):
        if key == "text":
            values.setdefault("text", ":".join(parts[index:]))
            break
        if index == len(parts) - 1:
            value, following = chunk, ""
        else:
            value, _, following = chunk.rstrip().rpartition(" ")
            if following.lower() == "date":  # "submit date" and "done date" are two words
                value, _, word = value.rpartition(" ")
                following = f"{word} date"
        if key is not None:
            values.setdefault(key, value.strip())
        key = _KEYS.get(following.lower())
    return values


def _date(value: str, hint: str | None) -> datetime | None:
    digits = value.strip()
    if not digits.isdecimal() or not digits.strip("0"):
        return None
    readings = _DATE_READINGS.get(len(digits), ())
    if hint in _DATE_LAYOUTS and _DATE_LAYOUTS[hint] in readings:  # a known dialect settles 12 digits
        readings = (_DATE_LAYOUTS[hint],)
    for year_digits, seconds in readings:
        year = int(digits[:year_digits])
        if year_digits == 2:
            year += 1900 if year >= 69 else 2000  # as strptime's %y
        rest = digits[year_digits:]
        try:
            second = int(rest[8:10]) if seconds else 0
            return datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), second)
        except ValueError:
            continue
    return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdecimal() else None


def parse_receipt(
    short_message: bytes | str, tlvs: dict[str | int, Any] | None = None, *, date_format: str | None = None,
    dates: bool = True,
) -> ParsedReceipt | None:
    """Read a receipt in any dialect: keys in any case and order, missing fields allowed, 10-, 12-
    or 14-digit dates, stat words per :data:`STAT_WORD_STATES`, TLVs preferred where both speak.

    For a data_sm receipt pass its TLVs: the text is taken from message_payload when short_message
    is empty. None when there is no id anywhere. ``dates=False`` leaves ``submit_date`` and
    ``done_date`` None: a gateway that does not use them saves a third of the parse.
    """
    tlvs = tlvs or {}
    raw = short_message or tlvs.get("message_payload") or b""
    values = _receipt_values(raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else raw)
    text_id = values.get("id") or None
    tlv_id = tlvs.get("receipted_message_id") or None
    receipt_id = tlv_id or text_id
    if not receipt_id:
        return None
    stat = values.get("stat") or None
    state = tlvs.get("message_state")
    if state is None and stat is not None:
        state = STAT_WORD_STATES.get(stat.upper())
    network_error = tlvs.get("network_error_code")
    if isinstance(network_error, bytes) and len(network_error) == 3:  # network type, then the code
        network_error = int.from_bytes(network_error[1:], "big")
    return ParsedReceipt(
        id=receipt_id.strip(),
        outcome=STATE_OUTCOMES.get(state, "unknown"),
        stat=stat,
        state=state,
        err=values.get("err") or None,
        network_error=network_error if isinstance(network_error, int) else None,
        sub=_int(values.get("sub")),
        dlvrd=_int(values.get("dlvrd")),
        submit_date=_date(values.get("submit date", ""), date_format) if dates else None,
        done_date=_date(values.get("done date", ""), date_format) if dates else None,
        text=values.get("text"),
        text_id=text_id,
    )


# --- matching -------------------------------------------------------------------------------------

ID_MODES = ("as-is", "hex-to-dec", "dec-to-hex", "strip-padding", "lower", "auto")


def _canonical(raw: str) -> str:
    lowered = raw.lower()
    stripped = lowered.lstrip("0")
    return stripped or ("0" if lowered else "")


def normalise_id(raw: str, mode: str = "auto", *, from_receipt: bool = True) -> str:
    """The key under which an id is matched; the ESME keys its submit_sm_resp ids with
    ``from_receipt=False`` and looks receipts up with the default, in the same mode.

    ``as-is`` compares exactly; ``lower`` ignores case; ``strip-padding`` ignores leading zeros;
    ``auto`` does both (it cannot tell a base change from a coincidence, so it makes none);
    ``hex-to-dec`` reads receipt ids as hex of the decimal resp ids, ``dec-to-hex`` the reverse.
    Surrounding blanks and NULs never count; an id the mode cannot read keeps its ``auto`` form.
    """
    raw = raw.strip().strip("\0").strip()
    if mode == "as-is":
        return raw
    if mode == "lower":
        return raw.lower()
    if mode == "strip-padding":
        return raw.lstrip("0") or ("0" if raw else "")
    if mode == "auto":
        return _canonical(raw)
    if mode in ("hex-to-dec", "dec-to-hex"):
        receipt_base, resp_base = (16, 10) if mode == "hex-to-dec" else (10, 16)
        try:
            value = int(raw, receipt_base if from_receipt else resp_base)
        except ValueError:
            return _canonical(raw)
        return str(value) if resp_base == 10 else format(value, "x")
    raise ValueError(f"id mode must be one of {', '.join(ID_MODES)}, not {mode!r}")
