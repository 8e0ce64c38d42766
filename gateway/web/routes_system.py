"""Health, metrics, the OpenAPI document, platform webhooks and the console's static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import NotFound
from gateway.platform import WebhookRejected

from .bodies import json_response, read
from .keys import clock_key, db_key, metrics_key, platforms_key, sink_key, tokens_key
from .middleware import error_body
from .openapi import openapi_document

STATIC = Path(__file__).parent / "static"
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    await request.app[db_key].fetchone("SELECT 1")
    return json_response({"status": "ok", "clock": request.app[clock_key].mode})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    m = request.app[metrics_key]
    for status, count in await request.app[db_key].fetchall("SELECT status, COUNT(*) FROM tasks GROUP BY status"):
        m.tasks_by_status.labels(status).set(count)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


@routes.post("/api/v1/platforms/{name}/receipts")
async def platform_receipts(request: web.Request) -> web.Response:
    """Receipts pushed by a platform. The plugin verifies them (signatures, or for the simulated
    carrier a bearer token); the answer comes only after they are committed."""
    name = request.match_info["name"]
    platform = request.app[platforms_key].get(name)
    if platform is None:
        raise NotFound(f"no platform named {name!r}")
    if getattr(platform, "webhook_requires_token", False):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or await request.app[tokens_key].lookup(token.strip()) is None:
            return error_body(401, "unauthorized", "missing or invalid bearer token")
    raw = await read(request)
    try:
        receipts = platform.parse_webhook(dict(request.headers), raw, request.app[clock_key].now())
    except WebhookRejected as exc:
        return error_body(exc.status, "webhook_rejected" if exc.status == 401 else "invalid_request", str(exc))
    await request.app[sink_key].deliver(name, receipts)
    return json_response({"accepted": len(receipts)})


@routes.get("/")
async def console(request: web.Request) -> web.Response:
    index = STATIC / "index.html"
    if not index.is_file():
        return web.Response(text="smslab: the console is not built into this install", content_type="text/plain")
    return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
