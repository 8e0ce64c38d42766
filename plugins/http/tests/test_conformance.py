"""The http platform passes smslab's platform conformance suite, against a real carrier server
(``simulator.server``) running on 127.0.0.1 in a thread of its own, with a virtual clock that
moves with the harness's clock. Receipts come the way they do in production: the carrier pushes
signed webhooks, a small receiver verifies them with ``parse_webhook`` and hands them to the
harness's ``deliver_receipts`` (the gateway's role)."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from aiohttp import web

from gateway.ports import free_port
from gateway.testing.conformance import START, DeliveryFailed, PlatformConformance
from simulator import profile as profiles
from simulator.server import CarrierServer, create_app
from smslab_http.plugin import HttpCarrier, Settings

HOST = "127.0.0.1"
SECRET = "conformance-secret"


class CarrierThread:
    """A carrier server on its own event loop in a daemon thread."""

    def __init__(self, db_path: str, callback: str, profile: profiles.Profile):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.carrier = CarrierServer(db_path, clock="virtual", clock_start=START, profile=profile,
                                     callback=callback, secret=SECRET, tick=0.01)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(create_app(self.carrier), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, HOST, self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10), "the carrier did not start"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


PROFILE = profiles.from_builtins({
    "seed": 11,
    "outcomes": {"delivered": 0.8, "failed": 0.15, "missing": 0.05},
    "receipt_delay": {"kind": "uniform", "low": 0.5, "high": 300},
    "moderation": {"banned_words": ["lottery"], "review_seconds": 0},
})


class TestHttpConformance(PlatformConformance):
    min_receipt_share = 0.9
    # the carrier retries a refused webhook 60/300/600 s later; that path is covered in
    # tests/test_carrier_http.py, since the suite's hand-off test drives only on_clock
    redelivers_after_failed_handoff = False

    @pytest.fixture
    def hook_port(self):
        return free_port()

    @pytest.fixture
    def carrier(self, tmp_path, hook_port):
        with CarrierThread(str(tmp_path / "carrier.db"), f"http://{HOST}:{hook_port}/hook", PROFILE) as c:
            yield c

    @pytest.fixture
    def platform_factory(self, carrier, hook_port):
        self.carrier_url = carrier.url
        self.hook_port = hook_port
        return lambda: HttpCarrier(Settings(name="http", url=carrier.url, secret=SECRET, timeout=10))

    async def collect(self, h, platform):
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            receipts = platform.parse_webhook(dict(request.headers), body, h.clock.now())
            try:
                await h.deliver_receipts(platform.name, receipts)
            except DeliveryFailed:
                return web.json_response({"error": {"code": "not_committed"}}, status=503)
            return web.json_response({"accepted": len(receipts)})

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, self.hook_port).start()
        try:
            async with aiohttp.ClientSession() as s:
                for step in self.receipt_schedule:
                    await h.advance(step)
                    async with s.post(f"{self.carrier_url}/clock/advance", json={"seconds": step}) as resp:
                        assert resp.status == 200
                    async with s.post(f"{self.carrier_url}/deliver") as resp:
                        assert resp.status == 200
        finally:
            await runner.cleanup()
