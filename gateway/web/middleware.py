"""Errors as JSON, and bearer-token authentication for /api/v1."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.auth import Principal
from gateway.errors import Forbidden, ServiceError
from gateway.storage.errors import StorageUnavailable

from .bodies import json_response, refuse_declared_length
from .keys import config_key, metrics_key, tokens_key

log = logging.getLogger(__name__)

PUBLIC = ("/healthz", "/api/openapi.json", "/static/", "/favicon.ico")
workspace_key = web.RequestKey("workspace_id", int)  # the caller's workspace id, set for every authenticated request
principal_key = web.RequestKey("principal", Principal)  # the caller as a gateway.auth.Principal

_HTTP_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 410: "gone", 413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request",
}


def error_body(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    err = {"code": code, "message": message}
    if field:
        err["field"] = field
    return json_response({"error": err}, status=status)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        response = await handler(request)
    except ServiceError as exc:
        response = error_body(exc.status, exc.code, exc.message, exc.field)
        if exc.status in (408, 413):  # the rest of the body is not read: the connection cannot go on
            response.force_close()
    except StorageUnavailable as exc:
        # the storage refused (a full disk, a failing file): nothing was committed; try later
        log.warning("storage error on %s %s: %s", request.method, request.path, exc)
        response = error_body(503, "storage_unavailable", f"the service cannot write now ({exc}); nothing was changed, try again")
        response.headers["Retry-After"] = "5"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = error_body(exc.status, _HTTP_CODES.get(exc.status, "error"), message)
        for header in ("Allow", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_body(500, "internal_error", "the service hit an unexpected error; it was logged")
    request.app[metrics_key].http_requests.labels(request.method, str(response.status)).inc()
    return response


@web.middleware
async def body_limit(request: web.Request, handler):
    """A declared body over the limit is refused before it is read (413 at once, not after a
    2 GB upload): CSV audiences may be large, everything else is a JSON body."""
    declared = request.content_length
    if declared:
        config = request.app[config_key]
        csv_upload = request.path == "/api/v1/audiences" and request.content_type in ("text/csv", "application/csv", "text/plain")
        limit = config.max_csv_body if csv_upload else config.max_json_body
        refuse_declared_length(request, limit)
    return await handler(request)


def _is_public(request: web.Request) -> bool:
    path = request.path
    if path == "/" or path.startswith(PUBLIC):
        return True
    # platform webhooks are authenticated by the platform plugin (signatures), see routes_system
    return request.method == "POST" and path.startswith("/api/v1/platforms/") and path.endswith("/receipts")


@web.middleware
async def auth(request: web.Request, handler):
    if _is_public(request):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    found = await request.app[tokens_key].lookup(token.strip())
    if found is None:
        return _unauthorized("the token is not valid")
    request[workspace_key] = found.workspace_id
    request[principal_key] = found
    return await handler(request)


def require_admin(request: web.Request) -> Principal:
    """Service-wide controls (the clock, metrics) act on every workspace: only an admin token
    (``smslab token create --admin``, or the one ``smslab serve`` prints) may use them."""
    principal: Principal = request[principal_key]
    if not principal.admin:
        raise Forbidden(
            "this control acts on the whole service, so it needs an admin token (smslab token create --admin);"
            f" the token of workspace {principal.workspace!r} is not one",
            code="admin_required",
        )
    return principal


def _unauthorized(message: str) -> web.Response:
    response = error_body(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="smslab"'
    return response
