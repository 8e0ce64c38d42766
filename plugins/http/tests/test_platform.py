"""The http platform against a stand-in carrier and against the real carrier server (in-process)."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from gateway.ports import free_port
from gateway.platform import PlatformContext, PlatformError, SubmitItem, Throttled
from smslab_http.plugin import HttpCarrier, Settings, smslab_register_platforms

HOST = "127.0.0.1"
SECRET = "s3cret"


@asynccontextmanager
async def serve(app: web.Application):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def platform_for(url: str):
    p = HttpCarrier(Settings(name="http", url=url, secret=SECRET, timeout=5))

    async def deliver(name, receipts):
        return None

    await p.start(PlatformContext(clock=None, database=None, deliver_receipts=deliver, config=None))
    try:
        yield p
    finally:
        await p.stop()


BATCH = [SubmitItem(key=f"7-{i}", task_id=7, number=f"+8613800138{i:03d}", text="hi", parts=1) for i in range(3)]


def stand_in(status: int, body: dict | None = None, headers: dict | None = None) -> web.Application:
    app = web.Application()
    seen = []

    async def submit(request):
        seen.append(await request.json())
        if status == 200 and body is None:
            msgs = seen[-1]["messages"]
            return web.json_response({"results": [{"key": m["key"], "platform_id": f"x-{m['key']}"} for m in msgs]})
        return web.json_response(body or {"error": {"code": "e", "message": "nope"}}, status=status, headers=headers)

    async def profile(request):
        return web.json_response({"max_recipients": 5, "moderation": {"banned_words": ["casino"], "review_seconds": 12}})

    app.router.add_post("/submit", submit)
    app.router.add_get("/profile", profile)
    app[SEEN] = seen
    return app


SEEN = web.AppKey("seen", list)


def test_registers_one_platform_named_by_settings(monkeypatch):
    monkeypatch.setenv("SMSLAB_HTTP_NAME", "vendor")
    monkeypatch.setenv("SMSLAB_HTTP_SECRET", "x")
    [p] = smslab_register_platforms(config=None)
    assert p.name == "vendor"
    assert p.webhook_requires_token is False


def test_registers_nothing_without_a_secret(monkeypatch):
    monkeypatch.delenv("SMSLAB_HTTP_SECRET", raising=False)
    assert smslab_register_platforms(config=None) == []


async def test_submit_sends_the_batch_and_maps_results():
    app = stand_in(200)
    async with serve(app) as url, platform_for(url) as p:
        results = await p.submit(BATCH)
        assert [r.platform_id for r in results] == ["x-7-0", "x-7-1", "x-7-2"]
        sent = app[SEEN][0]["messages"][0]
        assert sent == {"key": "7-0", "number": "+8613800138000", "text": "hi", "parts": 1, "task_id": 7}
        # what the carrier's profile says is cached from start
        assert p.max_recipients() == 5 and p.moderation_delay() == 12.0
        assert p.describe()["receipts"] == "webhook"


async def test_429_is_throttled_with_the_carriers_retry_after():
    async with serve(stand_in(429, headers={"Retry-After": "0.25"})) as url, platform_for(url) as p:
        with pytest.raises(Throttled) as exc:
            await p.submit(BATCH)
        assert exc.value.retryable and exc.value.retry_after == 0.25


async def test_5xx_is_retryable_and_4xx_is_not():
    async with serve(stand_in(503)) as url, platform_for(url) as p:
        with pytest.raises(PlatformError) as exc:
            await p.submit(BATCH)
        assert exc.value.retryable and not isinstance(exc.value, Throttled)
    async with serve(stand_in(400)) as url, platform_for(url) as p:
        with pytest.raises(PlatformError) as exc:
            await p.submit(BATCH)
        assert not exc.value.retryable and "nope" in str(exc.value)


async def test_an_unreachable_carrier_is_a_retryable_error():
    async with platform_for(f"http://{HOST}:{free_port()}") as p:
        started = time.monotonic()
        with pytest.raises(PlatformError) as exc:
            await p.submit(BATCH)
        assert exc.value.retryable and "unreachable" in str(exc.value)
        assert time.monotonic() - started < 5
        # moderation falls back to the cached word list (empty here) instead of failing
        assert await p.moderate("hello", {}) == []


async def test_against_the_real_carrier_server(tmp_path):
    from simulator import profile as profiles
    from simulator.server import CarrierServer, create_app

    profile = profiles.from_builtins({"seed": 1, "moderation": {"banned_words": ["lottery"], "review_seconds": 0}})
    carrier = CarrierServer(str(tmp_path / "c.db"), profile=profile)
    async with serve(create_app(carrier)) as url, platform_for(url) as p:
        first = await p.submit(BATCH)
        again = await p.submit(BATCH)  # idempotent by key
        assert [r.platform_id for r in first] == [r.platform_id for r in again]
        assert all(r.platform_id and r.error_code is None for r in first)
        assert await p.moderate("win the lottery", {}) == ['the content contains the banned word "lottery"']
        assert p.moderation_delay() == 0.0
