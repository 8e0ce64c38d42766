"""Several instances, one gateway, at the HTTP edge (SPEC §11).

Any instance answers any call from the shared database, except for the few that act on what
only the leader holds in memory (``gateway.pipeline.leadership``): advancing the virtual clock
(the leader walks the engine from event to event) and the in-process carrier's control surface
(its profiles, queue of receipts and ground truth live with the leader's carrier). An instance
that does not lead forwards those, unchanged, to the leader's announced URL and hands back its
answer; with no leader reachable they get a 503 ``no_leader`` (try again: another instance takes
the lead within ``SMSLAB_LEASE_SECONDS``).

Every other request on an instance that does not lead first reads the shared virtual clock, so
a task created at one instance right after an advance at another sees the advanced time.
"""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import web

from .keys import clock_key, leadership_key, storage_key
from .middleware import error_body

log = logging.getLogger(__name__)

LEADER_ONLY = ("/api/v1/clock/advance", "/api/v1/simulator/")
FORWARDED_HEADER = "X-Smslab-Forwarded"
_PASSED_HEADERS = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")
_client_key = web.AppKey("forwarding_client", aiohttp.ClientSession)


def leader_only(path: str) -> bool:
    return path == LEADER_ONLY[0] or path.startswith(LEADER_ONLY[1])


@web.middleware
async def follow_the_leader(request: web.Request, handler):
    leadership = request.app.get(leadership_key)
    if leadership is None or leadership.leading or not leadership.shared:
        return await handler(request)
    if leader_only(request.path) and FORWARDED_HEADER not in request.headers:
        return await _forward(request, leadership)
    clock = request.app[clock_key]
    if clock.mode == "virtual":
        await follow_clock(clock, request.app[storage_key].state)
    return await handler(request)


async def follow_clock(clock, state) -> None:
    """Set a virtual clock to the leader's, as last saved (moved on by its rate since then)."""
    saved = await state.virtual_clock()
    if saved is None:
        return
    now, saved_at = saved
    clock.resume(now + max(time.time() - saved_at, 0.0) * clock.rate if clock.rate else now)


async def _forward(request: web.Request, leadership) -> web.StreamResponse:
    url = await leadership.leader_url()
    if not url:
        return error_body(503, "no_leader", "no instance leads the gateway right now (one takes over within"
                                            " SMSLAB_LEASE_SECONDS); try again")
    client = request.app[_client_key]
    headers = {h: request.headers[h] for h in _PASSED_HEADERS if h in request.headers}
    headers[FORWARDED_HEADER] = leadership.holder
    body = await request.read()
    try:
        async with client.request(request.method, url.rstrip("/") + request.path_qs, data=body or None,
                                  headers=headers) as answer:
            payload = await answer.read()
            return web.Response(status=answer.status, body=payload,
                                headers={k: v for k, v in answer.headers.items() if k in ("Content-Type",)})
    except aiohttp.ClientError as exc:
        log.warning("could not forward %s %s to the leader at %s: %s", request.method, request.path, url, exc)
        return error_body(503, "no_leader", f"the leading instance ({url}) did not answer; try again")


def open_forwarding(app: web.Application) -> None:
    """The client that forwards to the leader (only where instances share the database)."""
    app[_client_key] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))


async def close_forwarding(app: web.Application) -> None:
    client = app.get(_client_key)
    if client is not None:
        await client.close()
