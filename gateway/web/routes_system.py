"""Health, metrics, the OpenAPI document, platform webhooks and the console's static files."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import NotFound
from gateway.platform import WebhookRejected
from gateway.wire.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

from . import schemas as S
from .bodies import json_response, read
from .keys import clock_key, engine_key, leadership_key, metrics_key, platforms_key, sink_key, storage_key, tokens_key
from .middleware import error_body, require_admin
from .openapi import Param, documented, openapi_json

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
routes = web.RouteTableDef()


@routes.get("/healthz")
@documented("Health", "system", response=S.Health, other={503: S.Health}, access="public",
            description="200 when the service works; 503 naming what does not.")
async def healthz(request: web.Request) -> web.Response:
    """200 when the service works; 503 naming what does not: a database that cannot be read, a
    writer whose last transaction failed on the storage (a full disk) and none committed since,
    an engine step that has run for over a minute (the clock's rules are not being applied)."""
    app = request.app
    storage = app[storage_key]
    checks: dict = {}
    try:
        await storage.health.ping()
        checks["database"] = {"status": "ok"}
    except Exception as exc:
        checks["database"] = {"status": "failing", "error": str(exc)}
    write_error = storage.write_error
    checks["writer"] = {"status": "failing", "error": write_error} if write_error else {"status": "ok"}
    if engine_key in app:
        checks["engine"] = app[engine_key].health()
    healthy = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ok" if healthy else "degraded", "clock": app[clock_key].mode, "checks": checks}
    if leadership_key in app:
        leadership = app[leadership_key]
        body["instance"] = {"id": leadership.holder, "leading": leadership.leading, "shared": leadership.shared}
    return json_response(body, status=200 if healthy else 503)


@routes.get("/metrics")
@documented("Prometheus metrics", "system", response={"type": "string"}, content_type="text/plain", access="admin",
            description="The whole service's: an admin token only.")
async def metrics(request: web.Request) -> web.Response:
    require_admin(request)
    m = request.app[metrics_key]
    for status, count in await request.app[storage_key].tasks.count_by_status():
        m.tasks_by_status.labels(status).set(count)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/openapi.json")
@documented("This document", "system", response={"type": "object"}, access="public")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_json(request.app), content_type="application/json")


WEBHOOK_REFUSED = ("the receipts were not accepted: they need the platform's signature or a valid bearer token,"
                   " and this request has neither")


def _refused() -> web.Response:
    response = error_body(401, "webhook_rejected", WEBHOOK_REFUSED)
    response.headers["WWW-Authenticate"] = 'Bearer realm="smslab"'
    return response


@routes.post("/api/v1/platforms/{name}/receipts")
@documented(
    "Receipts pushed by a platform", "platforms", body=S.PushedReceipts, response=S.ReceiptsAccepted,
    access="optional", errors={401: ("webhook_rejected",), 404: ("not_found",)},
    path=(Param("name", S.PlatformName, "the platform"),),
    headers=(Param(TIMESTAMP_HEADER, str, "unix seconds when signed (a platform that signs its webhooks)"),
             Param(SIGNATURE_HEADER, str, "sha256=<hex HMAC-SHA256(secret, timestamp + '.' + body)>")),
    description="Verified by the platform's plugin: a signature, or for the simulated carrier the bearer"
                " token, whose workspace they are then confined to. Answered once they are committed. Every"
                " unauthenticated refusal is the same 401 `webhook_rejected`.",
)
async def platform_receipts(request: web.Request) -> web.Response:
    """Receipts pushed by a platform. The plugin verifies them (signatures), or for a platform
    that takes them from people (the simulated carrier: QA injecting receipts) the caller's
    bearer token, whose workspace they are then confined to. The answer comes only after they
    are committed.

    Every unauthenticated refusal is the same 401, whether or not a platform of that name is
    installed, so the route cannot be used to learn which platforms are (the detail is logged)."""
    app = request.app
    name = request.match_info["name"]
    platform = app[platforms_key].get(name)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    principal = await app[tokens_key].lookup(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if platform is None:
        if principal is None:
            return _refused()
        raise NotFound(f"no platform named {name!r}")
    take = getattr(platform, "take_webhook", None)
    if take is not None:
        # a provider that wants its own answer (Alibaba Cloud: {"code": 0}) and its own check (a
        # secret token in the query, since it signs nothing) takes the whole request; it
        # commits before it answers, and refuses with _refused() like this route does
        return await take(request)
    workspace = None
    if getattr(platform, "webhook_requires_token", False):
        if principal is None:
            return _refused()
        workspace = principal.workspace_id
    raw = await read(request)
    try:
        receipts = platform.parse_webhook(dict(request.headers), raw, app[clock_key].now())
    except WebhookRejected as exc:
        if exc.status == 401 or (exc.status == 404 and principal is None):
            log.info("receipts for platform %s refused: %s", name, exc)
            return _refused()
        message = str(exc)
        field = None
        if exc.status == 400:  # "receipts.0.status: ..." names its field; a 400 always names one
            head = message.split(": ", 1)[0] if ": " in message else ""
            field = head if head and " " not in head else "body"
        return error_body(exc.status, "invalid_request" if exc.status == 400 else "not_found", message, field)
    await app[sink_key].deliver(name, receipts, workspace=workspace)
    return json_response({"accepted": len(receipts)})


@routes.get("/")
@documented("The web console", "system", response={"type": "string"}, content_type=("text/html", "text/plain"),
            access="public", description="Opened as `/#token=TOKEN` it signs in with that token (text/plain: an"
                                         " install without the console).")
async def console(request: web.Request) -> web.Response:
    index = STATIC / "index.html"
    if not index.is_file():
        return web.Response(text="smslab: the console is not built into this install", content_type="text/plain")
    return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
