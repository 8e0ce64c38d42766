"""Text on the SMPP wire: codings, tolerant decoding, and long messages split into exactly the parts
smslab bills (gateway.domain.segments), with escape and surrogate pairs kept whole."""

from __future__ import annotations

import gsm0338  # noqa: F401
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smpplib import gsm as smpplib_gsm

from gateway.domain.segments import segment
from gateway.wire.smpp import pdu as P
from gateway.wire.smpp import text as T

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà"
GSM_EXTENSION = "^{}\\[~]|€\f"
# U+001B is left out: gsm0338 maps it to the escape septet itself, which no handset shows as text.
texts = st.text(
    st.one_of(
        st.sampled_from(GSM_BASIC), st.sampled_from(GSM_EXTENSION), st.sampled_from("😀👍🏽🇬🇧中文字한국어ñçЖ"),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x1b"),
    ),
    max_size=700,
)


# --- codings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "coding, text, data",
    [
        (T.GSM7, "Hi €5 {ok}", b"Hi \x1be5 \x1b(ok\x1b)"),
        (T.IA5, "plain ascii", b"plain ascii"),
        (T.LATIN1, "café", b"caf\xe9"),
        (T.UCS2, "Привет 😀", "Привет 😀".encode("utf-16-be")),
    ],
)
def test_codings_round_trip(coding, text, data):
    assert T.encode_text(text, coding) == data
    assert T.decode_text(coding, data) == text


def test_encoding_refuses_what_a_coding_cannot_carry():
    with pytest.raises(UnicodeEncodeError):
        T.encode_text("中", T.GSM7)
    with pytest.raises(ValueError, match="no text encoding"):
        T.encode_text("x", T.BINARY)


@pytest.mark.parametrize(
    "coding, data, text",
    [
        (T.GSM7, b"ok\x1b", "ok\ufffd"),  # a dangling escape
        (T.GSM7, b"ok\x1b\x1b", "ok\ufffd"),  # escape escape: no such character, and nothing dangles
        (T.GSM7, b"\x80", "\ufffd"),
        (T.IA5, b"a\xffb", "a\ufffdb"),
        (T.UCS2, b"\x00a\x00", "a\ufffd"),  # odd length
        (T.UCS2, b"\xd8\x3d", "\ufffd"),  # lone surrogate
        (0xF1, b"abc", "abc"),  # GSM data-coding group, 7-bit
        (0xF6, b"\xe9", "\xe9"),  # GSM data-coding group, 8-bit
        (0x42, b"\xe9", "\xe9"),  # unknown coding: Latin-1
    ],
)
def test_decoding_is_tolerant(coding, data, text):
    assert T.decode_text(coding, data) == text


@FUZZ
@given(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0E, 0xF0, 0xF4, 0xFF]), st.binary(max_size=300))
def test_decoding_never_raises(coding, data):
    assert isinstance(T.decode_text(coding, data), str)


def test_gsm_table_is_the_gsm0338_codec():
    for code_point in list(range(0x3000)) + [0x20AC, 0x1F600]:
        char = chr(code_point)
        try:
            expected = char.encode("gsm03.38")
        except UnicodeEncodeError:
            expected = None
        assert T._GSM.get(char) == expected, char


@FUZZ
@given(texts)
def test_choose_coding_agrees_with_segments(text):
    assert T.choose_coding(text) == (T.GSM7 if segment(text).encoding == "GSM-7" else T.UCS2)


# --- long messages --------------------------------------------------------------------------------


def reassemble(parts: list[T.Part]) -> str:
    text = ""
    for part in parts:
        data = part.short_message or part.tlvs.get("message_payload", b"")
        if part.esm_class & T.ESM_UDHI:
            data = T.split_udh(data)[1]
        text += T.decode_text(part.data_coding, data)
    return text


def user_data(part: T.Part) -> bytes:
    return T.split_udh(part.short_message)[1] if part.esm_class & T.ESM_UDHI else part.short_message


@FUZZ
@given(texts, st.sampled_from(["udh", "sar"]), st.integers(0, 0xFFFF))
def test_parts_are_what_smslab_bills(text, mode, ref):
    parts = T.split_for_submit(text, mode, ref=ref)
    billed = segment(text)
    assert len(parts) == billed.parts
    assert reassemble(parts) == text
    single, per_part = (160, 153) if billed.encoding == "GSM-7" else (140, 134)
    for seq, part in enumerate(parts, 1):
        data = user_data(part)
        assert len(data) <= (single if len(parts) == 1 else per_part)
        assert T.decode_text(part.data_coding, data) == data.decode(
            "gsm03.38" if part.data_coding == T.GSM7 else "utf-16-be"
        )  # strict decoding of each part alone: no escape or surrogate pair was split
        assert not (part.data_coding == T.GSM7 and data.endswith(b"\x1b"))  # gsm0338 would drop it silently
        if len(parts) > 1:
            pdu = P.make_pdu("submit_sm", 1, esm_class=part.esm_class, short_message=part.short_message, **part.tlvs)
            expected_ref = ref & 0xFF if mode == "udh" else ref
            assert T.concat_info(P.decode(P.encode(pdu))) == (expected_ref, len(parts), seq)


@FUZZ
@given(texts, st.integers(0, 0xFFFF))
def test_16_bit_udh_parts_fit_one_octet_less(text, ref):
    parts = T.split_for_submit(text, "udh", ref=ref, udh16=True)
    assert reassemble(parts) == text
    assert len(parts) >= segment(text).parts
    if len(parts) > 1:
        gsm = parts[0].data_coding == T.GSM7
        for seq, part in enumerate(parts, 1):
            assert part.short_message[:5] == b"\x06\x08\x04" + ref.to_bytes(2, "big")
            assert len(user_data(part)) <= (152 if gsm else 132)
            pdu = P.make_pdu("submit_sm", 1, esm_class=part.esm_class, short_message=part.short_message)
            assert T.concat_info(pdu) == (ref, len(parts), seq)


def test_payload_mode_is_one_pdu_with_the_whole_text():
    (part,) = T.split_for_submit("x" * 500, "payload")
    assert part == T.Part(b"", 0, {"message_payload": b"x" * 500}, T.GSM7)


def test_escape_pairs_and_surrogates_stay_whole_at_the_boundary():
    gsm = T.split_for_submit("a" * 152 + "€" + "b" * 10, "udh", ref=1)
    assert [len(user_data(part)) for part in gsm] == [152, 12]  # € would have been septets 153-154
    ucs2 = T.split_for_submit("中" * 66 + "😀" + "x" * 10, "sar", ref=1)
    assert [len(part.short_message) for part in ucs2] == [132, 24]


def test_udh_parts_match_smpplib_for_plain_text():
    for text, coding in (("hello world " * 30, T.GSM7), ("привет мир " * 20, T.UCS2)):
        ours = T.split_for_submit(text, "udh", ref=0)
        theirs, their_coding, esm_class = smpplib_gsm.make_parts(text, coding)
        assert (their_coding, esm_class) == (coding, T.ESM_UDHI)
        assert [part.short_message[6:] for part in ours] == [part[6:] for part in theirs]
        assert [part.short_message[:3] + part.short_message[4:6] for part in ours] == [p[:3] + p[4:6] for p in theirs]


def test_mode_must_be_known():
    with pytest.raises(ValueError, match="mode"):
        T.split_for_submit("x", "smoke-signals")


# --- reading received parts -----------------------------------------------------------------------


def test_concat_info_reads_udh_and_sar_and_rejects_nonsense():
    udh8 = P.make_pdu("deliver_sm", 1, esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x03\x02hi")
    udh16 = P.make_pdu("deliver_sm", 1, esm_class=0x40, short_message=b"\x06\x08\x04\x01\x02\x03\x01hi")
    # a port-addressing IE before the concatenation IE
    ports = P.make_pdu("deliver_sm", 1, esm_class=0x40, short_message=b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x02hi")
    sar = P.make_pdu("submit_sm", 1, sar_msg_ref_num=513, sar_total_segments=4, sar_segment_seqnum=4)
    assert [T.concat_info(p) for p in (udh8, udh16, ports, sar)] == [(42, 3, 2), (258, 3, 1), (7, 2, 2), (513, 4, 4)]
    no_udhi = P.make_pdu("deliver_sm", 1, short_message=b"\x05\x00\x03\x2a\x03\x02hi")
    zero_part = P.make_pdu("deliver_sm", 1, esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x03\x00hi")
    beyond = P.make_pdu("submit_sm", 1, sar_msg_ref_num=1, sar_total_segments=2, sar_segment_seqnum=3)
    truncated = P.make_pdu("deliver_sm", 1, esm_class=0x40, short_message=b"\x05\x00\x03\x2a")
    assert [T.concat_info(p) for p in (no_udhi, zero_part, beyond, truncated)] == [None] * 4


def test_pdu_text_strips_the_udh_and_reads_message_payload():
    udh = P.make_pdu("deliver_sm", 1, esm_class=0x40, data_coding=8, short_message=b"\x05\x00\x03\x01\x02\x01" + "Ж".encode("utf-16-be"))
    payload = P.make_pdu("data_sm", 1, message_payload="STOP €".encode("gsm03.38"))
    assert (T.pdu_text(udh), T.pdu_text(payload)) == ("Ж", "STOP €")
