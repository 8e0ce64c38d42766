"""Helpers for the Alibaba Cloud SMS tests: the official SDK pointed at ``smslab carrier``, and a
small receiver of the carrier's ``SmsReport``/``SmsUp`` pushes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web

from tests.procs import free_port, wait_for


def sdk_client(port: int, key_id: str, secret: str, signature_algorithm: str | None = None):
    """The official SDK, pointed at the carrier: the snippet docs/providers.md shows."""
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=f"127.0.0.1:{port}", protocol="http",
                         signature_algorithm=signature_algorithm))


class Receiver:
    """An HTTP server in a thread of its own that records every push (``pushes``: (path, type
    header, JSON body)) and answers the next of ``answers[path]`` (default ``{"code": 0}``)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pushes: list[tuple[str, str, object]] = []
        self.answers: dict[str, list[tuple[int, object]]] = {}
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def take(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            with self._lock:
                self.pushes.append((request.path, request.headers.get("X-Smslab-Push", ""), body))
                queued = self.answers.get(request.path)
                status, answer = queued.pop(0) if queued else (200, {"code": 0, "msg": "ok"})
            return web.json_response(answer, status=status)

        app = web.Application()
        app.router.add_post("/{tail:.*}", take)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def items(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [item for p, _, body in self.pushes if path is None or p == path for item in (body or [])]

    def wait(self, check, timeout: float = 20.0, what: str = "pushes"):
        return wait_for(check, timeout, 0.02, what=lambda: f"{what}; pushes so far: {self.pushes!r}"[:3000])
