"""The SMSC (``smslab carrier --smpp-port``) from outside, as a gateway meets it: binds and their
statuses, requests before a bind, garbage, throttling and outages, magic numbers, receipts that
wait for a receiver, registered_delivery, resends until acknowledged, early receipts, MO
messages, query/cancel, the journal, accounts, TLS, session chaos, a restart, and the same seed
giving the same outcomes twice. The raw client is smslab's own codec; tests/test_smsc_interop.py
uses smpplib and aiosmpplib."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.wire.smpp import pdu as P
from gateway.wire.smpp.receipts import parse_receipt
from tests.smsc_support import TOKEN, Carrier, Esme

ALL_DELIVERED = {"outcomes": {"delivered": 1, "failed": 0, "missing": 0}, "receipt_delay": {"kind": "fixed", "seconds": 5},
                 "moderation": {"review_seconds": 0}, "duplicate_rate": 0}


@pytest.fixture(scope="module")
def carrier(tmp_path_factory):
    c = Carrier(tmp_path_factory.mktemp("smsc"))
    c.profile(**ALL_DELIVERED)
    yield c
    c.stop()


@pytest.fixture
def esme(carrier):
    clients: list[Esme] = []

    def connect(**kw) -> Esme:
        client = Esme(carrier.smpp_port, **kw)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


_n = [0]


def fresh_account(carrier: Carrier, **fields) -> str:
    """An account of its own per test: receipts and counts do not mix."""
    _n[0] += 1
    name = f"acct{_n[0]}"
    carrier.account(name, "pw", **fields)
    return name


def test_binds_and_their_statuses(carrier, esme):
    assert esme().bind("nobody", "x").command_status == P.ESME_RINVSYSID
    assert esme().bind("test", "wrong").command_status == P.ESME_RINVPASWD
    ok = esme()
    resp = ok.bind("test", "secret", "bind_transmitter")
    assert resp.command_status == P.ESME_ROK and resp.fields["system_id"] == "smslab"
    assert ok.bind("test", "secret").command_status == P.ESME_RALYBND  # one bind per connection
    name = fresh_account(carrier, max_binds=2)
    first, second, third = esme(), esme(), esme()
    assert first.bind(name, "pw", "bind_receiver").command_status == P.ESME_ROK
    assert second.bind(name, "pw").command_status == P.ESME_ROK
    assert third.bind(name, "pw").command_status == P.ESME_RBINDFAIL


def test_requests_before_a_bind_unknown_commands_and_bad_lengths(carrier, esme):
    client = esme()
    client.send("submit_sm", destination_addr="8613800138000", short_message=b"x")
    resp = client.read()
    assert resp.command_id == P.SUBMIT_SM_RESP and resp.command_status == P.ESME_RINVBNDSTS
    client.bind()
    client.send_raw(struct.pack(">IIII", 16, 0x00000777, 0, 41))  # a command id SMPP 3.4 has not
    nack = client.read()
    assert (nack.command_id, nack.command_status, nack.sequence_number) == (P.GENERIC_NACK, P.ESME_RINVCMDID, 41)
    client.send("enquire_link")  # the session goes on
    assert client.expect(P.ENQUIRE_LINK_RESP).command_status == P.ESME_ROK
    client.send_raw(struct.pack(">IIII", 8, P.SUBMIT_SM, 0, 42))  # a command_length under 16
    nack = client.read()
    assert nack.command_id == P.GENERIC_NACK and nack.command_status == P.ESME_RINVCMDLEN
    assert client.read(timeout=2) is None  # the stream cannot be re-synchronised: closed
    # a truncated submit_sm (no NUL where its strings end) gets its own response with a status
    other = esme()
    other.bind()
    body = b"\x00" + b"\x01\x01" + b"A" * 30
    other.send_raw(struct.pack(">IIII", 16 + len(body), P.SUBMIT_SM, 0, 7) + body)
    resp = other.read()
    assert resp.command_id == P.SUBMIT_SM_RESP and resp.command_status != P.ESME_ROK
    assert other.submit("+8613800138000").command_status == P.ESME_ROK


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=300))
def test_garbage_never_takes_the_smsc_down(carrier, garbage):
    with socket.create_connection(("127.0.0.1", carrier.smpp_port), timeout=5) as sock:
        sock.sendall(garbage)
        sock.settimeout(0.2)
        try:
            while sock.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    client = Esme(carrier.smpp_port)
    try:
        assert client.bind().command_status == P.ESME_ROK
    finally:
        client.close()


def test_destinations_throttling_and_outages(carrier, esme):
    name = fresh_account(carrier, throughput_limit=3)
    client = esme()
    client.bind(name, "pw")
    assert client.submit("not-a-number").command_status == P.ESME_RINVDSTADR
    statuses = [client.submit(f"+86138001380{i:02d}").command_status for i in range(6)]
    assert statuses[:3] == [P.ESME_ROK] * 3 and P.ESME_RTHROTTLED in statuses[3:]
    carrier.api("PATCH", f"/accounts/{name}", {"throughput_limit": 1000})
    carrier.profile(**ALL_DELIVERED, outages=[{"start": 0, "end": 60, "kind": "submit"}])
    try:
        assert client.submit("+8613800138099").command_status == P.ESME_RSYSERR
    finally:
        carrier.profile(**ALL_DELIVERED)
    assert client.submit("+8613800138099").command_status == P.ESME_ROK


def test_magic_numbers_force_statuses_silence_and_slowness(carrier, esme):
    client = esme()
    client.bind(fresh_account(carrier), "pw")
    assert client.submit("+15005550101").command_status == P.ESME_RSYSERR
    assert client.submit("+15005550103").command_status == P.ESME_RINVDSTADR
    assert client.submit("+15005550104").command_status == P.ESME_RMSGQFUL
    client.send("submit_sm", destination_addr="15005550111", dest_addr_ton=1, short_message=b"x", registered_delivery=1)
    assert client.read(timeout=1.5) is None  # never answered
    started = time.monotonic()
    client.send("submit_sm", destination_addr="15005550112", dest_addr_ton=1, short_message=b"x", registered_delivery=1)
    slow = client.expect(P.SUBMIT_SM_RESP, timeout=15)
    assert slow.command_status == P.ESME_ROK and time.monotonic() - started >= 4.5
    assert client.submit("+15005550001").command_status == P.ESME_RINVDSTADR  # refused at submission (Twilio 21211)


def test_receipts_wait_for_a_receiver_and_follow_registered_delivery(carrier, esme):
    name = fresh_account(carrier)
    sender = esme()
    sender.bind(name, "pw", "bind_transmitter")
    wanted = sender.submit("+8613800138001", registered_delivery=1).fields["message_id"]
    unwanted = sender.submit("+8613800138002", registered_delivery=0).fields["message_id"]
    carrier.advance(10)
    assert sender.read(timeout=1) is None  # a transmitter gets no receipts
    receiver = esme()
    receiver.bind(name, "pw", "bind_receiver")
    receipts = receiver.receipts(2, timeout=5)
    assert [r.tlvs["receipted_message_id"] for r in receipts] == [wanted]
    parsed = parse_receipt(receipts[0].fields["short_message"], receipts[0].tlvs)
    assert parsed.outcome == "delivered" and parsed.id == wanted
    truth = {t["message_id"]: t for t in carrier.ground_truth(name)}
    assert truth[wanted]["receipts"][0]["delivery"] == "sent" and truth[wanted]["receipts"][0]["acked_at"]
    assert truth[unwanted]["receipts"][0]["delivery"] == "not_requested"
    assert truth[unwanted]["registered_delivery"] == 0


def test_unacknowledged_receipts_are_sent_again_when_the_dialect_says_so(carrier, esme):
    name = fresh_account(carrier, dialect="resend-until-acked")
    client = esme()
    client.bind(name, "pw")
    message_id = client.submit("+8613800138003").fields["message_id"]
    carrier.advance(10)
    first = client.receipts(1, ack=False)
    assert first and first[0].tlvs.get("receipted_message_id") == message_id
    status, dialect = carrier.api("GET", f"/accounts/{name}")
    carrier.advance(dialect["dialect"]["resend_unacked_after"] + 1)
    again = client.receipts(1, timeout=5)  # answered this time
    assert again and again[0].tlvs.get("receipted_message_id") == message_id
    deadline = time.monotonic() + 5  # the acknowledgement is on its way to the carrier: wait for it
    truth = carrier.ground_truth(name)[0]["receipts"][0]
    while not truth.get("acked_at") and time.monotonic() < deadline:
        time.sleep(0.02)
        truth = carrier.ground_truth(name)[0]["receipts"][0]
    assert truth["attempts"] == 2 and truth.get("acked_at"), truth


def test_a_bind_gets_no_more_unanswered_receipts_than_its_receipt_window(carrier, esme):
    """``receipt_window`` bounds the SMSC's own requests in flight on a bind (``window`` when it is
    not set): a client that answers none gets that many; the others follow once it answers."""
    name = fresh_account(carrier, window=50, receipt_window=3)
    client = esme()
    client.bind(name, "pw")
    ids = [client.submit(f"+861380013{8100 + i}").fields["message_id"] for i in range(5)]
    carrier.advance(10)
    first = client.receipts(5, timeout=1.5, ack=False)
    assert len(first) == 3
    for pdu in first:
        client.answer(pdu)
    rest = client.receipts(2, timeout=5)
    assert sorted(r.tlvs["receipted_message_id"] for r in first + rest) == sorted(ids)
    status, account = carrier.api("GET", f"/accounts/{name}")
    assert status == 200 and (account["window"], account["receipt_window"]) == (50, 3)
    status, body = carrier.api("PATCH", f"/accounts/{name}", {"receipt_window": 0})
    assert status == 400 and body["error"]["field"] == "receipt_window"


def test_early_receipts_come_before_their_response(carrier, esme):
    name = fresh_account(carrier, dialect={"receipt_before_resp": 1.0})
    carrier.profile(**{**ALL_DELIVERED, "receipt_delay": {"kind": "fixed", "seconds": 0}})
    try:
        client = esme()
        client.bind(name, "pw")
        client.send("submit_sm", destination_addr="8613800138004", dest_addr_ton=1, short_message=b"hi", registered_delivery=1)
        time.sleep(0.2)
        carrier.advance(1)  # the receipt falls due on the carrier's (virtual) clock; the response waits for it
        first = client.read()
        assert first.command_id == P.DELIVER_SM  # the receipt overtook the submit_sm_resp
        client.answer(first)
        resp = client.read()
        assert resp.command_id == P.SUBMIT_SM_RESP and resp.fields["message_id"] == first.tlvs["receipted_message_id"]
    finally:
        carrier.profile(**ALL_DELIVERED)


def test_mobile_originated_messages_reach_the_receiver(carrier, esme):
    name = fresh_account(carrier)
    client = esme()
    client.bind(name, "pw", "bind_receiver")
    status, mo = carrier.api("POST", "/mo", {"account": name, "from": "+8613800138005", "to": "10690001", "text": "STOP"})
    assert status == 201, mo
    pdu = client.receipts(1)[0]
    assert pdu.fields["esm_class"] == 0 and pdu.fields["short_message"] == b"STOP"
    assert pdu.fields["source_addr"] == "8613800138005" and pdu.fields["destination_addr"] == "10690001"
    status, body = carrier.api("POST", "/mo", {"account": "nobody", "from": "+1", "to": "1", "text": "x"})
    assert status == 400 and body["error"]["field"] == "account"
    # an address is an SMPP C-string of one-octet characters: a NUL would end it early, a
    # character beyond ASCII has no octet; both are refused naming the field, and nothing is queued
    for field, value in (("to", "1069\x00"), ("from", "+86138\x000138000"), ("from", "\u21928613800138000")):
        status, body = carrier.api("POST", "/mo", {"account": name, "from": "+8613800138005", "to": "10690001", "text": "x",
                                                   field: value})
        assert status == 400 and body["error"]["field"] == field, body
    status, detail = carrier.api("GET", f"/accounts/{name}")
    assert status == 200 and detail["outbox"]["open"] == 0, detail


def test_query_and_cancel(carrier, esme):
    client = esme()
    client.bind(fresh_account(carrier), "pw")
    message_id = client.submit("+8613800138006").fields["message_id"]
    client.send("query_sm", message_id=message_id)
    query = client.expect(P.QUERY_SM_RESP)
    assert query.command_status == P.ESME_ROK and query.fields["message_state"] == 1  # ENROUTE
    other = client.submit("+8613800138007").fields["message_id"]
    client.send("cancel_sm", message_id=other)
    assert client.expect(P.CANCEL_SM_RESP).command_status == P.ESME_ROK
    carrier.advance(10)
    receipts = client.receipts(2, timeout=3)
    assert [r.tlvs["receipted_message_id"] for r in receipts] == [message_id]  # the canceled one sends none
    client.send("query_sm", message_id=message_id)
    assert client.expect(P.QUERY_SM_RESP).fields["message_state"] == 2  # DELIVERED
    client.send("cancel_sm", message_id=message_id)
    assert client.expect(P.CANCEL_SM_RESP).command_status == P.ESME_RCANCELFAIL
    client.send("query_sm", message_id="999999999")
    assert client.expect(P.QUERY_SM_RESP).command_status == P.ESME_RQUERYFAIL


def test_the_journal_shows_every_pdu_without_passwords(carrier, esme):
    name = fresh_account(carrier)
    client = esme()
    client.bind(name, "pw")
    client.submit("+8613800138008", b"journal me")
    status, page = carrier.api("GET", f"/journal?account={name}&command=submit_sm")
    assert status == 200 and len(page["items"]) == 1
    entry = page["items"][0]
    assert entry["direction"] == "in" and entry["fields"]["short_message"] == "journal me"
    # what the SMSC writes from ready octets (the usual submit_sm_resp, receipts) reads like the rest
    status, resps = carrier.api("GET", f"/journal?account={name}&command=submit_sm_resp")
    assert status == 200 and len(resps["items"]) == 1
    message_id = resps["items"][0]["fields"]["message_id"]
    assert resps["items"][0]["direction"] == "out" and message_id
    carrier.advance(10)
    client.receipts(1, timeout=3)
    status, delivers = carrier.api("GET", f"/journal?account={name}&command=deliver_sm")
    assert status == 200 and len(delivers["items"]) == 1
    receipt = delivers["items"][0]
    assert receipt["direction"] == "out" and receipt["fields"]["source_addr"] == "8613800138008"
    assert receipt["fields"]["esm_class"] == 4 and receipt["tlvs"]["receipted_message_id"] == message_id
    assert receipt["fields"]["short_message"].startswith(f"id:{message_id} ")
    status, binds = carrier.api("GET", "/journal?command=bind_transceiver&limit=1000")
    assert all(e["fields"]["password"] == "********" for e in binds["items"])
    assert carrier.api("GET", "/journal", token=None)[0] == 401


def test_accounts_api(carrier):
    status, body = carrier.api("PUT", "/accounts/newbie", {"password": "pw1", "dialect": "hex-ids", "max_binds": 3})
    assert status == 201 and body["system_id"] == "newbie" and "password" not in str(body).lower()
    assert body["dialect"]["message_id"] == "hex"
    status, body = carrier.api("PATCH", "/accounts/newbie", {"dialect": {"message_id": "octal"}})
    assert status == 400 and body["error"]["field"].startswith("dialect")
    status, body = carrier.api("PUT", "/accounts/bad%20name!", {"password": "x"})
    assert status == 400 and body["error"]["field"] == "system_id"
    # a NUL would cut an SMPP password short (the account could never bind): refused, nothing changed
    status, body = carrier.api("PATCH", "/accounts/newbie", {"password": "p\x00w"})
    assert status == 400 and body["error"]["field"] == "password", body
    status, body = carrier.api("PUT", "/accounts/nulled", {"password": "\x07"})
    assert status == 400 and body["error"]["field"] == "password", body
    assert carrier.api("GET", "/accounts/nulled")[0] == 404
    client = Esme(carrier.smpp_port)
    try:
        assert client.bind("newbie", "pw1").command_status == P.ESME_ROK  # the password that stands
    finally:
        client.close()
    assert carrier.api("GET", "/accounts")[1]["items"]
    assert carrier.api("DELETE", "/accounts/newbie")[0] == 204
    assert carrier.api("GET", "/accounts/newbie")[0] == 404


def test_tls(carrier):
    client = Esme(carrier.tls_port, tls=True)
    try:
        assert client.bind().command_status == P.ESME_ROK
        assert client.submit("+8613800138009").command_status == P.ESME_ROK
    finally:
        client.close()


def test_session_chaos(carrier, esme):
    carrier.profile(**ALL_DELIVERED, session={"drop_after_pdus": 3})
    try:
        client = esme()
        client.bind(fresh_account(carrier), "pw")
        client.send("enquire_link")
        client.expect(P.ENQUIRE_LINK_RESP)
        client.send("enquire_link")  # the third PDU: the connection is cut
        assert client.read(timeout=2) is None
    finally:
        carrier.profile(**ALL_DELIVERED)
    carrier.profile(**ALL_DELIVERED, session={"enquire_link_interval": 0.3, "enquire_link_timeout": 0.5})
    try:
        quiet = esme()
        quiet.bind(fresh_account(carrier), "pw")
        seen = []
        while (pdu := quiet.read(timeout=3)) is not None:  # never answered: unbound, then closed
            seen.append(pdu.command_id)
        assert seen[0] == P.ENQUIRE_LINK and P.UNBIND in seen
    finally:
        carrier.profile(**ALL_DELIVERED)


def test_a_restarted_smsc_loses_nothing(tmp_path):
    carrier = Carrier(tmp_path, log_name="restart.log")
    try:
        carrier.profile(**ALL_DELIVERED)
        client = Esme(carrier.smpp_port)
        client.bind()
        ids = [client.submit(f"+86138001381{i:02d}").fields["message_id"] for i in range(20)]
        client.close()
        carrier.kill()
        carrier.start()
        carrier.advance(10)
        again = Esme(carrier.smpp_port)
        again.bind()
        receipts = again.receipts(20)
        again.close()
        assert sorted(r.tlvs["receipted_message_id"] for r in receipts) == sorted(ids)
        assert len(carrier.ground_truth("test")) == 20
    finally:
        carrier.stop()


def test_the_same_seed_gives_the_same_outcomes_twice(tmp_path):
    profile = {"seed": 11, "outcomes": {"delivered": 0.5, "failed": 0.3, "missing": 0.2},
               "receipt_delay": {"kind": "uniform", "low": 1, "high": 30}, "moderation": {"review_seconds": 0}}
    runs = []
    for run in range(2):
        carrier = Carrier(tmp_path / f"run{run}")
        try:
            carrier.profile(**profile)
            clients = [Esme(carrier.smpp_port) for _ in range(3)]
            for client in clients:
                client.bind()
            for i in range(60):  # spread over binds differently in each run
                clients[(i * (run + 1)) % 3].submit(f"+86138002{i % 20:05d}")
            for client in clients:
                client.close()
            runs.append(sorted((t["destination"], t["outcome"], t["code"], tuple(r["status"] for r in t["receipts"]))
                               for t in carrier.ground_truth("test")))
        finally:
            carrier.stop()
    assert runs[0] == runs[1] and len(runs[0]) == 60
    assert {o for _, o, _, _ in runs[0]} == {"delivered", "failed", "missing"}


def test_every_dialect_preset_and_chaos_field_is_documented():
    from pathlib import Path

    import msgspec

    from gateway.wire.smpp.receipts import PRESETS, Dialect
    from simulator.profile import SessionChaos

    doc = (Path(__file__).resolve().parent.parent / "docs" / "smpp.md").read_text()
    for name in (*PRESETS, *(f.name for f in msgspec.structs.fields(Dialect)),
                 *(f.name for f in msgspec.structs.fields(SessionChaos))):
        assert f"| `{name}` |" in doc, f"docs/smpp.md has no row for `{name}`"
