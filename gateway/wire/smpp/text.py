"""Message text on the SMPP wire: data_coding, user data headers and long messages.

GSM 03.38 text travels unpacked, one septet per octet, as SMPP carries it; the codec is the
``gsm0338`` package, the same one :mod:`gateway.domain.segments` counts with, so a message is
split into exactly the parts smslab bills for: 160 septets alone or 153 per part, 70 UTF-16 units
alone or 67 per part, and an escape pair or a surrogate pair never split. A 16-bit reference UDH
(``udh16``) is one octet longer, which leaves 152 septets or 66 units per part, so there (and only
there) a text can need more parts than it is billed for.

Decoding never raises: bytes a coding cannot carry become U+FFFD, so a malformed message from a
peer still reaches the journal and the receipt text.
"""

from __future__ import annotations

import functools

import unicodedata
from typing import Any, NamedTuple

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

from .pdu import Pdu

GSM7 = 0x00
IA5 = 0x01
BINARY = 0x02
LATIN1 = 0x03
UCS2 = 0x08

ESM_UDHI = 0x40  # esm_class bit: short_message starts with a user data header

_DECODERS = {
    GSM7: "gsm03.38", IA5: "ascii", BINARY: "latin-1", LATIN1: "latin-1", 0x04: "latin-1",
    0x06: "iso8859_5", 0x07: "iso8859_8", UCS2: "utf-16-be", 0x0E: "euc_kr",
}
_ENCODERS = {GSM7: "gsm03.38", IA5: "ascii", LATIN1: "latin-1", UCS2: "utf-16-be"}

# Each GSM character's septet(s), from the tables the gsm0338 codec is built on: the same 138
# characters "...".encode("gsm03.38") accepts, looked up per character without a codec call.
_GSM = {unicodedata.lookup(name): bytes((code,)) for code, name in BASIC_CHARACTER_SET.items()}
_GSM.update(
    {unicodedata.lookup(name): bytes((0x1B, code)) for code, name in BASIC_CHARACTER_SET_EXTENSION.items()}
)


# The same tables as str.translate maps (C speed: the gsm0338 codec is pure Python, 15-30 µs for a
# short text, and the SMSC decodes and writes one per message): GSM septet -> character for a
# text without escapes, and character -> septet(s) as Latin-1 text.
_GSM_TO_TEXT = {code: unicodedata.lookup(name) for code, name in BASIC_CHARACTER_SET.items() if code != 0x1B}
_GSM_TO_TEXT.update({code: "\ufffd" for code in range(0x80, 0x100)})
_TEXT_TO_GSM = {ord(char): septets.decode("latin-1") for char, septets in _GSM.items()}
_GSM_CHARS = frozenset(_GSM)


def decode_text(data_coding: int, data: bytes) -> str:
    """Text of a short_message or message_payload (UDH removed), never raising.

    Codings other than 0, 1, 3 and 8 are read as their ISO 8859 or KS C 5601 tables where SMPP
    3.4 names one, the GSM data-coding group 0xF0-0xFF by its alphabet bit, the rest as Latin-1.
    """
    if 0xF0 <= data_coding <= 0xFF:
        data_coding = BINARY if data_coding & 0x04 else GSM7
    if data_coding == GSM7 and b"\x1b" not in data:
        return data.decode("latin-1").translate(_GSM_TO_TEXT)
    text = data.decode(_DECODERS.get(data_coding, "latin-1"), errors="replace")
    if data_coding == GSM7 and data.endswith(b"\x1b") and (len(data) - len(data.rstrip(b"\x1b"))) % 2:
        text += "\ufffd"  # gsm0338 drops a dangling escape; it is an undecodable octet all the same
    return text


def encode_text(text: str, data_coding: int) -> bytes:
    """Text in data_coding 0 (GSM 03.38 unpacked), 1 (IA5), 3 (Latin-1) or 8 (UCS-2 / UTF-16BE).

    A character the coding cannot carry raises UnicodeEncodeError (a ValueError): pick the coding
    with :func:`choose_coding`.
    """
    if data_coding == GSM7 and _GSM_CHARS.issuperset(text):
        return text.translate(_TEXT_TO_GSM).encode("latin-1")
    codec = _ENCODERS.get(data_coding)
    if codec is None:
        raise ValueError(f"no text encoding for data_coding {data_coding}")
    return text.encode(codec)


@functools.lru_cache(maxsize=1024)  # a task sends one text to every number: its receipts quote it
def gsm_or_question_marks(text: str) -> bytes:
    """``text`` in GSM 03.38, a character it cannot carry written ``?`` (as many SMSCs write the
    ``text:`` of a receipt for a UCS-2 message)."""
    if not _GSM_CHARS.issuperset(text):
        text = "".join(ch if ch in _GSM_CHARS else "?" for ch in text)
    return text.translate(_TEXT_TO_GSM).encode("latin-1")


def choose_coding(text: str) -> int:
    """GSM7 when every character is in the GSM 03.38 alphabet (or its extension), else UCS2."""
    return GSM7 if all(char in _GSM for char in text) else UCS2


# --- user data header -----------------------------------------------------------------------------


def split_udh(data: bytes) -> tuple[bytes, bytes]:
    """(UDH with its length octet, the rest); a header longer than the data is no header."""
    if not data or data[0] + 1 > len(data):
        return b"", data
    return data[: data[0] + 1], data[data[0] + 1 :]


def _udh_concat(udh: bytes) -> tuple[int, int, int] | None:
    pos = 1
    while pos + 2 <= len(udh):
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if len(value) < length:
            return None
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        pos += 2 + length
    return None


def concat_info(pdu: Pdu) -> tuple[int, int, int] | None:
    """(reference, total parts, this part's number) of a concatenated part, from its UDH
    (IEI 0x00 or 0x08) or its sar_* TLVs; None for a whole message or nonsense numbering."""
    info = None
    if pdu.fields.get("esm_class", 0) & ESM_UDHI:
        data = pdu.fields.get("short_message") or pdu.tlvs.get("message_payload", b"")
        info = _udh_concat(split_udh(data)[0])
    if info is None:
        tlvs = pdu.tlvs
        if "sar_msg_ref_num" in tlvs and "sar_total_segments" in tlvs and "sar_segment_seqnum" in tlvs:
            info = tlvs["sar_msg_ref_num"], tlvs["sar_total_segments"], tlvs["sar_segment_seqnum"]
    if info is None or not 1 <= info[2] <= info[1]:
        return None
    return info


def pdu_text(pdu: Pdu) -> str:
    """The text a submit_sm / deliver_sm / data_sm carries, from short_message or message_payload."""
    data = pdu.fields.get("short_message") or pdu.tlvs.get("message_payload", b"")
    if pdu.fields.get("esm_class", 0) & ESM_UDHI:
        data = split_udh(data)[1]
    return decode_text(pdu.fields.get("data_coding", GSM7), data)


# --- long messages --------------------------------------------------------------------------------


class Part(NamedTuple):
    short_message: bytes
    esm_class: int
    tlvs: dict[str, Any]
    data_coding: int


def _chunks(units: list[bytes], per_part: int, unit_size: int) -> list[bytes]:
    """Greedy packing as segments.segment counts it: a unit (escape or surrogate pair) stays whole."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    used = 0
    for unit in units:
        size = len(unit) // unit_size
        if used + size > per_part:
            chunks.append(b"".join(current))
            current, used = [], 0
        current.append(unit)
        used += size
    chunks.append(b"".join(current))
    return chunks


def split_for_submit(text: str, mode: str = "udh", ref: int = 0, udh16: bool = False) -> list[Part]:
    """The submit_sm parts that carry ``text``.

    ``mode``: ``udh`` (a concatenation header in each short_message, esm_class 0x40; ``ref`` is
    8-bit, or 16-bit with ``udh16``), ``sar`` (sar_* TLVs, ``ref`` 16-bit) or ``payload`` (one
    PDU, the whole text in message_payload). A text that fits one part is one plain part in every
    mode but ``payload``.
    """
    if mode not in ("udh", "sar", "payload"):
        raise ValueError(f"mode must be udh, sar or payload, not {mode!r}")
    coding, chunks, whole = _layout(text, mode, udh16)
    if whole is not None:
        return [whole]
    total = len(chunks)
    if mode == "sar":
        ref &= 0xFFFF
        return [
            Part(chunk, 0, {"sar_msg_ref_num": ref, "sar_total_segments": total, "sar_segment_seqnum": n}, coding)
            for n, chunk in enumerate(chunks, 1)
        ]
    if udh16:
        header = b"\x06\x08\x04" + (ref & 0xFFFF).to_bytes(2, "big")
    else:
        header = b"\x05\x00\x03" + bytes((ref & 0xFF,))
    return [Part(header + bytes((total, seq)) + chunk, ESM_UDHI, {}, coding) for seq, chunk in enumerate(chunks, 1)]


@functools.lru_cache(maxsize=64)
def _layout(text: str, mode: str, udh16: bool) -> tuple[int, tuple[bytes, ...], Part | None]:
    """The coding and the encoded chunks of ``text`` (or its one whole part), which do not
    depend on the concatenation reference: a task sends one text to every number, so it is
    encoded once, not once per number."""
    coding = choose_coding(text)
    if coding == GSM7:
        units = [_GSM[char] for char in text]
        unit_size, single, per_part = 1, 160, 153
    else:
        units = [char.encode("utf-16-be") for char in text]
        unit_size, single, per_part = 2, 70, 67
    if mode == "payload":
        return coding, (), Part(b"", 0, {"message_payload": b"".join(units)}, coding)
    if sum(len(unit) for unit in units) // unit_size <= single:
        return coding, (), Part(b"".join(units), 0, {}, coding)
    if mode == "udh" and udh16:
        per_part -= 1
    chunks = _chunks(units, per_part, unit_size)
    if len(chunks) > 255:
        raise ValueError(f"{len(chunks)} parts: a concatenated message has at most 255")
    return coding, tuple(chunks), None
