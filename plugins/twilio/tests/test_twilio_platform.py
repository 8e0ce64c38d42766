"""The ``twilio`` platform on its own: settings, how Twilio's answers become results or batch
errors (against a small fake of the Messages API on 127.0.0.1), and status callbacks verified
with Twilio's signature (cross-checked with the official SDK's ``RequestValidator``)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.platform import PlatformConfigError, PlatformError, Receipt, SubmitItem, Throttled, WebhookRejected
from gateway.testing.conformance import open_harness
from smslab_twilio import plugin
from smslab_twilio.platform import TwilioPlatform, signature, url_variants
from smslab_twilio.settings import Settings
from tests.procs import free_port

SID, TOKEN = "AC" + "a" * 32, "token"
CALLBACK = "https://gateway.example/api/v1/platforms/twilio/receipts"


def platform(**fields) -> TwilioPlatform:
    return TwilioPlatform(Settings(account_sid=SID, auth_token=TOKEN, sender="+15005550006", callback_url=CALLBACK, **fields))


# -- settings -------------------------------------------------------------------------------------------
def test_settings_from_env_and_extras():
    env = {"SMSLAB_TWILIO_ACCOUNT_SID": SID, "SMSLAB_TWILIO_AUTH_TOKEN": "t", "SMSLAB_TWILIO_FROM": "+1",
           "SMSLAB_TWILIO_BASE_URL": "http://127.0.0.1:9090/", "SMSLAB_TWILIO_CONCURRENCY": "3"}
    s = Settings.resolve({}, env)
    assert (s.account_sid, s.sender, s.base_url, s.concurrency, s.callback_url) == (SID, "+1", "http://127.0.0.1:9090", 3, "")
    s = Settings.resolve({"twilio": {"from": "Shop", "name": "twilio-eu"}}, env)
    assert (s.sender, s.name) == ("Shop", "twilio-eu")
    assert Settings.resolve({}, {}).base_url == "https://api.twilio.com" and not Settings.resolve({}, {}).enabled


def test_registration(monkeypatch):
    for var in ("SMSLAB_TWILIO_ACCOUNT_SID", "SMSLAB_TWILIO_AUTH_TOKEN", "SMSLAB_TWILIO_FROM",
                "SMSLAB_TWILIO_MESSAGING_SERVICE_SID", "SMSLAB_TWILIO_CALLBACK_URL"):
        monkeypatch.delenv(var, raising=False)
    assert plugin.smslab_register_platforms(None) == []
    monkeypatch.setenv("SMSLAB_TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("SMSLAB_TWILIO_AUTH_TOKEN", TOKEN)
    with pytest.raises(PlatformConfigError, match="SMSLAB_TWILIO_FROM"):
        plugin.smslab_register_platforms(None)
    monkeypatch.setenv("SMSLAB_TWILIO_MESSAGING_SERVICE_SID", "MG" + "b" * 32)
    monkeypatch.setenv("SMSLAB_TWILIO_CALLBACK_URL", "ftp://nope")
    with pytest.raises(PlatformConfigError, match="SMSLAB_TWILIO_CALLBACK_URL"):
        plugin.smslab_register_platforms(None)
    monkeypatch.setenv("SMSLAB_TWILIO_CALLBACK_URL", CALLBACK)
    [p] = plugin.smslab_register_platforms(None)
    assert p.name == "twilio" and p.describe()["callback_url"] == CALLBACK


# -- submission against a fake Messages API ----------------------------------------------------------------
async def fake_twilio(answers: dict[str, tuple[int, dict]]):
    """A Messages API that answers per ``To`` (default: 201 with a sid); returns (runner, url, seen)."""
    seen: list[dict] = []

    async def create(request: web.Request) -> web.Response:
        form = dict(await request.post())
        seen.append({**form, "_auth": request.headers.get("Authorization")})
        status, body = answers.get(form["To"], (201, {"sid": "SM" + f"{len(seen):032x}", "status": "queued"}))
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post(f"/2010-04-01/Accounts/{SID}/Messages.json", create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", seen


def batch(*numbers: str) -> list[SubmitItem]:
    return [SubmitItem(key=f"k{n}", task_id=1, number=n, text="hi", parts=1) for n in numbers]


def error(code: int, status: int = 400) -> tuple[int, dict]:
    return status, {"code": code, "message": f"error {code}", "more_info": "", "status": status}


async def test_answers_become_results_and_batch_errors(tmp_path):
    runner, url, seen = await fake_twilio({"+2": error(21211), "+3": error(20429, 429), "+4": error(20003, 401),
                                           "+5": error(20503, 503)})
    try:
        async with open_harness(tmp_path) as h:
            p = await h.start(platform(base_url=url))
            ok = await p.submit(batch("+1", "+2"))
            assert ok[0].platform_id.startswith("SM") and (ok[1].platform_id, ok[1].error_code) == (None, "21211")
            assert seen[0]["From"] == "+15005550006" and seen[0]["StatusCallback"] == CALLBACK
            assert seen[0]["_auth"].startswith("Basic ")
            with pytest.raises(Throttled):
                await p.submit(batch("+1", "+3"))  # +1 is answered from the store, +3 throttled
            assert len(seen) == 3
            again = await p.submit(batch("+1"))
            assert again[0].platform_id == ok[0].platform_id and len(seen) == 3  # not sent again
            with pytest.raises(PlatformError) as fatal:
                await p.submit(batch("+6", "+4", "+3"))
            assert not fatal.value.retryable and "20003" in str(fatal.value)
            sent = len(seen)
            assert (await p.submit(batch("+6")))[0].platform_id  # +6 went and was kept despite the batch error
            assert len(seen) == sent
            with pytest.raises(PlatformError) as down:
                await p.submit(batch("+5"))
            assert down.value.retryable and not isinstance(down.value, Throttled)
    finally:
        await runner.cleanup()


async def test_unreachable_is_retryable(tmp_path):
    async with open_harness(tmp_path) as h:
        p = await h.start(platform(base_url=f"http://127.0.0.1:{free_port()}", timeout=5))
        with pytest.raises(PlatformError) as caught:
            await p.submit(batch("+1"))
        assert caught.value.retryable


# -- status callbacks ------------------------------------------------------------------------------------
def signed(params: list[tuple[str, str]], url: str = CALLBACK, token: str = TOKEN) -> tuple[dict, bytes]:
    return {"X-Twilio-Signature": signature(token, url, params)}, urlencode(params).encode()


def callback(status: str, **extra) -> list[tuple[str, str]]:
    return [("AccountSid", SID), ("ApiVersion", "2010-04-01"), ("MessageSid", "SM" + "c" * 32), ("MessageStatus", status),
            ("SmsSid", "SM" + "c" * 32), ("SmsStatus", status), ("To", "+14155552671"), ("From", "+15005550006"),
            *extra.items()]


def test_callbacks_become_receipts():
    p = platform()
    [r] = p.parse_webhook(*signed(callback("delivered")), 1000.0)
    assert r == Receipt(platform_id="SM" + "c" * 32, status="delivered", at=1000.0, code="DELIVERED")
    [r] = p.parse_webhook(*signed(callback("undelivered", ErrorCode="30003")), 1000.0)
    assert (r.status, r.code) == ("failed", "30003") and "Unreachable" in r.message
    [r] = p.parse_webhook(*signed(callback("failed")), 1000.0)
    assert (r.status, r.code) == ("failed", "30008")
    for status in ("queued", "accepted", "sending", "sent", "read"):
        assert p.parse_webhook(*signed(callback(status)), 1000.0) == []


def test_the_sdk_signs_the_same():
    validator = pytest.importorskip("twilio.request_validator").RequestValidator(TOKEN)
    params = callback("delivered", ErrorCode="")
    assert signature(TOKEN, CALLBACK, params) == validator.compute_signature(CALLBACK, dict(params))
    assert validator.validate(CALLBACK, dict(params), signature(TOKEN, CALLBACK, params))


def test_bad_callbacks_are_refused():
    p = platform()
    headers, body = signed(callback("delivered"))
    for bad_headers, bad_body in (({}, body), ({"X-Twilio-Signature": "x"}, body),
                                  (signed(callback("delivered"), token="other")[0], body),
                                  (signed(callback("delivered"), url=CALLBACK + "/")[0], body),
                                  (headers, body + b"&Extra=1")):
        with pytest.raises(WebhookRejected) as caught:
            p.parse_webhook(bad_headers, bad_body, 0.0)
        assert caught.value.status == 401
    with pytest.raises(WebhookRejected) as caught:
        p.parse_webhook(*signed([("AccountSid", SID)]), 0.0)
    assert caught.value.status == 400
    with pytest.raises(WebhookRejected) as caught:
        p.parse_webhook(*signed([("AccountSid", "AC" + "f" * 32), ("MessageSid", "SM1"), ("MessageStatus", "delivered")]), 0.0)
    assert caught.value.status == 401
    # lower-case header names, and the default port added by a proxy, are fine
    assert p.parse_webhook({"x-twilio-signature": headers["X-Twilio-Signature"]}, body, 0.0)
    assert url_variants("https://a.example/x") == ["https://a.example/x", "https://a.example:443/x"]
    assert p.parse_webhook(*signed(callback("delivered"), url="https://gateway.example:443/api/v1/platforms/twilio/receipts"), 0.0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.dictionaries(st.sampled_from(["X-Twilio-Signature", "x-twilio-signature", "Other"]),
                                                st.text(max_size=40), max_size=2))
def test_parse_webhook_never_crashes(body, headers):
    p = platform()
    try:
        out = p.parse_webhook(headers, body, 0.0)
    except WebhookRejected as exc:
        assert 400 <= exc.status < 500
    else:
        assert out == []  # a random body is never signed right


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "AccountSid", "X"]),
                          st.text(max_size=12)), max_size=6))
def test_signed_garbage_never_crashes(params):
    p = platform()
    try:
        out = p.parse_webhook(*signed(params), 0.0)
    except WebhookRejected as exc:
        assert exc.status in (400, 401)
    else:
        assert all(isinstance(r, Receipt) for r in out)
