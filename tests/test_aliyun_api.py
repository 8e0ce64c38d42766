"""Alibaba Cloud SMS (Dysmsapi 2017-05-25) on ``smslab carrier``, driven by the official SDK
(``alibabacloud-dysmsapi20170525``) as an application would: SendSms, SendBatchSms,
QuerySendDetails agreeing with ground truth, Alibaba's error codes, SmsReport and SmsUp pushes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta

import pytest

pytest.importorskip("alibabacloud_dysmsapi20170525")

from alibabacloud_dysmsapi20170525 import models  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from multidict import CIMultiDict  # noqa: E402

from simulator.providers import aliyun as A  # noqa: E402
from simulator.providers.aliyun_auth import AuthError, claims, rpc_sign, rpc_string_to_sign  # noqa: E402
from tests.aliyun_support import Receiver, sdk_client  # noqa: E402
from tests.smsc_support import Carrier  # noqa: E402

KEY, SECRET = "LTAI5tSmslabTestKey0001", "test-secret-0001"
START_DATE = "20240501"  # the carrier's clock starts at 2024-05-01T10:00Z (18:00 in China)
ALWAYS = {"delivered": 1, "failed": 0, "missing": 0}


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def carrier(tmp_path_factory, receiver):
    c = Carrier(tmp_path_factory.mktemp("aliyun"), "--aliyun", f"{KEY}:{SECRET}", "--aliyun-report-url",
                f"{receiver.url}/report", accounts=())
    yield c
    c.stop()


def account(carrier, name: str, secret: str = "s3cret", **extra) -> None:
    fields = {k: extra.pop(k) for k in ("throughput_limit",) if k in extra}
    carrier.account(name, secret, protocol="aliyun", extra=extra, **fields)


def truth(carrier, name: str) -> list[dict]:
    status, body = carrier.api("GET", f"/ground-truth?account={name}&limit=200")
    assert status == 200, body
    return body["items"]


def settle(carrier, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while carrier.api("GET", f"/accounts/{name}")[1]["outbox"]["busy"]:
        assert time.monotonic() < deadline, "the carrier's pushes did not settle"
        time.sleep(0.02)


def test_send_sms_answers_and_ground_truth(carrier):
    carrier.api("PUT", f"/accounts/{KEY}", {"password": SECRET, "protocol": "aliyun"})
    client = sdk_client(carrier.http_port, KEY, SECRET)
    resp = client.send_sms(models.SendSmsRequest(phone_numbers="13800000001,13800000002,85291234567", sign_name="smslab",
                                                 template_code="SMS_100", template_param='{"code": "1234"}',
                                                 out_id="order-1"))
    assert resp.status_code == 200
    assert resp.body.code == "OK" and resp.body.message == "OK"
    assert resp.body.biz_id.endswith("^0") and resp.body.request_id
    items = [i for i in truth(carrier, KEY) if i.get("biz_id") == resp.body.biz_id]
    assert [i["destination"] for i in items] == ["+8613800000001", "+8613800000002", "+85291234567"]
    assert [i["platform_id"] for i in items] == [f"{resp.body.biz_id}:{n}" for n in ("13800000001", "13800000002", "85291234567")]
    assert all(i["content"] == "【smslab】1234" and i["sms_size"] == 1 and i["out_id"] == "order-1" for i in items)
    # the classic RPC signature (HMAC-SHA1) works as well
    classic = sdk_client(carrier.http_port, KEY, SECRET, signature_algorithm="v2")
    assert classic.send_sms(models.SendSmsRequest(phone_numbers="13800000003", sign_name="smslab",
                                                  template_code="SMS_100")).body.code == "OK"
    status, journal = carrier.api("GET", f"/journal?account={KEY}&command=SendSms")
    assert status == 200 and len(journal["items"]) == 2 and journal["items"][0]["biz_id"] == resp.body.biz_id


def test_the_docs_snippet_runs(carrier, capsys):
    """docs/providers.md's "Pointing the SDK at smslab", as written, against this carrier."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "providers.md").read_text()
    section = doc[doc.index("## Alibaba Cloud SMS"):]
    code = section[section.index("```python") + len("```python"):]
    code = code[:code.index("```")]
    carrier.api("PUT", "/accounts/LTAI5tExampleKey", {"password": "my-access-key-secret", "protocol": "aliyun"})
    exec(compile(code.replace("127.0.0.1:9090", f"127.0.0.1:{carrier.http_port}"), "providers.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK ") and out[0].endswith("^0")
    assert out[1].split() == ["13800000001", "1"]  # waiting: the clock has not moved


def test_send_batch_sms_and_long_text(carrier):
    account(carrier, "batch-acct", templates={"SMS_1": "Hello ${name}, " + "x" * 80}, sign_names=["ShopA", "ShopB"])
    client = sdk_client(carrier.http_port, "batch-acct", "s3cret")
    resp = client.send_batch_sms(models.SendBatchSmsRequest(
        phone_number_json=json.dumps(["13900000001", "13900000002"]), sign_name_json=json.dumps(["ShopA", "ShopB"]),
        template_code="SMS_1", template_param_json=json.dumps([{"name": "Li"}, {"name": "Wang"}])))
    assert resp.body.code == "OK", resp.body
    items = truth(carrier, "batch-acct")
    assert [i["content"] for i in items] == ["【ShopA】Hello Li, " + "x" * 80, "【ShopB】Hello Wang, " + "x" * 80]
    assert [i["sms_size"] for i in items] == [2, 2] and [i["parts"] for i in items] == [2, 2]
    assert all(len(i["receipts"]) <= 1 for i in items if not any(r["duplicate"] for r in i["receipts"]))


def test_query_send_details_agrees_with_ground_truth(carrier):
    account(carrier, "query-acct")
    client = sdk_client(carrier.http_port, "query-acct", "s3cret")
    numbers = [f"1370000{i:04d}" for i in range(20)]
    resp = client.send_sms(models.SendSmsRequest(phone_numbers=",".join(numbers), sign_name="smslab", template_code="SMS_1",
                                                 template_param='{"c": "hi"}'))
    assert resp.body.code == "OK"

    def details(number: str, biz_id: str | None = None):
        return client.query_send_details(models.QuerySendDetailsRequest(
            phone_number=number, send_date=START_DATE, page_size=10, current_page=1, biz_id=biz_id)).body

    before = details(numbers[0])
    assert before.code == "OK" and before.total_count == 1
    assert before.sms_send_detail_dtos.sms_send_detail_dto[0].send_status == 1  # waiting
    carrier.advance(3 * 3600)
    items = {i["phone_number"]: i for i in truth(carrier, "query-acct")}
    for number in numbers:
        body = details(number, resp.body.biz_id)
        assert body.total_count == 1
        dto = body.sms_send_detail_dtos.sms_send_detail_dto[0]
        item = items[number]
        firsts = [r for r in item["receipts"] if not r["duplicate"] and not r["swallowed"]]
        if not firsts:
            assert dto.send_status == 1 and dto.err_code == ""
        elif firsts[0]["status"] == "delivered":
            assert (dto.send_status, dto.err_code) == (3, "DELIVERED")
        else:
            assert (dto.send_status, dto.err_code) == (2, firsts[0]["code"])
        assert dto.phone_num == number and dto.content == "【smslab】hi" and dto.template_code == "SMS_1"
        assert dto.send_date.startswith("2024-05-01 18:00")
    assert details(numbers[0], "999^0").total_count == 0
    other_day = client.query_send_details(models.QuerySendDetailsRequest(
        phone_number=numbers[0], send_date="20240502", page_size=10, current_page=1)).body
    assert other_day.total_count == 0


def test_business_errors(carrier):
    account(carrier, "err-acct", templates={"SMS_OK": "code ${code}"}, sign_names=["Good"])
    client = sdk_client(carrier.http_port, "err-acct", "s3cret")

    def send(**kw):
        fields = {"phone_numbers": "13800000009", "sign_name": "Good", "template_code": "SMS_OK",
                  "template_param": '{"code": "1"}', **kw}
        return client.send_sms(models.SendSmsRequest(**fields)).body.code

    assert send() == "OK"
    assert send(template_code="SMS_NOPE") == "isv.SMS_TEMPLATE_ILLEGAL"
    assert send(sign_name="Bad") == "isv.SMS_SIGNATURE_ILLEGAL"
    assert send(template_param='{"other": 1}') == "isv.TEMPLATE_MISSING_PARAMETERS"
    assert send(template_param="{not json") == "isv.INVALID_JSON_PARAM"
    assert send(phone_numbers="12ab") == "isv.MOBILE_NUMBER_ILLEGAL"
    assert send(phone_numbers=",".join(["13800000009"] * 1001)) == "isv.MOBILE_COUNT_OVER_LIMIT"
    # nothing refused reached the carrier's books
    assert len(truth(carrier, "err-acct")) == 1


def test_throttled_by_the_account_limit(carrier):
    account(carrier, "slow-acct", throughput_limit=2)
    client = sdk_client(carrier.http_port, "slow-acct", "s3cret")
    codes = [client.send_sms(models.SendSmsRequest(phone_numbers="13800000010,13800000011", sign_name="s",
                                                   template_code="SMS_1")).body.code for _ in range(3)]
    assert codes[0] == "OK" and "isv.BUSINESS_LIMIT_CONTROL" in codes[1:]
    status, journal = carrier.api("GET", "/journal?account=slow-acct")
    assert [e["code"] for e in journal["items"]] == codes


def test_signature_errors_raise_in_the_sdk(carrier):
    from alibabacloud_tea_openapi.exceptions import ClientException

    request = models.SendSmsRequest(phone_numbers="13800000001", sign_name="s", template_code="SMS_1")
    for algorithm in (None, "v2"):
        with pytest.raises(ClientException) as wrong:
            sdk_client(carrier.http_port, KEY, "not-the-secret", algorithm).send_sms(request)
        assert wrong.value.code == "SignatureDoesNotMatch" and wrong.value.status_code == 400
        with pytest.raises(ClientException) as unknown:
            sdk_client(carrier.http_port, "LTAInobody", "x", algorithm).send_sms(request)
        assert unknown.value.code == "InvalidAccessKeyId.NotFound" and unknown.value.status_code == 404


def _raw(carrier, params: dict, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    url = f"{carrier.base}/?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _signed(params: dict, secret: str = SECRET, method: str = "GET", **over) -> dict:
    base = {"Action": "SendSms", "Version": "2017-05-25", "Format": "JSON", "AccessKeyId": KEY,
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **params, **over}
    base["Signature"] = rpc_sign(rpc_string_to_sign(method, base), secret)
    return base


def test_unsigned_stale_and_replayed_requests(carrier):
    send = {"PhoneNumbers": "13800000001", "SignName": "s", "TemplateCode": "SMS_1"}
    status, body = _raw(carrier, {"Action": "SendSms", "Version": "2017-05-25", **send})
    assert (status, body["Code"]) == (400, "MissingSignature")
    assert set(body) >= {"Code", "Message", "RequestId", "HostId", "Recommend"}
    params = _signed(send)
    assert _raw(carrier, params)[1]["Code"] == "OK"
    status, body = _raw(carrier, params)  # the same request again: its nonce was used
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    stale = _signed(send, Timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)))
    assert _raw(carrier, stale)[1]["Code"] == "InvalidTimeStamp.Expired"
    assert _raw(carrier, _signed(send, Action="Nope"))[0] == 404
    assert _raw(carrier, _signed(send, Version="2099-01-01"))[1]["Code"] == "InvalidVersion"
    assert _raw(carrier, _signed({"SignName": "s", "TemplateCode": "SMS_1"}))[1]["Code"] == "MissingPhoneNumbers"
    # a POST with the parameters in a form body, signed over them
    form = _signed(send, method="POST")
    status, body = _raw(carrier, {}, "POST", urllib.parse.urlencode(form).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body["Code"]) == (200, "OK")


def test_reports_are_pushed_and_retried(carrier, receiver):
    account(carrier, "push-acct", report_url=f"{receiver.url}/push-acct")
    carrier.api("PUT", "/profile", {"seed": 5, "outcomes": ALWAYS, "receipt_delay": {"kind": "fixed", "seconds": 5}})
    try:
        client = sdk_client(carrier.http_port, "push-acct", "s3cret")
        resp = client.send_sms(models.SendSmsRequest(phone_numbers="13600000001,13600000002", sign_name="smslab",
                                                     template_code="SMS_1", template_param='{"c": "hello"}', out_id="o-9"))
        receiver.answers["/push-acct"] = [(200, {"code": 1, "msg": "busy"})]  # the first push is not acknowledged
        carrier.advance(10)
        first = receiver.wait(lambda: receiver.items("/push-acct"), what="the first SmsReport push")
        settle(carrier, "push-acct")
        assert len(first) == 2
        carrier.advance(61)  # the carrier's retry schedule: 60 s after a failed push
        again = receiver.wait(lambda: len(receiver.items("/push-acct")) >= 4 and receiver.items("/push-acct"),
                              what="the retried push")
        settle(carrier, "push-acct")
        reports = again[2:]
        assert {r["phone_number"] for r in reports} == {"13600000001", "13600000002"}
        for r in reports:
            assert r["success"] is True and r["err_code"] == "DELIVERED" and r["biz_id"] == resp.body.biz_id
            assert r["out_id"] == "o-9" and r["sms_size"] == "1"
            sent_at = datetime.strptime(r["send_time"], "%Y-%m-%d %H:%M:%S")
            assert datetime.strptime(r["report_time"], "%Y-%m-%d %H:%M:%S") - sent_at == timedelta(seconds=5)
        # (polled: the outbox writes final receipts in the background)
        receiver.wait(lambda: all(i["receipts"][0]["delivery"] == "sent" and i["receipts"][0]["attempts"] == 2
                                  for i in truth(carrier, "push-acct")), what="ground truth to show both sent")
        status, journal = carrier.api("GET", "/journal?account=push-acct&command=SmsReport")
        assert [bool(e["error"]) for e in journal["items"]] == [True, False]
    finally:
        carrier.api("PUT", "/profile", {})


def test_replies_are_pushed_as_sms_up(carrier, receiver):
    account(carrier, "up-acct", report_url=f"{receiver.url}/up-report", up_url=f"{receiver.url}/up", sign_names=["Shop"])
    status, body = carrier.api("POST", "/mo", {"account": "up-acct", "from": "+8613500000001", "to": "1234", "text": "TD"})
    assert status == 201, body
    ups = receiver.wait(lambda: receiver.items("/up"), what="the SmsUp push")
    assert ups == [{"phone_number": "13500000001", "send_time": ups[0]["send_time"], "content": "TD", "sign_name": "Shop",
                    "dest_code": "1234", "sequence_id": body["sequence_id"]}]
    assert ups[0]["send_time"].startswith("2024-05-01 ")
    assert [h for p, h, _ in receiver.pushes if p == "/up"] == ["SmsUp"]


# -- the decoders of untrusted input never fail with anything but Alibaba's errors ----------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "PUT"]), query=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=8),
       form=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
       auth=st.one_of(st.none(), st.text(max_size=200), st.builds(lambda s: "ACS3-HMAC-SHA256 " + s, st.text(max_size=200))),
       extra=st.dictionaries(st.sampled_from(["x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "host"]),
                             st.text(max_size=40), max_size=4),
       body=st.binary(max_size=64))
def test_claims_never_crash(method, query, form, auth, extra, body):
    headers = CIMultiDict(extra)
    if auth is not None:
        headers["Authorization"] = auth
    try:
        signed = claims(method, "/", query, form, headers, body)
    except AuthError as exc:
        assert 400 <= exc.status < 500 and exc.code
        return
    assert isinstance(signed.matches("secret"), bool)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=60), st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4))
def test_number_and_template_decoders(number, template, params):
    stamp = A.parse_time(number) if hasattr(A, "parse_time") else None
    assert stamp is None or isinstance(stamp, float)
    out = A.e164(number)
    assert out is None or (out.startswith("+") and out[1:].isdigit())
    text, missing = A.render(template, params)
    assert isinstance(text, str) and all(isinstance(m, str) for m in missing)
    try:
        A._json_param(template, "TemplateParam", dict)
    except A.ApiError as exc:
        assert exc.code == "isv.INVALID_JSON_PARAM"


def test_http_garbage_is_refused_with_alibaba_errors(carrier):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(params=st.dictionaries(st.sampled_from(["Action", "Version", "AccessKeyId", "Signature", "Timestamp",
                                                   "SignatureNonce", "PhoneNumbers", "SignatureMethod", "x"]),
                                  st.text(max_size=30), max_size=6),
           body=st.binary(max_size=100))
    def check(params, body):
        status, out = _raw(carrier, params, "POST", body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= status < 500 and out["Code"] and out["RequestId"]

    check()


def test_rpc_signature_matches_the_sdk():
    from alibabacloud_tea_openapi.utils import Utils

    params = {"Action": "SendSms", "PhoneNumbers": "13800000000,13900000000", "SignName": "阿里云 ~*+", "Timestamp": "2024-05-01T10:00:00Z"}
    assert rpc_sign(rpc_string_to_sign("POST", params), "sec") == Utils.get_rpcsignature(params, "POST", "sec")
    digest = base64.b64encode(hmac.new(b"sec&", rpc_string_to_sign("GET", params).encode(), hashlib.sha1).digest()).decode()
    assert rpc_sign(rpc_string_to_sign("GET", params), "sec") == digest


def test_a_killed_carrier_keeps_its_ids_and_details(tmp_path):
    """kill -9 and a restart: new BizIds follow the old ones, and QuerySendDetails still finds (and
    describes) what was sent before, from the carrier's books."""
    c = Carrier(tmp_path / "restart", "--aliyun", "LTAIrestart:sec", accounts=())
    try:
        def send():
            client = sdk_client(c.http_port, "LTAIrestart", "sec")
            return client.send_sms(models.SendSmsRequest(phone_numbers="13500000077", sign_name="S", template_code="SMS_1",
                                                         template_param='{"t": "before"}', out_id="o-1")).body

        first = send()
        c.kill()
        c.start()
        second = send()
        assert first.code == second.code == "OK"
        assert int(second.biz_id.split("^")[0]) > int(first.biz_id.split("^")[0])
        client = sdk_client(c.http_port, "LTAIrestart", "sec")
        body = client.query_send_details(models.QuerySendDetailsRequest(
            phone_number="13500000077", send_date=START_DATE, page_size=1, current_page=1)).body
        assert body.total_count == 2 and len(body.sms_send_detail_dtos.sms_send_detail_dto) == 1  # a page of one
        dto = body.sms_send_detail_dtos.sms_send_detail_dto[0]
        assert (dto.content, dto.out_id, dto.template_code) == ("【S】before", "o-1", "SMS_1")
        assert len(truth(c, "LTAIrestart")) == 2
    finally:
        c.stop()


def test_numbers_the_profile_refuses(carrier, receiver):
    """A magic number refused at submission: alone, the request fails with Alibaba's code; among
    others, the request is OK and that number fails by report."""
    account(carrier, "rule-acct", report_url=f"{receiver.url}/rule-acct")
    client = sdk_client(carrier.http_port, "rule-acct", "s3cret")

    def send(numbers: str):
        return client.send_sms(models.SendSmsRequest(phone_numbers=numbers, sign_name="s", template_code="SMS_1")).body

    assert send("+15005550001").code == "isv.MOBILE_NUMBER_ILLEGAL"  # a test number the profile refuses (21211)
    mixed = send("+15005550001,13800000123")
    assert mixed.code == "OK"
    failed = receiver.wait(lambda: [r for r in receiver.items("/rule-acct") if r["phone_number"] == "+15005550001"],
                           what="the refused number's report")
    assert failed[0]["success"] is False and failed[0]["err_code"] == "isv.MOBILE_NUMBER_ILLEGAL"
    assert failed[0]["biz_id"] == mixed.biz_id
    items = truth(carrier, "rule-acct")
    assert [(i["outcome"], i["platform_id"]) for i in items if i["destination"] == "+15005550001"] == [
        ("refused", None), ("refused", f"{mixed.biz_id}:+15005550001")]
