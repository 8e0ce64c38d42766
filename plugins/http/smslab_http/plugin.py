"""The ``http`` platform: submits to a carrier over HTTP (``smslab carrier`` or anything that
speaks its API) and takes its receipts as signed webhooks at
``POST /api/v1/platforms/{name}/receipts``.

Settings (``config.extras["http"]`` wins over the environment, which wins over the defaults):

=============  ===========================  ==========================
extras key     environment variable         default
=============  ===========================  ==========================
``name``       ``SMSLAB_HTTP_NAME``         ``http``
``url``        ``SMSLAB_HTTP_CARRIER_URL``  ``http://127.0.0.1:9090``
``secret``     ``SMSLAB_HTTP_SECRET``       (none: the platform is not registered)
``token``      ``SMSLAB_HTTP_CARRIER_TOKEN`` (none) the carrier's ``--token`` for its API
``timeout``    ``SMSLAB_HTTP_TIMEOUT``      ``30`` (seconds per submission)
=============  ===========================  ==========================
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp
import msgspec

from gateway.hookspecs import hookimpl
from gateway.wire.codes import error_text
from gateway.platform import Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult, Throttled
from gateway.wire import webhooks

log = logging.getLogger("smslab.http")

PROFILE_REFRESH = 2.0  # real seconds between looks at the carrier's profile (moderation, limits)


@dataclass
class Settings:
    name: str = "http"
    url: str = "http://127.0.0.1:9090"
    secret: str = ""
    token: str = ""
    timeout: float = 30.0

    @classmethod
    def resolve(cls, extras: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        given = dict((extras or {}).get("http") or {})
        s = cls()
        s.name = str(given.get("name") or env.get("SMSLAB_HTTP_NAME") or s.name)
        s.url = str(given.get("url") or given.get("carrier_url") or env.get("SMSLAB_HTTP_CARRIER_URL") or s.url).rstrip("/")
        s.secret = str(given.get("secret") or env.get("SMSLAB_HTTP_SECRET") or "")
        s.token = str(given.get("token") or env.get("SMSLAB_HTTP_CARRIER_TOKEN") or "")
        s.timeout = float(given.get("timeout") or env.get("SMSLAB_HTTP_TIMEOUT") or s.timeout)
        return s


class _Result(msgspec.Struct):
    key: str
    platform_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class _Results(msgspec.Struct):
    results: list[_Result]


_results_decoder = msgspec.json.Decoder(_Results)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(body: bytes) -> str:
    try:
        data = msgspec.json.decode(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message") or data["error"].get("code"))
    except msgspec.DecodeError:
        pass
    return body[:200].decode(errors="replace")


class HttpCarrier(Platform):
    description = "An SMS carrier reached over HTTP (smslab carrier): batches to /submit, receipts as signed webhooks."
    webhook_requires_token = False  # webhooks carry an HMAC signature instead; see parse_webhook

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.resolve()
        self.name = self.settings.name
        self._session: aiohttp.ClientSession | None = None
        self._profile: dict = {}
        self._profile_at = float("-inf")
        self._refreshing: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else None
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout), headers=headers)
        if not self.settings.secret:
            log.info("platform %s: no SMSLAB_HTTP_SECRET; every webhook will be refused", self.name)
        await self._refresh_profile()

    async def stop(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            try:
                await self._refreshing
            except (asyncio.CancelledError, Exception):
                pass
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str) -> str:
        return f"{self.settings.url}{path}"

    async def _refresh_profile(self) -> None:
        """Read the carrier's profile for its moderation delay, banned words and recipient limit.
        Best effort: an unreachable carrier keeps the last values seen."""
        self._profile_at = time.monotonic()
        if self._session is None:
            return
        try:
            async with self._session.get(self._url("/profile"), timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    self._profile = msgspec.json.decode(await resp.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, msgspec.DecodeError) as exc:
            log.debug("platform %s: profile not read from %s: %s", self.name, self.settings.url, exc)

    async def on_clock(self, now: float) -> None:
        # receipts come by webhook; the clock only refreshes the cached profile, in the background
        if time.monotonic() - self._profile_at >= PROFILE_REFRESH and (self._refreshing is None or self._refreshing.done()):
            self._profile_at = time.monotonic()
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_profile())

    # -- what the carrier allows --------------------------------------------------------------------
    def max_recipients(self) -> int | None:
        value = self._profile.get("max_recipients")
        return int(value) if isinstance(value, (int, float)) else None

    def moderation_delay(self) -> float:
        value = (self._profile.get("moderation") or {}).get("review_seconds")
        return float(value) if isinstance(value, (int, float)) else 0.0

    async def moderate(self, text: str, task: dict) -> list[str]:
        if self._session is not None:
            try:
                async with self._session.post(self._url("/moderate"), json={"text": text},
                                              timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    if resp.status == 200:
                        reasons = (msgspec.json.decode(await resp.read()) or {}).get("reasons") or []
                        return [str(r) for r in reasons]
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, msgspec.DecodeError, AttributeError) as exc:
                log.warning("platform %s: moderation by the carrier failed (%s); using the cached word list", self.name, exc)
        lowered = text.lower()
        words = (self._profile.get("moderation") or {}).get("banned_words") or []
        return [f'the content contains the banned word "{w}"' for w in words if str(w).lower() in lowered]

    def describe(self) -> dict:
        info = super().describe()
        info.update(receipts="webhook", carrier_url=self.settings.url, signed=bool(self.settings.secret))
        return info

    # -- submission ----------------------------------------------------------------------------------
    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        if self._session is None:
            raise PlatformError(f"platform {self.name} is not started", retryable=True)
        payload = msgspec.json.encode({"messages": [
            {"key": i.key, "number": i.number, "text": i.text, "parts": i.parts, "task_id": i.task_id} for i in batch
        ]})
        try:
            async with self._session.post(self._url("/submit"), data=payload,
                                          headers={"Content-Type": "application/json"}) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise PlatformError(f"the carrier at {self.settings.url} is unreachable: {type(exc).__name__} {exc}".rstrip(),
                                retryable=True) from None
        if status == 429:
            raise Throttled(f"the carrier is throttling: {_error_message(body)}",
                            retry_after=retry_after if retry_after is not None else 0.05)
        if status >= 500 or status == 408:
            raise PlatformError(f"the carrier answered {status}: {_error_message(body)}", retryable=True, retry_after=retry_after)
        if status != 200:
            raise PlatformError(f"the carrier refused the batch ({status}): {_error_message(body)}", retryable=False)
        try:
            results = _results_decoder.decode(body).results
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise PlatformError(f"the carrier answered with an unreadable body: {exc}", retryable=True) from None
        by_key = {r.key: r for r in results}
        out = []
        for item in batch:
            r = by_key.get(item.key)
            if r is None:
                out.append(SubmitResult(item.key, None, "NO_RESULT", "the carrier returned no result for this number"))
            else:
                out.append(SubmitResult(item.key, r.platform_id, r.error_code, r.error_message))
        return out

    # -- receipts ------------------------------------------------------------------------------------
    def parse_webhook(self, headers: dict[str, str], body: bytes, now: float) -> list[Receipt]:
        """401 for a missing or wrong signature or a timestamp more than 5 minutes from now (the
        wall clock, or the service clock when it is virtual); 400 for a body that does not decode."""
        webhooks.verify(self.settings.secret, headers, body, also_now=now)
        return webhooks.decode_receipts(body, now, error_text)




@hookimpl
def smslab_register_platforms(config):
    """One ``http`` platform, once it has a shared secret: without one every webhook would be
    refused, so an installed but unconfigured plugin stays out of the platform list."""
    extras = getattr(config, "extras", None) or {}
    settings = Settings.resolve(extras)
    if not settings.secret:
        global _told
        if not _told:  # once per process, and only for whoever asked to see info
            _told = True
            log.info("platform %r is off: to send through `smslab carrier`, set SMSLAB_HTTP_SECRET to the carrier's"
                     " --secret (and SMSLAB_HTTP_CARRIER_URL, SMSLAB_HTTP_CARRIER_TOKEN if it is not at %s without one)",
                     settings.name, Settings.url)
        return []
    return [HttpCarrier(settings)]


_told = False
