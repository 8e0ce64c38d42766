"""Receipt dialects: every preset writes receipts the tolerant parser reads back to the submitted id
(through the right id normalisation) and outcome; third-party readers accept the standard ones."""

from __future__ import annotations

from datetime import datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import smpplib.smpp
from aiosmpplib import protocol as aio

from gateway.wire.smpp import pdu as P
from gateway.wire.smpp import receipts as R

SUBMITTED = datetime(2024, 3, 9, 14, 5, 7)
DONE = datetime(2024, 3, 9, 14, 6, 59)
N = 0x1A2B3C4D0E  # a message number whose hex has letters and whose padding shows

# The id mode an ESME needs per preset (auto covers all but a change of base).
MODES = {
    "standard": "as-is", "hex-ids": "dec-to-hex", "padded-ids": "strip-padding", "upper-hex": "lower",
    "uuid-ids": "lower", "long-dates": "as-is", "seconds-dates": "as-is", "no-sub-dlvrd": "as-is",
    "nonstandard-stat": "as-is", "tlv-only": "as-is", "data-sm": "as-is", "early-receipts": "as-is",
    "resend-until-acked": "as-is",
}
OUTCOMES = {"DELIVERED": "delivered", "UNDELIVERABLE": "failed", "EXPIRED": "failed", "REJECTED": "failed",
            "DELETED": "failed", "ACCEPTED": "pending", "ENROUTE": "pending", "UNKNOWN": "unknown"}


def build(dialect: R.Dialect, stat: str = "DELIVERED", **kw) -> tuple[bytes, dict]:
    return R.build_receipt(
        dialect, message_number=N, submit_time=SUBMITTED, done_time=DONE, stat=stat, err=kw.pop("err", 0),
        text_bytes=b"Your code is 123456, valid 10 min", **kw,
    )


def over_the_wire(dialect: R.Dialect, short_message: bytes, tlvs: dict) -> P.Pdu:
    pdu = R.receipt_pdu(dialect, short_message, tlvs, sequence_number=3, source_addr="447700900123", destination_addr="smslab")
    return P.decode(P.encode(pdu))


def test_every_preset_is_a_valid_documented_dialect():
    assert set(MODES) == set(R.PRESETS)
    for name, (description, settings) in R.PRESETS.items():
        dialect = R.dialect_from(name)
        assert dialect == msgspec.convert(settings, R.Dialect)
        assert "#" in description or "Appendix" in description, name  # names its public source
        assert msgspec.json.decode(msgspec.json.encode(dialect), type=R.Dialect) == dialect


@pytest.mark.parametrize("name", sorted(R.PRESETS))
@pytest.mark.parametrize("stat", sorted(OUTCOMES))
def test_preset_receipts_read_back_to_the_submitted_id_and_outcome(name, stat):
    dialect = R.dialect_from(name)
    short_message, tlvs = build(dialect, stat)
    received = over_the_wire(dialect, short_message, tlvs)
    assert received.command_id == (P.DATA_SM if name == "data-sm" else P.DELIVER_SM)
    assert received.fields["esm_class"] == R.ESM_RECEIPT
    parsed = R.parse_receipt(received.fields.get("short_message", b""), received.tlvs, date_format=dialect.date_format)
    resp_id = R.format_message_id(dialect, N)
    mode = MODES[name]
    assert R.normalise_id(parsed.id, mode) == R.normalise_id(resp_id, mode, from_receipt=False)
    if mode != "dec-to-hex":
        assert R.normalise_id(parsed.id, "auto") == R.normalise_id(resp_id, "auto", from_receipt=False)
    assert parsed.outcome == OUTCOMES[stat]
    if "stat" in dialect.fields:  # the stat word alone, without the message_state TLV, says the same
        assert R.parse_receipt(short_message).outcome == OUTCOMES[stat]
    if "done date" in dialect.fields:
        assert parsed.done_date == DONE.replace(second=DONE.second if dialect.date_format.endswith("ss") else 0)


def test_the_quirks_show_on_the_wire():
    def text(name: str) -> bytes:
        return build(R.dialect_from(name))[0]

    hex_id = format(N, "x")
    assert text("standard").startswith(f"id:{N} sub:001 dlvrd:001 submit date:2403091405 done date:2403091406 stat:DELIVRD err:000 text:Your code is 123456".encode())
    assert R.format_message_id(R.dialect_from("hex-ids"), N) == hex_id and text("hex-ids").startswith(f"id:{N} ".encode())
    assert R.format_message_id(R.dialect_from("padded-ids"), 0xBEEF) == "0000BEEF"
    assert R.receipt_text_id(R.dialect_from("padded-ids"), 0xBEEF) == "BEEF"
    assert text("upper-hex").startswith(f"id:{hex_id.upper()} ".encode())
    assert b"submit date:202403091405 " in text("long-dates")
    assert b"submit date:240309140507 " in text("seconds-dates")
    assert b"sub:" not in text("no-sub-dlvrd") and b"dlvrd:" not in text("no-sub-dlvrd")
    assert b"stat:FAILED" in build(R.dialect_from("nonstandard-stat"), "UNDELIVERABLE")[0]
    assert b" Text:" in text("nonstandard-stat")
    short_message, tlvs = build(R.dialect_from("tlv-only"))
    assert short_message == b""
    assert tlvs == {"receipted_message_id": str(N), "message_state": R.DELIVERED, "network_error_code": b"\x03\x00\x00"}
    data_sm = over_the_wire(R.dialect_from("data-sm"), *build(R.dialect_from("data-sm")))
    assert data_sm.tlvs["message_payload"].startswith(b"id:")
    assert R.dialect_from("early-receipts").receipt_before_resp == 1.0
    assert R.dialect_from("resend-until-acked").resend_unacked_after == 5.0


def test_receipt_details():
    dialect = R.dialect_from({"err_width": 0, "fields": ["id", "stat", "err"], "stat_words": {"DELIVERED": "OK"}})
    assert build(dialect, err=7)[0] == f"id:{N} stat:OK err:7".encode()
    assert build(dialect, "EXPIRED")[0] == f"id:{N} stat:EXPIRED err:0".encode()  # Appendix B word when not overridden
    short_message, tlvs = build(R.dialect_from("standard"), "UNDELIVERABLE", err=21, network_error=0x0102)
    assert b"dlvrd:000" in short_message and b"err:021" in short_message
    assert tlvs["message_state"] == R.UNDELIVERABLE and tlvs["network_error_code"] == b"\x03\x01\x02"
    assert len(short_message.split(b"text:")[1]) == 20
    with pytest.raises(ValueError, match="stat must be one of"):
        build(R.dialect_from("standard"), "DELIVRD")


def test_message_ids_are_deterministic_and_sized_for_smpp():
    for style in ("decimal", "hex", "HEX", "uuid"):
        dialect = R.dialect_from({"message_id": style, "message_id_width": 12})
        ids = {R.format_message_id(dialect, n) for n in range(1000)}
        assert len(ids) == 1000 and R.format_message_id(dialect, 5) == R.format_message_id(dialect, 5)
        assert all(len(i) <= 64 for i in ids)
    assert R.format_message_id(R.dialect_from({"message_id": "decimal", "message_id_width": 6}), 42) == "000042"
    uuid_dialect = R.dialect_from({"message_id": "uuid", "receipt_id": "decimal"})
    assert int(R.receipt_text_id(uuid_dialect, 7)) == int(R.format_message_id(uuid_dialect, 7).replace("-", ""), 16)


def test_dialect_errors_name_the_bad_field():
    cases = {
        "message_id": {"message_id": "base64"},
        "message_id_width": {"message_id_width": -1},
        "date_format": {"date_format": "DDMMYY"},
        "stat_words": {"stat_words": {"DELIVRD": "OK"}},
        "receipt_before_resp": {"receipt_before_resp": 1.5},
        "resend_unacked_after": {"resend_unacked_after": 0},
        "fields": {"fields": ["sub"], "tlvs": False},
        "colour": {"colour": "red"},
    }
    for field, bad in cases.items():
        with pytest.raises(ValueError, match=field):
            R.dialect_from(bad)
    with pytest.raises(ValueError, match="unknown preset"):
        R.dialect_from("jasmin-classic")
    assert R.dialect_from(None) == R.dialect_from("standard") == R.Dialect()


# --- the tolerant parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("id:abc sub:001 dlvrd:001 submit date:2403091405 done date:2403091406 stat:DELIVRD err:000 text:hi",
         {"id": "abc", "outcome": "delivered", "sub": 1, "dlvrd": 1, "err": "000", "text": "hi", "done_date": datetime(2024, 3, 9, 14, 6)}),
        ("ID:abc SUB:1 DLVRD:0 SUBMIT DATE:2403091405 DONE DATE:2403091406 STAT:UNDELIV ERR:021 TEXT:",
         {"id": "abc", "outcome": "failed", "sub": 1, "dlvrd": 0, "err": "021", "text": ""}),
        ("id:1526758174 submit date:1701240904 done date:1701240904 stat:DELIVRD err:000 text:hellow",  # jsmpp #62
         {"id": "1526758174", "sub": None, "dlvrd": None, "submit_date": datetime(2017, 1, 24, 9, 4)}),
        ("id:1216080510463401720 sub:001 dlvrd:001 submit date:1608051046 done date:0000000000 stat:FAILED err:002 Text:",
         {"outcome": "failed", "done_date": None, "stat": "FAILED"}),  # Jasmin #447
        ("id:x submit date:201906190720 done date:201906190720 stat:EXPIRED err:030",  # Jasmin #753
         {"outcome": "failed", "submit_date": datetime(2019, 6, 19, 7, 20)}),
        ("id:a29f sub:001 dlvrd:001 submit date:141023215253 done date:141023215259 stat:DELIVRD err:000 text:",  # Jasmin #70
         {"done_date": datetime(2014, 10, 23, 21, 52, 59)}),
        ("id:x submit_date:20240309140507 done_date:20240309140659 stat:ACCEPTD", {"outcome": "pending", "submit_date": SUBMITTED}),
        ("id:x stat:WHATEVER err:abc text:id:y stat:DELIVRD", {"outcome": "unknown", "err": "abc", "text": "id:y stat:DELIVRD"}),
        ("id:0654354026 submit date:2302101454 done date:2302101454 stat:DELIVRD err:000", {"id": "0654354026"}),
    ],
)
def test_parser_reads_receipts_from_the_field(text, expected):
    parsed = R.parse_receipt(text.encode())
    assert {key: getattr(parsed, key) for key in expected} == expected


def test_parser_prefers_tlvs_and_returns_none_without_an_id():
    parsed = R.parse_receipt(b"id:123 stat:DELIVRD", {"receipted_message_id": "7b", "message_state": R.REJECTED, "network_error_code": b"\x03\x00\x0b"})
    assert (parsed.id, parsed.text_id, parsed.outcome, parsed.network_error) == ("7b", "123", "failed", 11)
    assert R.parse_receipt(b"", {"message_payload": b"id:9 stat:DELIVRD"}).id == "9"
    assert R.parse_receipt("Hello, this is a normal message") is None
    assert R.parse_receipt(b"", {}) is None


receipt_words = st.sampled_from(
    ["id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "text:", " ", "DELIVRD", "²", "0", "9" * 14, ":"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=200), st.lists(receipt_words, max_size=30).map(lambda w: "".join(w).encode())),
       st.fixed_dictionaries({}, optional={"receipted_message_id": st.text(max_size=10), "message_state": st.integers(0, 255),
                                           "network_error_code": st.binary(min_size=3, max_size=3)}))
def test_parser_never_raises(short_message, tlvs):
    parsed = R.parse_receipt(short_message, tlvs)
    assert parsed is None or parsed.outcome in ("delivered", "failed", "pending", "unknown")


def test_a_dialect_hint_settles_12_digit_dates():
    text = b"id:1 submit date:200112101010 done date:200112101011 stat:DELIVRD"
    assert R.parse_receipt(text).submit_date == datetime(2020, 1, 12, 10, 10, 10)
    assert R.parse_receipt(text, date_format="YYYYMMDDhhmm").submit_date == datetime(2001, 12, 10, 10, 10)


def test_normalise_id_modes():
    assert R.normalise_id(" 00AbC\0", "as-is") == "00AbC"
    assert R.normalise_id("00AbC", "lower") == "00abc"
    assert R.normalise_id("00AbC", "strip-padding") == "AbC" and R.normalise_id("000", "strip-padding") == "0"
    assert R.normalise_id("00AbC", "auto") == "abc" == R.normalise_id("abc", "auto", from_receipt=False)
    assert R.normalise_id("ff", "hex-to-dec") == "255" == R.normalise_id("0255", "hex-to-dec", from_receipt=False)
    assert R.normalise_id("255", "dec-to-hex") == "ff" == R.normalise_id("00FF", "dec-to-hex", from_receipt=False)
    assert R.normalise_id("not-a-number", "dec-to-hex") == "not-a-number"
    with pytest.raises(ValueError, match="id mode"):
        R.normalise_id("1", "guess")


# --- third-party readers --------------------------------------------------------------------------


def test_aiosmpplib_parses_standard_receipts():
    dialect = R.dialect_from("standard")
    for stat, word in (("DELIVERED", "DELIVRD"), ("UNDELIVERABLE", "UNDELIV")):
        frame = P.encode(R.receipt_pdu(dialect, *build(dialect, stat, err=5), sequence_number=8,
                                      source_addr="447700900123", destination_addr="12345"))
        header = aio.SmppMessage.parse_header(frame)
        deliver = aio.DeliverSm.from_pdu(frame, header, "gsm0338")
        assert deliver.is_receipt()
        receipt = deliver.parse_receipt()
        assert (receipt["id"], receipt["stat"], receipt["err"]) == (str(N), word, 5)
        assert (receipt["submit date"], receipt["done date"]) == (SUBMITTED.replace(second=0), DONE.replace(second=0))
        assert receipt["text"] == "Your code is 123456,"


def test_smpplib_reads_standard_receipt_pdus():
    """smpplib has no receipt parser; it must at least read the receipt PDU and its TLVs."""
    dialect = R.dialect_from("standard")
    frame = P.encode(R.receipt_pdu(dialect, *build(dialect), sequence_number=8, source_addr="447700900123", destination_addr="12345"))

    class Client:
        sequence = 0

        def next_sequence(self):
            return 1

    deliver = smpplib.smpp.parse_pdu(frame, client=Client())
    assert (deliver.command, deliver.esm_class, deliver.receipted_message_id, deliver.message_state) == ("deliver_sm", 4, str(N).encode(), 2)
    assert deliver.short_message.startswith(f"id:{N} sub:001".encode())


_latin1 = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=22)  # an address read by the codec has no NUL


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(R.PRESETS)), st.sampled_from(list(R.MESSAGE_STATES)), st.integers(0, 70000),
       st.integers(0, 10**15), st.binary(max_size=30), _latin1, _latin1, st.integers(0, 255), st.integers(0, 255),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
       st.lists(st.sampled_from(R.RECEIPT_FIELDS), unique=True), st.sampled_from(["text", "Text", None]))
def test_the_receipt_writer_writes_the_octets_of_the_general_path(preset, stat, err, n, text, source, destination, ton,
                                                                 npi, at, fields, text_field):
    """The SMSC's fast receipt writer against build_receipt → receipt_pdu → encode, for any preset
    (and any choice of text fields), state, error, text, addresses and dates; where the general
    path raises (an address too long for the field), so does the writer."""
    base = R.dialect_from(preset)
    shown = set(fields) if base.tlvs else {"id", *fields}  # without TLVs the text must carry the id
    dialect = msgspec.structs.replace(base, fields=tuple(f for f in R.RECEIPT_FIELDS if f in shown), text_field=text_field)
    writer = R.ReceiptWriter(dialect)
    outcomes = []
    for write in (
        lambda: P.encode(R.receipt_pdu(
            dialect, *R.build_receipt(dialect, message_number=n, submit_time=at, done_time=at, stat=stat, err=err,
                                      text_bytes=text),
            sequence_number=0, source_addr=source, destination_addr=destination, dest_addr_ton=ton,
            dest_addr_npi=npi))[16:],
        lambda: writer.body(message_number=n, submit_time=at, done_time=at, stat=stat, err=err, text_bytes=text,
                            source_addr=source, destination_addr=destination, dest_addr_ton=ton, dest_addr_npi=npi),
    ):
        try:
            outcomes.append(write())
        except ValueError:
            outcomes.append(ValueError)
    assert outcomes[0] == outcomes[1]
    if outcomes[1] is not ValueError:
        assert P.decode(P.frame(writer.command_id, 0, 1, outcomes[1])).command_id == writer.command_id
