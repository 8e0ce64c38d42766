"""Helpers for the tests of smslab's Twilio Messages API: ``smslab carrier --twilio SID:TOKEN`` as a
process on 127.0.0.1 (``tests.smsc_support.Carrier``), the official SDK pointed at it, and a
small aiohttp server that takes the status callbacks (in a thread, so that the SDK's blocking
calls and the server can run side by side)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from tests import procs
from tests.procs import free_port
from tests.smsc_support import Carrier


def account_sid(n: int) -> str:
    return f"AC{n:032x}"


def twilio_client(sid: str, token: str, base_url: str, account: str | None = None):
    """The official SDK, pointed at smslab: this is all it takes."""
    from twilio.rest import Client

    client = Client(sid, token, account_sid=account)
    client.api.base_url = base_url  # instead of https://api.twilio.com
    return client


class TwilioCarrier(Carrier):
    """``smslab carrier --clock virtual`` with Twilio accounts (and its SMPP ports, unused)."""

    def __init__(self, tmp: Path, accounts: dict[str, str], *extra: str):
        args = [a for sid, token in accounts.items() for a in ("--twilio", f"{sid}:{token}")]
        super().__init__(tmp, *args, *extra, accounts=())

    def twilio_account(self, sid: str, token: str, **fields) -> dict:
        status, body = self.api("PUT", f"/accounts/{sid}", {"password": token, "protocol": "twilio", **fields})
        assert status in (200, 201), body
        return body

    def settle(self, account: str, timeout: float = 15.0) -> None:
        """Until nothing due for the account waits to be sent or acknowledged."""
        wait_for(lambda: self.api("GET", f"/accounts/{account}")[1]["outbox"]["busy"] == 0, timeout,
                 what=f"the outbox of {account} to settle")

    def journal(self, account: str, command: str | None = None) -> list[dict]:
        items, cursor = [], None
        while True:
            query = f"/journal?account={account}&limit=1000" + (f"&command={command}" if command else "")
            status, page = self.api("GET", query + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200, page
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def wait_for(check, timeout: float = 15.0, interval: float = 0.02, what="a condition"):
    """``tests.procs.wait_for`` with this module's shorter defaults."""
    return procs.wait_for(check, timeout, interval, what)


class CallbackServer:
    """Takes status callbacks at ``/status`` on 127.0.0.1 and keeps each as ``(url, params,
    headers)``. ``fail`` maps (MessageSid, MessageStatus) to how many times to answer 500 first."""

    def __init__(self, path: str = "/status"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.path = path
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.refused: list[tuple[str, dict[str, str]]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the callback server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post(self.path, self._take)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _take(self, request: web.Request) -> web.Response:
        params = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        key = (params.get("MessageSid", ""), params.get("MessageStatus", ""))
        with self._lock:
            if self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                self.refused.append((str(request.url), params))
                return web.Response(status=500, text="not now")
            self.calls.append((str(request.url), params, dict(request.headers)))
        return web.Response(status=204)

    def by_sid(self) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        with self._lock:
            for _, params, _ in self.calls:
                out.setdefault(params["MessageSid"], []).append(params)
        return out

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
