"""Request bodies: one typed msgspec decoder per body type, built once, and errors that name
the field ("name: Expected `str`, got `int`")."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from gateway.errors import Invalid, TooLarge

T = TypeVar("T")
_decoders: dict[type, msgspec.json.Decoder] = {}
_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def field_error(exc: msgspec.ValidationError) -> Invalid:
    match = _PATH.match(str(exc))
    message, path = (match.group("msg"), match.group("path")) if match else (str(exc), None)
    field = (path or "").lstrip(".").replace("[", ".").replace("]", "") or "body"
    if message.startswith("Object missing required field"):
        missing = message.split("`")[1]
        field = f"{field}.{missing}" if field != "body" else missing
        return Invalid(f"{field}: required", field=field)
    if message.startswith("Object contains unknown field"):
        unknown = message.split("`")[1]
        field = f"{field}.{unknown}" if field != "body" else unknown
        return Invalid(f"{field}: unknown field", field=field)
    return Invalid(f"{field}: {message}", field=field)


def decode(data: bytes, type_: type[T]) -> T:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    if not data.strip():
        raise Invalid("body: a JSON body is required", field="body")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise field_error(exc) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"body: malformed JSON ({exc})", field="body") from None


async def read(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"body: larger than the limit of {request.app._client_max_size} bytes", field="body") from None


async def body(request: web.Request, type_: type[T]) -> T:
    return decode(await read(request), type_)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")
