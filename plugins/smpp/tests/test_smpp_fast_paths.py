"""The hand-made shortcuts of the submission pump, each against the codec it stands in for:
a template-built ``submit_sm`` is byte for byte the codec's encoding of the same fields, a
prebuilt ``deliver_sm_resp`` is ``make_resp``'s, a ``submit_sm_resp`` read without the codec
gives the codec's message_id, a delivered receipt read from its TLVs alone is what the full
parse would have made of it; and the window's timeouts, throttling and losses on a session
with a fake transport."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from gateway.platform import SubmitItem
from gateway.wire.smpp import pdu as P
from gateway.wire.smpp import receipts as R
from smslab_smpp.esme import EsmeSession, Waiter, ack_bytes
from smslab_smpp.platform import SmppPlatform, _Batch, delivered_receipt, read_receipt
from smslab_smpp.settings import Settings

GSM_TEXT = st.text(alphabet="abcXYZ 0123456789@£$¥èéùìòÇØøÅå_^{}\\[~]|€!\"#%&'()*+,-./:;<=>?", max_size=200)
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)
NUMBERS = st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True)


def _platform(**params) -> SmppPlatform:
    query = "&".join(f"{k}={v}" for k, v in {"binds": 1, "window": 10, **params}.items())
    return SmppPlatform(Settings.from_url(f"smpp://gw:pw@127.0.0.1:2775?{query}"))


@hsettings(max_examples=300, deadline=None)
@given(text=st.one_of(GSM_TEXT, ANY_TEXT), numbers=st.lists(NUMBERS, min_size=1, max_size=4),
       long=st.sampled_from(["udh", "sar", "payload"]), udh16=st.booleans(), registered=st.integers(0, 2),
       source=st.sampled_from(["smslab", "+8613800000000", "Shop", "12345"]))
def test_template_built_submit_sm_is_the_codecs_encoding(text, numbers, long, udh16, registered, source):
    """Whatever the text, mode and sender: each part's body is what the codec writes for the
    same fields, under the same concatenation reference, and the numbers take consecutive ones."""
    p = _platform(long=long, udh16=str(udh16).lower(), registered_delivery=registered, source=source.replace("+", "%2B"))
    items = [SubmitItem(f"k{i}", 1, number, text, 1) for i, number in enumerate(numbers)]
    for _ in range(2):  # the second time from the template kept
        start = p._ref
        parts = p._parts(items, _Batch(None, None))  # type: ignore[arg-type]
        expected = []
        for offset, item in enumerate(items, 1):
            p._ref = start + offset  # _pdus numbers its parts with the reference _parts set for it
            expected += [P.encode(pdu)[16:] for pdu in p._pdus(item)]
        assert [part.body for part in parts] == expected
        assert all(P.decode(P._HEADER.pack(16 + len(b), P.SUBMIT_SM, 0, 1) + b).command_id == P.SUBMIT_SM for b in expected)


def test_a_destination_the_codec_refuses_is_refused_the_same():
    p = _platform()
    with pytest.raises(ValueError):
        p._parts([SubmitItem("k", 1, "1" * 21, "hello", 1)], _Batch(None, None))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        P.encode(p._pdus(SubmitItem("k", 1, "1" * 21, "hello", 1))[0])


@given(status=st.sampled_from([0, P.ESME_RX_T_APPN, P.ESME_RSYSERR]), seq=st.integers(1, 0x7FFFFFFF),
       command=st.sampled_from([P.DELIVER_SM, P.DATA_SM]))
def test_prebuilt_receipt_answer_is_make_resp(status, seq, command):
    request = P.make_pdu(command, seq)
    assert ack_bytes(command, status, seq) == P.encode(P.make_resp(request, status, message_id=""))


class _Transport:
    def __init__(self):
        self.written = bytearray()
        self.closed = False

    def write(self, data):
        self.written += data

    def get_extra_info(self, name, default=None):
        return default

    def close(self):
        self.closed = True

    abort = close


class _Part(Waiter):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _session(timeout=30.0, window=10):
    answers, expired, lost = [], [], []
    settings = Settings.from_url(f"smpp://gw:pw@127.0.0.1:2775?window={window}&timeout={timeout}")
    session = EsmeSession(settings, "trx", 0, lambda s, pdu: None, lambda: None,
                          lambda w, status, mid: answers.append((w.name, status, mid)),
                          expired.append, lost.extend, lambda: None)
    session.connection_made(_Transport())
    session.state = "bound"
    return session, answers, expired, lost


def _sent_sequences(session) -> list[int]:
    reader = P.PduReader()
    return [P._HEADER.unpack_from(frame)[3] for frame in reader.feed(bytes(session.transport.written))]


@hsettings(max_examples=100, deadline=None)
@given(message_ids=st.lists(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=64), min_size=1, max_size=5),
       status=st.sampled_from([0, P.ESME_RTHROTTLED, P.ESME_RINVDSTADR]), tlv=st.booleans())
def test_submit_sm_resp_read_without_the_codec(message_ids, status, tlv):
    """The message_id as the codec reads it, a TLV after it or not (the codec then reads it)."""
    async def main():
        session, answers, _, _ = _session()
        now = asyncio.get_running_loop().time()
        for index in range(len(message_ids)):
            session.send_submit(_Part(index), b"body", now)
        session._flush()
        sequences = _sent_sequences(session)
        frames = []
        for seq, message_id in zip(sequences, message_ids):
            resp = P.make_pdu(P.SUBMIT_SM_RESP, seq, status, message_id=message_id,
                              **({"additional_status_info_text": "x"} if tlv else {}))
            frames.append(P.encode(resp))
        frames.append(P.encode(P.Pdu(P.SUBMIT_SM_RESP, P.ESME_RSYSERR, 999_999)))  # nobody waits for it
        session.data_received(b"".join(frames))
        want = [(i, status, P.decode(f).fields.get("message_id", "")) for i, f in enumerate(frames[:-1])]
        assert answers == want
        assert not session.inflight

    asyncio.run(main())


def test_empty_error_response_and_generic_nack_reach_the_part():
    async def main():
        session, answers, _, _ = _session()
        now = asyncio.get_running_loop().time()
        session.send_submit(_Part("a"), b"body", now)
        session.send_submit(_Part("b"), b"body", now)
        session._flush()
        first, second = _sent_sequences(session)
        session.data_received(P.encode(P.Pdu(P.SUBMIT_SM_RESP, P.ESME_RMSGQFUL, first)) +
                              P.encode(P.generic_nack(second, P.ESME_RTHROTTLED)))
        assert answers == [("a", P.ESME_RMSGQFUL, ""), ("b", P.ESME_RTHROTTLED, "")]

    asyncio.run(main())


def test_unanswered_parts_expire_and_a_lost_session_hands_back_the_rest():
    async def main():
        session, answers, expired, lost = _session(timeout=0.2)
        loop = asyncio.get_running_loop()
        session.send_submit(_Part("old"), b"body", loop.time())
        await asyncio.sleep(0.1)
        session.send_submit(_Part("answered"), b"body", loop.time())
        session.send_submit(_Part("young"), b"body", loop.time())
        session._flush()
        _old, answered, _young = _sent_sequences(session)
        session.data_received(P.encode(P.make_pdu(P.SUBMIT_SM_RESP, answered, message_id="7")))
        await asyncio.sleep(0.15)
        assert [w.name for w in expired] == ["old"] and [a[0] for a in answers] == ["answered"]
        await asyncio.sleep(0.1)
        assert [w.name for w in expired] == ["old", "young"]
        session.send_submit(_Part("in flight"), b"body", loop.time())
        session.connection_lost(None)
        assert [w.name for w in lost] == ["in flight"] and not session.inflight

    asyncio.run(main())


def test_a_request_waiting_for_the_window_goes_before_the_pump():
    """A full window: an enquire_link waits for a slot, and the room the pump may fill leaves
    that slot to it."""
    async def main():
        session, _, _, _ = _session(window=2)
        loop = asyncio.get_running_loop()
        session.send_submit(_Part("a"), b"body", loop.time())
        session.send_submit(_Part("b"), b"body", loop.time())
        request = asyncio.ensure_future(session.request(P.make_pdu(P.ENQUIRE_LINK)))
        await asyncio.sleep(0)
        assert session.room == -1
        session._flush()
        first, _ = _sent_sequences(session)
        session.data_received(P.encode(P.make_pdu(P.SUBMIT_SM_RESP, first, message_id="1")))
        assert session.room == 0  # the freed slot is the request's
        await asyncio.sleep(0)
        session._flush()
        enquire = _sent_sequences(session)[-1]
        session.data_received(P.encode(P.Pdu(P.ENQUIRE_LINK_RESP, 0, enquire)))
        assert (await request).command_id == P.ENQUIRE_LINK_RESP
        assert session.room == 1

    asyncio.run(main())


STATES = ["DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED", "ACCEPTED", "ENROUTE", "UNKNOWN", "DELETED"]


@pytest.mark.parametrize("preset", list(R.PRESETS))
@pytest.mark.parametrize("stat", STATES)
def test_receipt_read_as_the_full_parse_reads_it(preset, stat):
    """For every dialect and state: the same id, outcome and state; and a receipt not read from
    its TLVs alone is the full parse exactly (dates aside)."""
    dialect = R.dialect_from(preset)
    at = datetime.datetime(2026, 12, 1, 3, 30)
    text, tlvs = R.build_receipt(dialect, message_number=123456, submit_time=at, done_time=at, stat=stat, err=5,
                                 text_bytes=b"Spring sale")
    pdu = P.decode(P.encode(R.receipt_pdu(dialect, text, tlvs, sequence_number=9, source_addr="8613800000001",
                                          destination_addr="Shop")))
    full = R.parse_receipt(pdu.fields.get("short_message", b""), pdu.tlvs)
    quick = read_receipt(pdu)
    assert (quick.id, quick.outcome, quick.state) == (full.id, full.outcome, full.state)
    if quick.stat is not None or quick.outcome != "delivered":
        assert quick == R.parse_receipt(pdu.fields.get("short_message", b""), pdu.tlvs, dates=False)
    assert R.parse_receipt(text, tlvs, dates=False).submit_date is None


def _receipt_frame(preset: str, stat: str, source: str = "8613800000001") -> bytes:
    dialect = R.dialect_from(preset)
    at = datetime.datetime(2026, 12, 1, 3, 30)
    text, tlvs = R.build_receipt(dialect, message_number=123456, submit_time=at, done_time=at, stat=stat, err=5,
                                 text_bytes=b"Spring sale")
    return P.encode(R.receipt_pdu(dialect, text, tlvs, sequence_number=9, source_addr=source, destination_addr="Shop"))


def _by_codec(frame: bytes):
    """What the long way makes of a frame: (source, destination, id) of a delivered receipt."""
    try:
        pdu = P.decode(frame)
    except P.PduError:
        return None
    if pdu.command_id != P.DELIVER_SM or not pdu.fields.get("esm_class", 0) & 0x3C:
        return None
    parsed = read_receipt(pdu)
    if parsed is None or parsed.outcome != "delivered" or parsed.stat is not None:
        return None  # delivered by its text only: the long way's business
    return pdu.fields["source_addr"], pdu.fields["destination_addr"], pdu.tlvs["receipted_message_id"]


@pytest.mark.parametrize("preset", list(R.PRESETS))
@pytest.mark.parametrize("stat", STATES)
def test_delivered_receipt_read_from_the_frame(preset, stat):
    frame = _receipt_frame(preset, stat)
    quick = delivered_receipt(frame)
    assert quick == _by_codec(frame)
    if R.dialect_from(preset).tlvs and R.dialect_from(preset).receipt_pdu == "deliver_sm" and stat == "DELIVERED":
        assert quick == ("8613800000001", "Shop", R.format_message_id(R.dialect_from(preset), 123456))


@hsettings(max_examples=400, deadline=None)
@given(data=st.data(), preset=st.sampled_from(["standard", "long-dates", "no-sub-dlvrd", "tlv-only"]))
def test_a_damaged_receipt_is_read_as_the_codec_reads_it(data, preset):
    """Cut short, bytes changed, a TLV added: whatever the frame, the shortcut either gives what
    the codec gives, or leaves the frame to the codec."""
    frame = bytearray(_receipt_frame(preset, "DELIVERED"))
    for _ in range(data.draw(st.integers(0, 3))):
        where = data.draw(st.integers(16, len(frame) - 1))
        frame[where] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        frame += data.draw(st.binary(max_size=12))
    cut = data.draw(st.integers(16, len(frame)))
    frame = frame[:cut]
    frame[0:4] = len(frame).to_bytes(4, "big")
    frame = bytes(frame)
    quick = delivered_receipt(frame)
    if quick is not None:
        assert quick == _by_codec(frame)


def test_answers_of_a_read_go_first_and_the_window_is_written_at_once():
    """A read with a receipt before an answer: the answer is taken first and the refilled window
    is on the wire before the receipt is looked at; the receipt then still comes in order with
    the other requests."""
    events = []

    async def main():
        session, answers, _, _ = _session()
        session.on_request = lambda s, pdu: events.append(("request", pdu.sequence_number, len(s.transport.written)))
        session.on_deliver = lambda s, frame, seq: False
        session.on_room = lambda: (events.append(("room", len(session.transport.written))),
                                   session.send_submit(_Part("next"), b"body", asyncio.get_running_loop().time()))
        session.send_submit(_Part("a"), b"body", asyncio.get_running_loop().time())
        session._flush()
        (seq,) = _sent_sequences(session)
        receipt = P.encode(R.receipt_pdu(R.dialect_from("standard"), b"id:1 stat:DELIVRD", {}, sequence_number=41,
                                         source_addr="1", destination_addr="2"))
        mo = P.encode(P.make_pdu(P.DELIVER_SM, 42, source_addr="1", short_message=b"hi"))
        session.data_received(receipt + P.encode(P.make_pdu(P.SUBMIT_SM_RESP, seq, message_id="9")) + mo)
        assert answers == [("a", 0, "9")]
        written_after_refill = events[1][2]
        assert events[0][0] == "room" and [e[:2] for e in events[1:]] == [("request", 41), ("request", 42)]
        assert len(_sent_sequences(session)) == 2 and written_after_refill > events[0][1]

    asyncio.run(main())
