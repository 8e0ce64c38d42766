"""The aliyun platform passes smslab's platform conformance suite against ``smslab carrier``'s
Alibaba Cloud SMS API (in-process, on a thread, with a virtual clock that moves with the
harness's). Reports come the way they do in production: the carrier pushes ``SmsReport`` arrays to
the plugin's own route (``/api/v1/platforms/aliyun/{token}/receipts``, served here by a small
aiohttp app in the test's loop), which hands them to the harness's ``deliver_receipts``; a
hand-off that fails is answered with a non-zero code, and the carrier pushes it again 60 s later."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from aliyun_carrier_thread import HOST, CarrierThread, free_port
from gateway.testing.conformance import START, PlatformConformance, _make, open_harness
from simulator import profile as profiles
from smslab_aliyun.plugin import AliyunPlatform, Settings, _push_route

KEY, SECRET, TOKEN = "LTAIconformance", "conformance-secret", "push-token-1"

PROFILE = profiles.from_builtins({
    "seed": 11,
    "outcomes": {"delivered": 0.8, "failed": 0.15, "missing": 0.05},
    "receipt_delay": {"kind": "uniform", "low": 0.5, "high": 300},
})


class TestAliyunConformance(PlatformConformance):
    min_receipt_share = 0.9

    @pytest.fixture
    def push_port(self):
        return free_port()

    @pytest.fixture
    def carrier(self, tmp_path, push_port):
        url = f"http://{HOST}:{push_port}/api/v1/platforms/aliyun/{TOKEN}/receipts"
        with CarrierThread(str(tmp_path / "carrier.db"), [(KEY, SECRET)], url, PROFILE, START) as c:
            yield c

    @pytest.fixture
    def platform_factory(self, carrier, push_port):
        self.carrier_thread = carrier
        self.push_port = push_port
        return lambda: AliyunPlatform(Settings(name="aliyun", access_key_id=KEY, access_key_secret=SECRET,
                                               endpoint=carrier.url, report_token=TOKEN, timeout=10))

    def run(self, scenario, platform_factory, tmp_path):
        async def main() -> None:
            async with open_harness(tmp_path / "harness", extras=self.harness_extras) as h:
                h.on_advance.append(lambda seconds: self.advance_peers(h, seconds))
                app = web.Application()
                app.router.add_post("/api/v1/platforms/{name}/{token}/receipts", _push_route)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                await web.TCPSite(runner, HOST, self.push_port).start()
                try:
                    platform = await h.start(await _make(platform_factory))
                    await scenario(h, platform, platform_factory)
                finally:
                    await runner.cleanup()

        asyncio.run(main())

    async def advance_peers(self, h, seconds: float) -> None:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.carrier_thread.url}/clock/advance", json={"seconds": seconds}) as resp:
                assert resp.status == 200
            deadline = time.monotonic() + 20
            while True:  # every push that fell due was answered
                async with s.get(f"{self.carrier_thread.url}/accounts/{KEY}") as resp:
                    if (await resp.json())["outbox"]["busy"] == 0:
                        return
                assert time.monotonic() < deadline, "the carrier's pushes did not settle"
                await asyncio.sleep(0.01)
