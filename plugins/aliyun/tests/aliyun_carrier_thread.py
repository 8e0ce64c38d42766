"""``smslab carrier`` with its Alibaba Cloud SMS API, in-process on a thread of its own (for the
conformance suite, which makes a platform per test): the same application ``smslab carrier``
serves, on 127.0.0.1, with a virtual clock."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request

from aiohttp import web

from gateway.ports import free_port
from simulator import profile as profiles
from simulator.providers.aliyun import AliyunApi
from simulator.server import CarrierServer, create_app

HOST = "127.0.0.1"


class CarrierThread:
    def __init__(self, db_path: str, accounts: list[tuple[str, str]], report_url: str | None,
                 profile: profiles.Profile, clock_start: float):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.carrier = CarrierServer(db_path, clock="virtual", clock_start=clock_start, profile=profile, tick=0.01,
                                     provider_accounts=[(key, secret, "aliyun") for key, secret in accounts])
        self.carrier.front_ends.append(AliyunApi(report_url=report_url))
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

    def api(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")
