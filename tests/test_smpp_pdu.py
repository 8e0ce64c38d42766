"""The SMPP PDU codec: round trips, the same bytes as smpplib, readable by smpplib and aiosmpplib,
the SMPP status for every malformed input, and a fuzz run that only ever yields a Pdu or PduError."""

from __future__ import annotations

import struct

import pytest
import smpplib.consts
import smpplib.smpp
from aiosmpplib import protocol as aio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.wire.smpp import pdu as P
from gateway.wire.smpp.pdu import Pdu, PduError, PduReader, decode, encode, make_pdu, make_resp

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


class _Sequence:
    """smpplib's commands ask their client for a sequence number."""

    sequence = 0

    def next_sequence(self) -> int:
        return 1


def smpplib_parse(frame: bytes):
    return smpplib.smpp.parse_pdu(frame, client=_Sequence())


def smpplib_make(command: str, sequence: int, **fields) -> bytes:
    command_pdu = smpplib.smpp.make_pdu(command, client=_Sequence(), **fields)
    command_pdu.sequence = sequence  # make_pdu ignores a sequence keyword
    return command_pdu.generate()


def aio_parse(frame: bytes):
    header = aio.SmppMessage.parse_header(frame)
    return aio.MESSAGE_TYPE_MAP[header.smpp_command].from_pdu(frame, header, "gsm0338")


SUBMIT = make_pdu(
    "submit_sm", 7, source_addr_ton=5, source_addr="smslab", dest_addr_ton=1, dest_addr_npi=1,
    destination_addr="447700900123", registered_delivery=1, short_message=b"Your code is 123456",
)
RECEIPT_TEXT = b"id:1234567 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Your code"


# --- round trips ----------------------------------------------------------------------------------

SAMPLE_VALUES = {"int": 7, "cstr": "abc", "sm": b"hello\x00world"}


@pytest.mark.parametrize("command_id", sorted(P.COMMAND_FIELDS), ids=lambda c: P.COMMAND_NAMES[c])
def test_every_command_round_trips(command_id):
    values = {name: SAMPLE_VALUES[kind] for name, kind, _ in P.COMMAND_FIELDS[command_id] if kind in SAMPLE_VALUES}
    if command_id == P.SUBMIT_MULTI:
        values["dest_address"] = [
            {"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "447700900123"},
            {"dest_flag": 2, "dl_name": "friends"},
        ]
    if command_id == P.SUBMIT_MULTI_RESP:
        values["unsuccess_sme"] = [
            {"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "1234", "error_status_code": P.ESME_RINVDSTADR}
        ]
    original = make_pdu(command_id, 0x7FFFFFFF, **values)
    frame = encode(original)
    assert struct.unpack(">II", frame[:8]) == (len(frame), command_id)
    assert decode(frame) == original
    assert encode(decode(frame)) == frame


def test_round_trip_keeps_tlvs_and_unknown_tags_byte_for_byte():
    unknown = struct.pack(">HH", 0x1401, 3) + b"\x01\x02\x03"  # a vendor TLV
    frame = encode(SUBMIT) + unknown
    frame = struct.pack(">I", len(frame)) + frame[4:]
    decoded = decode(frame)
    assert decoded.tlvs == {0x1401: b"\x01\x02\x03"}
    assert encode(decoded) == frame
    tlvs = {
        "sar_msg_ref_num": 0xBEEF, "sar_total_segments": 3, "sar_segment_seqnum": 2, "qos_time_to_live": 2**31,
        "receipted_message_id": "abc", "network_error_code": b"\x03\x00\x2a", "message_payload": b"x" * 1000,
        "alert_on_message_delivery": True, "its_session_info": b"\x01\x02", 0x1500: b"",
    }
    with_tlvs = Pdu(P.DELIVER_SM, 0, 1, SUBMIT.fields, tlvs)
    assert decode(encode(with_tlvs)) == with_tlvs


def test_error_response_has_an_empty_body_and_reads_back_empty():
    resp = make_resp(SUBMIT, P.ESME_RTHROTTLED)
    assert encode(resp) == struct.pack(">IIII", 16, P.SUBMIT_SM_RESP, P.ESME_RTHROTTLED, 7)
    assert decode(encode(resp)) == resp == Pdu(P.SUBMIT_SM_RESP, P.ESME_RTHROTTLED, 7)
    ok = make_resp(SUBMIT, message_id="42")
    assert (ok.command_id, ok.sequence_number, ok.fields) == (P.SUBMIT_SM_RESP, 7, {"message_id": "42"})
    assert P.generic_nack(9, P.ESME_RINVCMDID) == Pdu(P.GENERIC_NACK, P.ESME_RINVCMDID, 9)
    assert decode(encode(make_resp(make_pdu("deliver_sm", 3)))).fields == {"message_id": ""}
    failed = make_resp(make_pdu("data_sm", 4), P.ESME_RDELIVERYFAILURE, delivery_failure_reason=1)
    assert decode(encode(failed)) == failed  # TLVs need the body, so the mandatory fields come too


def test_make_pdu_routes_names_and_refuses_unknown_ones():
    pdu = make_pdu("data_sm", 1, esm_class=4, receipted_message_id="9", message_state=2)
    assert pdu.fields["esm_class"] == 4 and pdu.tlvs == {"receipted_message_id": "9", "message_state": 2}
    assert pdu.command == "data_sm" and not pdu.is_response and make_resp(pdu).is_response
    with pytest.raises(ValueError, match="no field or TLV"):
        make_pdu("submit_sm", 1, short_mesage=b"typo")
    with pytest.raises(ValueError, match="has no response"):
        make_resp(make_pdu("outbind"))
    with pytest.raises(ValueError, match="source_addr is longer than 20"):
        encode(make_pdu("submit_sm", 1, source_addr="1" * 21))
    with pytest.raises(ValueError, match="short_message is longer than 254"):
        encode(make_pdu("submit_sm", 1, short_message=b"x" * 255))
    with pytest.raises(ValueError, match="out of range"):
        encode(make_pdu("submit_sm", 1, esm_class=256))
    with pytest.raises(ValueError, match="no field named"):
        encode(Pdu(P.SUBMIT_SM, 0, 1, {"short_mesage": b"typo"}))
    with pytest.raises(ValueError, match="unknown TLV name"):
        encode(Pdu(P.SUBMIT_SM, 0, 1, {}, {"no_such_tlv": 1}))
    with pytest.raises(ValueError, match="no body"):
        encode(Pdu(P.ENQUIRE_LINK, 0, 1, {}, {"message_state": 1}))
    # a NUL would end a C-string early and shift every field after it: the peer would read another PDU
    with pytest.raises(ValueError, match="source_addr contains a NUL"):
        encode(make_pdu("submit_sm", 1, source_addr="12\x0034"))
    with pytest.raises(ValueError, match="TLV receipted_message_id contains a NUL"):
        encode(make_pdu("data_sm", 1, receipted_message_id="ab\x00"))
    with pytest.raises(ValueError, match="destination_addr contains a NUL"):
        encode(make_pdu("submit_multi", 1, dest_address=[{"dest_flag": 1, "destination_addr": "\x00"}]))
    assert decode(encode(make_pdu("submit_sm", 1, short_message=b"\x00@"))).fields["short_message"] == b"\x00@"  # octets: '@' is 0x00 in GSM 03.38


def test_status_names_cover_the_smpp_34_table():
    assert P.status_name(P.ESME_ROK) == "ESME_ROK"
    assert P.status_name(0x58) == "ESME_RTHROTTLED"
    assert P.status_name(0xC2) == "ESME_RINVPARLEN" and P.ESME_RINVTLVLEN == 0xC2
    assert P.status_name(0x401) == "0x00000401"
    assert len(P.STATUS_NAMES) == 48
    assert set(smpplib.consts.DESCRIPTIONS) == set(P.STATUS_NAMES)


# --- the same bytes as smpplib, and readable by smpplib and aiosmpplib ---------------------------


def test_submit_sm_bytes_equal_smpplib():
    theirs = smpplib_make(
        "submit_sm", 7, source_addr_ton=5, source_addr="smslab", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="447700900123", registered_delivery=1, short_message=b"Your code is 123456",
        sar_msg_ref_num=300, sar_total_segments=2, sar_segment_seqnum=1,
    )
    ours = Pdu(SUBMIT.command_id, 0, 7, SUBMIT.fields, {"sar_msg_ref_num": 300, "sar_total_segments": 2, "sar_segment_seqnum": 1})
    assert encode(ours) == theirs
    assert decode(theirs) == ours


def test_deliver_sm_receipt_bytes_equal_smpplib():
    theirs = smpplib_make(
        "deliver_sm", 9, source_addr_ton=1, source_addr_npi=1, source_addr="447700900123", dest_addr_ton=5,
        destination_addr="smslab", esm_class=4, short_message=RECEIPT_TEXT,
        network_error_code=b"\x03\x00\x00", message_state=2, receipted_message_id="1234567",
    )
    ours = make_pdu(
        "deliver_sm", 9, source_addr_ton=1, source_addr_npi=1, source_addr="447700900123", dest_addr_ton=5,
        destination_addr="smslab", esm_class=4, short_message=RECEIPT_TEXT,
        network_error_code=b"\x03\x00\x00", message_state=2, receipted_message_id="1234567",  # smpplib's TLV order
    )
    assert encode(ours) == theirs
    assert decode(theirs) == ours


@pytest.mark.parametrize("command", ["bind_transmitter", "bind_receiver", "bind_transceiver"])
def test_bind_bytes_equal_smpplib(command):
    theirs = smpplib_make(command, 1, system_id="acme", password="secret", system_type="", addr_ton=0, addr_npi=0, address_range="")
    ours = make_pdu(command, 1, system_id="acme", password="secret", interface_version=0x34)
    assert encode(ours) == theirs
    assert decode(theirs) == ours


def test_smpplib_reads_our_pdus():
    submit = smpplib_parse(encode(SUBMIT))
    assert (submit.command, submit.sequence, submit.source_addr, submit.destination_addr) == (
        "submit_sm", 7, b"smslab", b"447700900123"
    )
    assert (submit.short_message, submit.registered_delivery, submit.source_addr_ton) == (b"Your code is 123456", 1, 5)
    resp = smpplib_parse(encode(make_resp(SUBMIT, message_id="abc123")))
    assert (resp.command, resp.sequence, resp.message_id, resp.status) == ("submit_sm_resp", 7, b"abc123", 0)
    nack = smpplib_parse(encode(P.generic_nack(5, P.ESME_RINVCMDID)))
    assert (nack.command, nack.status, nack.sequence) == ("generic_nack", P.ESME_RINVCMDID, 5)
    link = smpplib_parse(encode(make_pdu("enquire_link", 11)))
    assert (link.command, link.sequence) == ("enquire_link", 11)


def test_aiosmpplib_reads_our_pdus_and_we_read_theirs():
    submit = aio_parse(encode(SUBMIT))
    assert (submit.sequence_num, submit.source.number, submit.destination.number) == (7, "smslab", "447700900123")
    assert (submit.short_message, submit.registered_delivery) == ("Your code is 123456", 1)
    resp = aio_parse(encode(make_resp(SUBMIT, message_id="abc123")))
    assert (resp.sequence_num, resp.message_id) == (7, "abc123")
    bind = aio_parse(encode(make_pdu("bind_transceiver", 3, system_id="acme", password="pw", interface_version=0x34)))
    assert (bind.system_id, bind.password, bind.interface_version) == ("acme", "pw", 0x34)

    theirs = aio.SubmitSm(
        sequence_num=12, short_message="hello", source=aio.PhoneNumber("12345"),
        destination=aio.PhoneNumber("447700900123", aio.TON.INTERNATIONAL, aio.NPI.ISDN),
    ).pdu()
    ours = decode(theirs)
    assert (ours.command_id, ours.sequence_number, ours.fields["destination_addr"]) == (P.SUBMIT_SM, 12, "447700900123")
    assert (ours.fields["short_message"], ours.fields["dest_addr_ton"]) == (b"hello", 1)
    assert decode(aio.BindTransceiverResp(sequence_num=3, system_id="smsc", sc_interface_version=0x34).pdu()).tlvs == {
        "sc_interface_version": 0x34
    }


# --- malformed input ------------------------------------------------------------------------------


def frame_of(command_id: int, body: bytes, sequence: int = 5) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def submit_body(**overrides) -> bytes:
    return encode(Pdu(P.SUBMIT_SM, 0, 5, {**SUBMIT.fields, **overrides}))[16:]


@pytest.mark.parametrize(
    "frame, status",
    [
        (b"\x00\x00\x00\x10\x00\x00", P.ESME_RINVCMDLEN),  # shorter than a header
        (struct.pack(">IIII", 17, P.ENQUIRE_LINK, 0, 5), P.ESME_RINVCMDLEN),  # length disagrees
        (frame_of(0x00000077, b""), P.ESME_RINVCMDID),
        (frame_of(P.ENQUIRE_LINK, b"\x00"), P.ESME_RINVCMDLEN),  # enquire_link has no body
        (frame_of(P.SUBMIT_SM, b""), P.ESME_RINVCMDLEN),  # a request needs its body
        (frame_of(P.SUBMIT_SM, submit_body()[:30]), P.ESME_RINVCMDLEN),  # truncated
        (frame_of(P.SUBMIT_SM, b"abc"), P.ESME_RINVCMDLEN),  # no NUL terminator
        (frame_of(P.SUBMIT_SM, submit_body()[:-5]), P.ESME_RINVMSGLEN),  # sm_length past the body
        (frame_of(P.SUBMIT_SM, b"\x00\x00\x00" + b"1" * 21 + b"\x00"), P.ESME_RINVSRCADR),
        (frame_of(P.SUBMIT_SM, b"\x00\x00\x00\x00\x01\x01" + b"1" * 21 + b"\x00"), P.ESME_RINVDSTADR),
        (frame_of(P.BIND_TRANSMITTER, b"x" * 16 + b"\x00"), P.ESME_RINVSYSID),
        (frame_of(P.BIND_TRANSMITTER, b"acme\x00" + b"p" * 9 + b"\x00"), P.ESME_RINVPASWD),
        (frame_of(P.SUBMIT_SM, submit_body() + b"\x02\x0c"), P.ESME_RINVOPTPARSTREAM),
        (frame_of(P.SUBMIT_SM, submit_body() + b"\x02\x0c\x00\x05\x00"), P.ESME_RINVPARLEN),  # runs past
        (frame_of(P.SUBMIT_SM, submit_body() + b"\x02\x0c\x00\x01\x00"), P.ESME_RINVPARLEN),  # int16 of 1
        (frame_of(P.DELIVER_SM, submit_body() + b"\x04\x23\x00\x02\x03\x00"), P.ESME_RINVPARLEN),
        (frame_of(P.SUBMIT_MULTI, b"\x00\x00\x00\x00\x01\x07"), P.ESME_RINVDESTFLAG),
        (frame_of(P.SUBMIT_MULTI, b"\x00\x00\x00\x00\xff"), P.ESME_RINVNUMDESTS),
    ],
)
def test_malformed_pdus_name_the_status_to_answer_with(frame, status):
    with pytest.raises(PduError) as raised:
        decode(frame)
    assert raised.value.status == status
    if len(frame) >= 16:  # the header was read: the answer can go to the right request
        assert raised.value.sequence_number == 5
        assert raised.value.command_id == struct.unpack(">I", frame[4:8])[0]


def test_tolerated_oddities():
    # a C-octet string TLV without its NUL, as some SMSCs send receipted_message_id
    frame = frame_of(P.DELIVER_SM, submit_body() + b"\x00\x1e\x00\x03abc")
    assert decode(frame).tlvs == {"receipted_message_id": "abc"}
    # a successful response without a body (seen for deliver_sm_resp)
    assert decode(frame_of(P.DELIVER_SM_RESP, b"")).fields == {}
    # Latin-1 octets in C-octet strings survive
    assert decode(frame_of(P.SUBMIT_SM, submit_body(source_addr="caf\xe9"))).fields["source_addr"] == "caf\xe9"


def test_reader_cuts_frames_across_any_chunking():
    frames = [encode(SUBMIT), encode(make_pdu("enquire_link", 2)), encode(make_resp(SUBMIT, message_id="x"))]
    stream = b"".join(frames)
    for size in (1, 3, 16, 17, len(stream)):
        reader = PduReader()
        got = []
        for start in range(0, len(stream), size):
            got += reader.feed(stream[start : start + size])
        assert got == frames


@pytest.mark.parametrize("length", [0, 15, 70000])
def test_reader_refuses_a_length_it_cannot_resynchronise_after(length):
    with pytest.raises(PduError) as raised:
        PduReader().feed(struct.pack(">IIII", length, P.SUBMIT_SM, 0, 77))
    assert (raised.value.status, raised.value.sequence_number, raised.value.command_id) == (P.ESME_RINVCMDLEN, 77, P.SUBMIT_SM)
    with pytest.raises(PduError):
        PduReader(max_length=100).feed(struct.pack(">I", 101))


# --- fuzzing --------------------------------------------------------------------------------------

latin1 = st.characters(min_codepoint=1, max_codepoint=255)


def field_strategy(kind: str, size: int):
    if kind == "int":
        return st.integers(0, 2 ** (8 * size) - 1)
    if kind == "cstr":
        return st.text(latin1, max_size=size - 1)
    if kind == "sm":
        return st.binary(max_size=size)
    address = {"dest_addr_ton": st.integers(0, 255), "dest_addr_npi": st.integers(0, 255), "destination_addr": st.text(latin1, max_size=20)}
    if kind == "dests":
        sme = st.fixed_dictionaries({"dest_flag": st.just(1), **address})
        dl = st.fixed_dictionaries({"dest_flag": st.just(2), "dl_name": st.text(latin1, max_size=20)})
        return st.lists(st.one_of(sme, dl), max_size=4)
    return st.lists(st.fixed_dictionaries({**address, "error_status_code": st.integers(0, 2**32 - 1)}), max_size=4)


def tlv_strategy(kind: str, low: int, high: int):
    if kind == "int":
        return st.integers(0, 2 ** (8 * low) - 1)
    if kind == "cstr":
        return st.text(latin1, max_size=high - 1)
    if kind == "flag":
        return st.just(True)
    return st.binary(min_size=low, max_size=min(high, 300))


KNOWN_TLVS = st.lists(st.sampled_from(sorted(P.TLV_TYPES)), max_size=5, unique=True).flatmap(
    lambda tags: st.fixed_dictionaries({P.TLV_TYPES[tag][0]: tlv_strategy(*P.TLV_TYPES[tag][1:]) for tag in tags})
)
UNKNOWN_TLVS = st.dictionaries(
    st.integers(0, 0xFFFF).filter(lambda tag: tag not in P.TLV_TYPES), st.binary(max_size=20), max_size=2
)


@st.composite
def pdus(draw):
    command_id = draw(st.sampled_from(sorted(P.COMMAND_FIELDS)))
    table = P.COMMAND_FIELDS[command_id]
    fields = draw(st.fixed_dictionaries({name: field_strategy(kind, size) for name, kind, size in table}))
    tlvs = {} if command_id in P._BODYLESS else {**draw(KNOWN_TLVS), **draw(UNKNOWN_TLVS)}
    return Pdu(command_id, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), fields, tlvs)


@FUZZ
@given(pdus())
def test_generated_pdus_round_trip(pdu):
    assert decode(encode(pdu)) == pdu


@st.composite
def pdus_with_a_nul(draw):
    """A PDU with a NUL put into one of its C-strings (a field, or a C-string TLV)."""
    pdu = draw(pdus())
    fields = {name for name, kind, _ in P.COMMAND_FIELDS[pdu.command_id] if kind == "cstr"}
    tlvs = {name for name in pdu.tlvs if isinstance(name, str) and P.TLV_TYPES[P.TLV_TAGS[name]][1] == "cstr"}
    places = sorted(fields) + [f"tlv:{name}" for name in sorted(tlvs)]
    assume(places)  # a PDU with no C-string at all has nowhere to put one
    place = draw(st.sampled_from(places))
    target = pdu.tlvs if place.startswith("tlv:") else pdu.fields
    name = place.removeprefix("tlv:")
    value = target[name] or "x"  # a character becomes the NUL, so the length stays within the field's
    at = draw(st.integers(0, len(value) - 1))
    target[name] = value[:at] + "\0" + value[at + 1:]
    return pdu


@FUZZ
@given(pdus_with_a_nul())
def test_a_nul_inside_a_c_string_is_refused_not_written(pdu):
    with pytest.raises(ValueError, match="contains a NUL"):
        encode(pdu)


def decode_or_error(frame: bytes) -> None:
    try:
        assert isinstance(decode(frame), Pdu)
    except PduError as error:
        assert error.status in P.STATUS_NAMES


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_to_a_pdu_or_a_pdu_error(data):
    decode_or_error(data)
    decode_or_error(struct.pack(">I", len(data) + 4) + data)  # a plausible length in front


@FUZZ
@given(pdus(), st.data())
def test_mutated_pdus_decode_to_a_pdu_or_a_pdu_error(pdu, data):
    frame = bytearray(encode(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(4, max(4, len(frame) - 1)))
        if action == "flip" and at < len(frame):
            frame[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del frame[at : at + data.draw(st.integers(1, 8))]
        else:
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    frame[:4] = struct.pack(">I", len(frame))  # keep the length honest so the body gets parsed
    decode_or_error(bytes(frame))


@FUZZ
@given(st.lists(st.one_of(pdus().map(encode), st.binary(max_size=40)), max_size=5), st.integers(1, 64))
def test_reader_on_any_stream_gives_frames_or_a_pdu_error(pieces, chunk):
    stream = b"".join(pieces)
    reader = PduReader(max_length=4096)
    try:
        for start in range(0, len(stream), chunk):
            for frame in reader.feed(stream[start : start + chunk]):
                decode_or_error(frame)
    except PduError as error:
        assert error.status == P.ESME_RINVCMDLEN
