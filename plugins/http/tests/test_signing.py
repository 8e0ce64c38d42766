"""Signing and verification of receipt webhooks (gateway.wire.webhooks) and the plugin's parse_webhook."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from gateway.platform import WebhookRejected
from gateway.wire import webhooks
from smslab_http.plugin import HttpCarrier, Settings

SECRET = "s3cret"
BODY = webhooks.encode_receipts([
    {"platform_id": "cr-1-1", "status": "delivered", "at": 1714557600.25, "part": None, "code": "DELIVERED", "message": None},
    {"platform_id": "cr-1-2", "status": "failed", "at": 1714557601.0, "part": 1, "code": "UNDELIV", "message": "x"},
])


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"s3cret", b"1714557600." + BODY, hashlib.sha256).hexdigest()
    assert webhooks.signature(SECRET, 1714557600, BODY) == f"sha256={expected}"
    # a known vector, so a change of the format cannot go unnoticed
    assert webhooks.signature("key", 1, b"{}") == "sha256=" + hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest()


def test_sign_then_verify_round_trip():
    headers = webhooks.sign_headers(SECRET, BODY)
    assert headers["Content-Type"] == "application/json"
    ts = webhooks.verify(SECRET, headers, BODY)
    assert abs(ts - time.time()) < 5


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in webhooks.sign_headers(SECRET, BODY).items()}
    webhooks.verify(SECRET, headers, BODY)


@pytest.mark.parametrize("case", ["unsigned", "no timestamp", "no signature", "wrong secret", "tampered body",
                                  "bad timestamp", "stale", "future", "no secret configured", "other scheme"])
def test_verification_refuses_with_401(case):
    now = int(time.time())
    headers = webhooks.sign_headers(SECRET, BODY, timestamp=now)
    body, secret = BODY, SECRET
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "no timestamp":
        headers.pop(webhooks.TIMESTAMP_HEADER)
    elif case == "no signature":
        headers.pop(webhooks.SIGNATURE_HEADER)
    elif case == "wrong secret":
        headers = webhooks.sign_headers("other", BODY, timestamp=now)
    elif case == "tampered body":
        body = BODY.replace(b"delivered", b"failed\x20\x20\x20")
    elif case == "bad timestamp":
        headers[webhooks.TIMESTAMP_HEADER] = "yesterday"
    elif case == "stale":
        headers = webhooks.sign_headers(SECRET, BODY, timestamp=now - 301)
    elif case == "future":
        headers = webhooks.sign_headers(SECRET, BODY, timestamp=now + 301)
    elif case == "no secret configured":
        secret = ""
    elif case == "other scheme":
        headers[webhooks.SIGNATURE_HEADER] = headers[webhooks.SIGNATURE_HEADER].replace("sha256=", "sha1=")
    with pytest.raises(WebhookRejected) as exc:
        webhooks.verify(secret, headers, body, now=now)
    assert exc.value.status == 401


def test_a_retimestamped_replay_does_not_verify():
    old = webhooks.sign_headers(SECRET, BODY, timestamp=1000)
    replay = {**old, webhooks.TIMESTAMP_HEADER: str(int(time.time()))}
    with pytest.raises(WebhookRejected):
        webhooks.verify(SECRET, replay, BODY)


def test_tolerance_boundary_and_the_second_reference_time():
    now = 2_000_000_000
    webhooks.verify(SECRET, webhooks.sign_headers(SECRET, BODY, timestamp=now - 300), BODY, now=now)
    # the gateway's virtual clock is a second acceptable reference
    virtual = now + 72 * 3600
    webhooks.verify(SECRET, webhooks.sign_headers(SECRET, BODY, timestamp=virtual), BODY, now=now, also_now=virtual)
    with pytest.raises(WebhookRejected):
        webhooks.verify(SECRET, webhooks.sign_headers(SECRET, BODY, timestamp=virtual), BODY, now=now)


def test_several_signatures_any_may_match():
    headers = webhooks.sign_headers(SECRET, BODY)
    headers[webhooks.SIGNATURE_HEADER] = "sha256=00ff, " + headers[webhooks.SIGNATURE_HEADER]
    webhooks.verify(SECRET, headers, BODY)


def _platform(secret=SECRET) -> HttpCarrier:
    return HttpCarrier(Settings(name="http", url="http://127.0.0.1:9", secret=secret))


def test_parse_webhook_decodes_verified_receipts():
    receipts = _platform().parse_webhook(webhooks.sign_headers(SECRET, BODY), BODY, time.time())
    assert [(r.platform_id, r.status, r.part, r.code) for r in receipts] == [
        ("cr-1-1", "delivered", None, "DELIVERED"), ("cr-1-2", "failed", 1, "UNDELIV")]
    assert receipts[0].at == pytest.approx(1714557600.25)
    assert receipts[0].message  # a readable text is filled in from the code
    assert receipts[1].message == "x"


def test_parse_webhook_refuses_unsigned_with_401_before_reading_the_body():
    with pytest.raises(WebhookRejected) as exc:
        _platform().parse_webhook({}, b"not json", time.time())
    assert exc.value.status == 401


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"receipts": [{"platform_id": "a", "status": "lost"}]}',
                                  b'{"receipts": [{"platform_id": "a", "status": "delivered", "at": "noon"}]}',
                                  b'{"receipts": [{"platform_id": "a", "status": "delivered", "part": -1}]}',
                                  b'{"receipts": [{"platform_id": "a", "status": "delivered", "extra": 1}]}'])
def test_parse_webhook_answers_400_for_a_signed_bad_body(body):
    with pytest.raises(WebhookRejected) as exc:
        _platform().parse_webhook(webhooks.sign_headers(SECRET, body), body, time.time())
    assert exc.value.status == 400


def test_a_plugin_without_a_secret_refuses_everything():
    with pytest.raises(WebhookRejected) as exc:
        _platform(secret="").parse_webhook(webhooks.sign_headers("", BODY), BODY, time.time())
    assert exc.value.status == 401


def test_settings_precedence():
    env = {"SMSLAB_HTTP_CARRIER_URL": "http://127.0.0.1:1234/", "SMSLAB_HTTP_SECRET": "e", "SMSLAB_HTTP_NAME": "vendor"}
    s = Settings.resolve({}, env)
    assert (s.name, s.url, s.secret, s.timeout) == ("vendor", "http://127.0.0.1:1234", "e", 30.0)
    s = Settings.resolve({"http": {"name": "x", "secret": "from-config", "timeout": 2}}, env)
    assert (s.name, s.url, s.secret, s.timeout) == ("x", "http://127.0.0.1:1234", "from-config", 2.0)
    assert Settings.resolve({}, {}).url == "http://127.0.0.1:9090"
