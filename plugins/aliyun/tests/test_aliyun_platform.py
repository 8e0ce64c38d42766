"""The aliyun platform's own parts: request signing (the same as Alibaba's SDK computes),
settings, numbers and signatures, and the push decoder (which never fails but with a 4xx)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.platform import PlatformConfigError, WebhookRejected
from smslab_aliyun.plugin import AliyunPlatform, Settings, alibaba_number, sign, signed_params, split_signature


def test_signature_is_the_sdks():
    utils = pytest.importorskip("alibabacloud_tea_openapi.utils").Utils
    params = signed_params("SendSms", {"PhoneNumbers": "13800000000,13900000000", "SignName": "阿里云 ~*+/",
                                       "TemplateCode": "SMS_1", "TemplateParam": '{"content": "a b&c=d 你好"}'}, "KID", "SEC")
    expected = utils.get_rpcsignature({k: v for k, v in params.items() if k != "Signature"}, "POST", "SEC")
    assert params["Signature"] == expected
    assert sign(params, "SEC", "GET") == utils.get_rpcsignature({k: v for k, v in params.items() if k != "Signature"}, "GET", "SEC")


def test_settings_from_env_and_extras():
    env = {"SMSLAB_ALIYUN_ACCESS_KEY_ID": "K", "SMSLAB_ALIYUN_ACCESS_KEY_SECRET": "S", "SMSLAB_ALIYUN_BATCH": "50",
           "SMSLAB_ALIYUN_ENDPOINT": "127.0.0.1:9000"}
    s = Settings.resolve({"aliyun": {"template_code": "SMS_9"}}, env)
    assert (s.access_key_id, s.access_key_secret, s.batch, s.template_code) == ("K", "S", 50, "SMS_9")
    assert s.endpoint == "https://127.0.0.1:9000" and s.template_param == "content"
    assert Settings.resolve({}, {}).endpoint == "https://dysmsapi.aliyuncs.com"
    with pytest.raises(PlatformConfigError):
        Settings.resolve({}, {"SMSLAB_ALIYUN_BATCH": "5000"})


def test_numbers_and_sign_names():
    assert alibaba_number("+8613800000001") == "13800000001"
    assert alibaba_number("+85291234567") == "85291234567"
    assert alibaba_number("+12025550123") == "0012025550123"
    assert alibaba_number("not-a-number") is None and alibaba_number("") is None
    assert split_signature("Your code is 1234 【smslab】", "") == ("smslab", "Your code is 1234")
    assert split_signature("【Shop】Sale today", "") == ("Shop", "Sale today")
    assert split_signature("【Shop】Sale today", "Other") == ("Other", "【Shop】Sale today")
    assert split_signature("no signature", "") == ("smslab", "no signature")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_numbers_read_back_as_the_carrier_reads_them(number):
    from simulator.providers.aliyun import e164

    sent = alibaba_number(number)
    if sent is not None and number.startswith("+"):
        assert e164(sent) == number


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["phone_number", "biz_id", "success", "content", "report_time", "send_time",
                                            "err_code", "err_msg", "sequence_id", "dest_code", "x"]), inner, max_size=6),
                       max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), JSONISH.map(lambda v: __import__("json").dumps(v).encode())))
def test_push_decoder_never_crashes(body):
    platform = AliyunPlatform(Settings(access_key_id="K", access_key_secret="S", report_token="t"))
    try:
        receipts, inbound = platform.parse_push(body, 1_700_000_000.0)
    except WebhookRejected as exc:
        assert 400 <= exc.status < 500
        return
    for r in receipts:
        assert r.status in ("delivered", "failed") and r.at <= 1_700_000_000.0 and ":" in r.platform_id
    for m in inbound:
        assert m.sender.startswith("+")


def test_plain_webhook_route_refuses_and_token_checks():
    platform = AliyunPlatform(Settings(access_key_id="K", access_key_secret="S", report_token="tok"))
    with pytest.raises(WebhookRejected) as exc:
        platform.parse_webhook({}, b"[]", 0.0)
    assert exc.value.status == 401
    assert platform.check_token("tok") and not platform.check_token("tok2") and not platform.check_token("")
    assert not AliyunPlatform(Settings(access_key_id="K", access_key_secret="S")).check_token("")
    receipts, _ = platform.parse_push(b'[{"phone_number": "13800000001", "success": false, "biz_id": "9^0",'
                                      b' "err_code": "MK:0001", "report_time": "2024-05-01 18:00:05"}]', 2e9)
    assert receipts[0].platform_id == "9^0:13800000001" and receipts[0].status == "failed"
    assert receipts[0].code == "MK:0001" and receipts[0].at == 1714557605.0


def test_throttling_is_retried_and_sends_nothing_twice(tmp_path):
    import asyncio
    import time

    from aliyun_carrier_thread import CarrierThread
    from gateway.platform import Throttled
    from gateway.testing.conformance import START, make_batch, open_harness
    from simulator import profile as profiles

    with CarrierThread(str(tmp_path / "carrier.db"), [("LTAIslow", "sec")], None, profiles.Profile(), START) as carrier:
        carrier.api("PATCH", "/accounts/LTAIslow", {"throughput_limit": 100})

        async def main():
            async with open_harness(tmp_path / "h") as h:
                platform = await h.start(AliyunPlatform(Settings(access_key_id="LTAIslow", access_key_secret="sec",
                                                                 endpoint=carrier.url, batch=100)))
                batch = make_batch(150)
                with pytest.raises(Throttled):
                    await platform.submit(batch)  # 100 go; the next request is over the limit
                deadline = time.monotonic() + 10
                while True:  # the gateway sends the same batch again after the retry delay
                    try:
                        return await platform.submit(batch)
                    except Throttled as exc:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(exc.retry_after)

        results = asyncio.run(main())
        assert all(r.platform_id for r in results) and len({r.platform_id for r in results}) == 150
        truth = carrier.api("GET", "/ground-truth?account=LTAIslow&limit=500")["items"]
        assert len(truth) == 150, "no number was sent twice"
        journal = carrier.api("GET", "/journal?account=LTAIslow&command=SendSms")["items"]
        assert "isv.BUSINESS_LIMIT_CONTROL" in [e["code"] for e in journal]
