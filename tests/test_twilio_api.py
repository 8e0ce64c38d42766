"""smslab's Twilio Messages API, driven by Twilio's official SDK (``twilio`` package) against
``smslab carrier --clock virtual --twilio SID:TOKEN`` on 127.0.0.1: create, fetch and list,
errors as ``TwilioRestException`` with Twilio's codes, the test numbers, opt-out after STOP,
throttling, and status callbacks validated by Twilio's own ``RequestValidator``, compared with
the carrier's ground truth and journal."""

from __future__ import annotations

import base64
import itertools
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

twilio = pytest.importorskip("twilio")
from twilio.base.exceptions import TwilioRestException  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from simulator.providers import twilio_wire as W  # noqa: E402
from tests.twilio_support import CallbackServer, TwilioCarrier, account_sid, twilio_client, wait_for  # noqa: E402

SID = account_sid(1)
TOKEN = "auth-token-1"
FROM = "+15005550006"
_accounts = itertools.count(100)

PROFILE = {
    "seed": 7,
    "outcomes": {"delivered": 0.7, "failed": 0.2, "missing": 0.1},
    "failure_codes": {"UNDELIV": 1, "MK:0005": 1, "EXPIRED": 1},
    "receipt_delay": {"kind": "uniform", "low": 1, "high": 30},
}


@pytest.fixture(scope="module")
def carrier(tmp_path_factory):
    c = TwilioCarrier(tmp_path_factory.mktemp("twilio"), {SID: TOKEN})
    c.profile(**PROFILE)
    yield c
    c.stop()


@pytest.fixture
def fresh(carrier):
    """A Twilio account of its own for one test: (sid, token, client)."""
    sid, token = account_sid(next(_accounts)), "tok-" + str(next(_accounts))
    carrier.twilio_account(sid, token)
    return sid, token, twilio_client(sid, token, carrier.base)


@pytest.fixture
def hook():
    server = CallbackServer()
    yield server
    server.close()


def test_the_sdk_pointed_at_smslab(carrier):
    """The snippet of docs/providers.md: ``client.api.base_url`` is all it takes."""
    from twilio.rest import Client

    client = Client(SID, TOKEN)
    client.api.base_url = carrier.base
    message = client.messages.create(to="+14155552671", from_=FROM, body="Hello from smslab")
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued" and message.direction == "outbound-api"
    assert message.account_sid == SID and message.to == "+14155552671" and message.from_ == FROM
    assert message.num_segments == "1" and message.error_code is None and message.price is None
    assert message.date_created is not None and message.uri.endswith(f"/Messages/{message.sid}.json")
    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid and fetched.status == "sent" and fetched.body == "Hello from smslab"


def test_create_fetch_and_list_pages(carrier, fresh):
    sid, token, client = fresh
    numbers = [f"+1415555{2600 + i:04d}" for i in range(7)]
    created = [client.messages.create(to=n, from_=FROM, body=f"message {i}") for i, n in enumerate(numbers)]
    long = client.messages.create(to=numbers[0], from_=FROM, body="你" * 71)  # UCS-2: 2 segments
    assert long.num_segments == "2"
    assert client.messages.create(to=numbers[0], from_=FROM, body="x" * 161).num_segments == "2"
    # every page of 3, through the SDK: newest first, each message once
    listed = list(client.messages.stream(page_size=3))
    assert len(listed) == 9 and len({m.sid for m in listed}) == 9
    assert {m.sid for m in created} <= {m.sid for m in listed}
    page = client.messages.page(page_size=3)
    first_sids = [m.sid for m in page]
    assert len(first_sids) == 3 and page.next_page_url is not None
    second = [m.sid for m in page.next_page()]
    assert len(second) == 3 and not set(first_sids) & set(second)
    # filters
    to_first = client.messages.list(to=numbers[0])
    assert len(to_first) == 3 and {m.to for m in to_first} == {numbers[0]}
    assert client.messages.list(from_="+15005550000") == []
    assert len(client.messages.list(limit=4, page_size=1)) == 4
    for m in created:
        assert client.messages(m.sid).fetch().to == m.to


def code_of(call) -> tuple[int, int]:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value.code, caught.value.status


def test_errors_in_twilio_shape(carrier, fresh):
    sid, token, client = fresh
    send = client.messages.create
    assert code_of(lambda: send(to="+15551234567", from_=FROM, body="x")) == (21211, 400)  # not a valid number
    assert code_of(lambda: send(to="not a number", from_=FROM, body="x")) == (21211, 400)
    assert code_of(lambda: send(to="", from_=FROM, body="x")) == (21604, 400)
    assert code_of(lambda: send(to="+14155552671", body="x")) == (21603, 400)
    assert code_of(lambda: send(to="+14155552671", from_=FROM, body="")) == (21602, 400)
    assert code_of(lambda: send(to="+14155552671", from_=FROM, body="y" * 1601)) == (21617, 400)
    assert code_of(lambda: send(to="+14155552671", from_=FROM, body="x", status_callback="ftp://x")) == (21609, 400)
    assert code_of(lambda: client.messages("SM" + "0" * 32).fetch()) == (20404, 404)
    wrong = twilio_client(sid, "wrong-token", carrier.base)
    assert code_of(lambda: wrong.messages.create(to="+14155552671", from_=FROM, body="x")) == (20003, 401)
    other = twilio_client(sid, token, carrier.base, account=SID)  # right credentials, another account's URL
    assert code_of(lambda: other.messages.create(to="+14155552671", from_=FROM, body="x")) == (20003, 401)
    # the raw answer is Twilio's JSON error body
    status, body = carrier.api("POST", f"/2010-04-01/Accounts/{sid}/Messages.json", token=None)
    assert status == 401 and body == W.error_body(401, 20003, "Authenticate")
    # the carrier's bearer token does not guard the Twilio API, and does not open it either
    status, body = carrier.api("GET", f"/2010-04-01/Accounts/{sid}/Messages.json")
    assert status == 401 and body["code"] == 20003


def test_test_numbers(carrier, fresh):
    sid, token, client = fresh
    send = client.messages.create
    for to, code in {"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408, "+15005550004": 21610,
                     "+15005550009": 21614}.items():
        assert code_of(lambda: send(to=to, from_=FROM, body="x")) == (code, 400), to
    for sender, code in {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}.items():
        assert code_of(lambda: send(to="+14155552671", from_=sender, body="x")) == (code, 400), sender
    assert send(to="+15005550006", from_=FROM, body="ok").status == "queued"
    assert send(to="+14155552671", messaging_service_sid="MG" + "a" * 32, body="ok").status == "accepted"
    assert send(to="+14155552671", from_="Shop", body="alphanumeric sender").status == "queued"
    # the refused test numbers are in ground truth as refused, the others under their sid
    truth = carrier.ground_truth(sid)
    outcomes = Counter(item["outcome"] for item in truth)
    assert outcomes["refused"] == 5 and sum(outcomes.values()) == 8
    assert all(item["sid"] is None for item in truth if item["outcome"] == "refused")
    assert {item["code"] for item in truth if item["outcome"] == "refused"} == {"21211", "21612", "21408", "21610", "21614"}


def test_stop_reply_unsubscribes(carrier, fresh):
    sid, token, client = fresh
    number = "+14155550142"
    client.messages.create(to=number, from_=FROM, body="before")
    status, body = carrier.api("POST", "/mo", {"account": sid, "from": number, "to": FROM, "text": "stop"})
    assert status == 201 and body["opt_out"] == "opted_out", body
    assert code_of(lambda: client.messages.create(to=number, from_=FROM, body="after")) == (21610, 400)
    client.messages.create(to="+14155550143", from_=FROM, body="someone else")
    carrier.api("POST", "/mo", {"account": sid, "from": number, "to": FROM, "text": "START"})
    assert client.messages.create(to=number, from_=FROM, body="again").status == "queued"
    assert [e["change"] for e in carrier.journal(sid, "mo")] == ["opted_out", "opted_in"]


def test_throttled_is_20429(carrier, fresh):
    sid, token, client = fresh
    carrier.api("PATCH", f"/accounts/{sid}", {"throughput_limit": 1})
    client.messages.create(to="+14155550150", from_=FROM, body="one")
    assert code_of(lambda: client.messages.create(to="+14155550151", from_=FROM, body="two")) == (20429, 429)
    assert carrier.journal(sid, "messages.create")[-1]["code"] == 20429


def test_status_callbacks(carrier, fresh, hook):
    sid, token, client = fresh
    numbers = [f"+1415555{3000 + i:04d}" for i in range(30)] + ["+15005550010", "+15005550012", "+15005550020"]
    messages = {}
    for n in numbers:
        m = client.messages.create(to=n, from_=FROM, body="status please", status_callback=hook.url)
        messages[m.sid] = n
    first = next(iter(messages))
    hook.fail[(first, "delivered")] = 1  # refused once: sent again 60 s later (carrier clock)
    wait_for(lambda: sum(len(v) for v in hook.by_sid().values()) == 2 * len(numbers), what="queued and sent callbacks")
    carrier.advance(31)
    carrier.settle(sid)
    carrier.advance(61)
    carrier.settle(sid)
    validator = RequestValidator(token)
    for url, params, headers in hook.calls:  # every callback is signed as Twilio signs them
        assert validator.validate(url, params, headers["X-Twilio-Signature"]), params
        assert params["AccountSid"] == sid and params["ApiVersion"] == "2010-04-01"
        assert params["SmsSid"] == params["MessageSid"] and params["SmsStatus"] == params["MessageStatus"]
        assert params["From"] == FROM and params["To"] == messages[params["MessageSid"]]
    assert not RequestValidator("another-token").validate(*hook.calls[0][:2], hook.calls[0][2]["X-Twilio-Signature"])
    seen = hook.by_sid()
    truth = {item["sid"]: item for item in carrier.ground_truth(sid)}
    assert set(truth) == set(messages) == set(seen)
    finals = Counter()
    for msg_sid, calls in seen.items():
        statuses = [c["MessageStatus"] for c in calls]
        item = truth[msg_sid]
        expected = {"delivered": "delivered", "failed": "undelivered", "missing": None}[item["outcome"]]
        assert statuses[:2] == ["queued", "sent"], statuses
        assert statuses[2:] == ([expected] if expected else []), (statuses, item)
        status = client.messages(msg_sid).fetch()
        assert status.status == (expected or "sent")
        if expected == "undelivered":
            code = {"UNDELIV": "30003", "MK:0005": "30005", "EXPIRED": "30036"}[item["code"]]
            assert calls[2]["ErrorCode"] == code and status.error_code == int(code)
        else:
            assert all("ErrorCode" not in c for c in calls)
        finals[expected] += 1
        assert [r["delivery"] for r in item["receipts"]] == ["sent"] * len(item["receipts"])
    assert finals["delivered"] and finals["undelivered"] and finals[None]  # all three kinds happened
    assert [c["ErrorCode"] for c in seen[[s for s, n in messages.items() if n == "+15005550010"][0]] if "ErrorCode" in c] == ["30003"]
    assert hook.refused and truth[first]["receipts"][0]["attempts"] == 2
    # the journal: every API call and every callback attempt
    journal = carrier.journal(sid)
    assert sum(e["command"] == "messages.create" for e in journal) == len(numbers)
    callbacks = [e for e in journal if e["command"] == "status_callback"]
    assert len(callbacks) == len(hook.calls) + len(hook.refused)
    assert sum(e["error"] is not None for e in callbacks) == 1


def test_no_callback_url_means_no_callbacks(carrier, fresh, hook):
    sid, token, client = fresh
    m = client.messages.create(to="+15005550000", from_=FROM, body="delivered at once")
    carrier.advance(1)
    carrier.settle(sid)
    assert client.messages(m.sid).fetch().status == "delivered"
    assert hook.calls == [] and carrier.journal(sid, "status_callback") == []
    assert carrier.ground_truth(sid)[0]["receipts"][0]["delivery"] == "not_requested"


# -- decoders of untrusted input -------------------------------------------------------------------------
@given(st.binary(max_size=400))
def test_parse_form_never_raises(raw):
    out = W.parse_form(raw)
    assert out is None or all(isinstance(v, list) for v in out.values())


@given(st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=60).map(
    lambda b: "Basic " + base64.b64encode(b).decode())))
def test_parse_basic_never_raises(header):
    out = W.parse_basic(header)
    assert out is None or (isinstance(out, tuple) and len(out) == 2)


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=8), st.text(min_size=1, max_size=20))
def test_signature_is_twilios(params, token):
    url = "https://example.test/status?x=1"
    assert W.signature(token, url, params.items()) == RequestValidator(token).compute_signature(url, params)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), auth=st.sampled_from([None, "good", "bad"]))
def test_garbage_requests_get_twilio_errors(carrier, body, auth):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{carrier.base}/2010-04-01/Accounts/{SID}/Messages.json", data=body, method="POST")
    if auth:
        secret = TOKEN if auth == "good" else "nope"
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{SID}:{secret}".encode()).decode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    import json

    assert status < 500, raw
    if status != 201:
        data = json.loads(raw)
        assert set(data) == {"code", "message", "more_info", "status"} and data["status"] == status


def test_same_seed_same_sids_and_restart(tmp_path):
    """Two fresh carriers with one profile give the same sids and outcomes for the same calls;
    a restarted carrier still knows its messages and decides the next ones as before."""
    numbers = [f"+1415555{4000 + i:04d}" for i in range(12)]
    runs = []
    for name in ("a", "b"):
        c = TwilioCarrier(tmp_path / name, {SID: TOKEN})
        try:
            c.profile(**PROFILE)
            client = twilio_client(SID, TOKEN, c.base)
            sids = [client.messages.create(to=n, from_=FROM, body="same").sid for n in numbers]
            if name == "b":
                c.kill()
                c.start()
                client = twilio_client(SID, TOKEN, c.base)
                assert [client.messages(s).fetch().to for s in sids] == numbers
                assert len(client.messages.list()) == len(numbers)
            sids.append(client.messages.create(to=numbers[0], from_=FROM, body="after").sid)
            c.advance(60)
            c.settle(SID)
            truth = {item["sid"]: (item["outcome"], item["code"]) for item in c.ground_truth(SID)}
            runs.append((sids, [truth[s] for s in sids], [client.messages(s).fetch().status for s in sids]))
        finally:
            c.stop()
    assert runs[0] == runs[1]
    assert len(set(runs[0][0])) == len(numbers) + 1


@pytest.mark.parametrize("query", ["PageSize=abc", "PageSize=0", "PageSize=1001", "Page=-1", "Page=x", "DateSent=2024-13-01",
                                   "DateSent%3C=yesterday", "PageToken=nonsense", "PageToken=PA", "To=%00%ff", "From=%F0%9F%98%80",
                                   "DateSent=2024-05-01&To=+14155552671", "PageSize=2&Page=99"])
def test_odd_list_queries(carrier, query):
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{carrier.base}/2010-04-01/Accounts/{SID}/Messages.json?{query}")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, data = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        status, data = err.code, json.loads(err.read())
    assert status in (200, 400), (status, data)
    assert ("messages" in data) if status == 200 else (data["code"] == 20001 and data["status"] == 400)
