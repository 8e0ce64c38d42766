"""JSON for the errors aiohttp answers itself, before any handler or middleware runs.

A request line that is too long, a malformed header or ``Content-Length``, a body that is not
valid chunked encoding: aiohttp's HTTP parser refuses these in ``RequestHandler.handle_error``,
which writes ``text/plain``. Clients of an API expect every error in one shape, so the service
answers these as ``{"error": {"code", "message"}}`` too.

aiohttp offers no hook for this (the request handler class is built by ``web.Server`` and
``Application._make_handler``), so ``install()`` wraps ``handle_error`` once per process: the
original still logs and checks that nothing was sent yet; only the response it built is replaced.
Every aiohttp server in the process is smslab's own (the gateway, the standalone carrier).
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from aiohttp import web, web_protocol

_CODES = {400: "invalid_request", 408: "request_timeout", 413: "body_too_large", 414: "uri_too_long",
          431: "headers_too_large", 500: "internal_error", 504: "timeout"}


def json_error(status: int, message: str) -> web.Response:
    code = _CODES.get(status, "invalid_request" if 400 <= status < 500 else "internal_error")
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, content_type="application/json")


def _message(status: int, exc: BaseException | None, message: str | None) -> str:
    if status >= 500:
        return "the service hit an unexpected error; it was logged"
    text = message or (str(exc) if exc else "") or HTTPStatus(status).phrase
    # the parser's messages look like "Bad Request: Got more than 8190 bytes ..."; keep one line
    return " ".join(text.split())[:300]


def install() -> None:
    original = web_protocol.RequestHandler.handle_error
    if getattr(original, "_smslab_json", False):
        return

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        plain = original(self, request, status, exc, message)
        response = json_error(status, _message(status, exc, message))
        response.force_close()
        for header in ("Allow",):
            if header in plain.headers:
                response.headers[header] = plain.headers[header]
        return response

    handle_error._smslab_json = True  # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = handle_error
