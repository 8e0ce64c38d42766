"""Request bodies: one typed msgspec decoder per body type, built once, and errors that name
the field ("name: Expected `str`, got `int`")."""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator, TypeVar

import msgspec
from aiohttp import web

from gateway.errors import Invalid, Timeout, TooLarge

T = TypeVar("T")
_decoders: dict[type, msgspec.json.Decoder] = {}
_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def field_error(exc: msgspec.ValidationError, type_: Any = None) -> Invalid:
    """The 400 for a body that does not decode as ``type_``, naming the field; a value outside
    an enum is told the values allowed ("sms_type: Invalid enum value 'spam'; one of ...")."""
    match = _PATH.match(str(exc))
    message, path = (match.group("msg"), match.group("path")) if match else (str(exc), None)
    field = (path or "").lstrip(".").replace("[", ".").replace("]", "") or "body"
    if message.startswith("Invalid enum value") and type_ is not None:
        allowed = enum_values(type_, path or "")
        if allowed:
            message = f"{message}; one of {', '.join(map(str, allowed))}"
    if message.startswith("Object missing required field"):
        missing = _quoted(message)
        field = f"{field}.{missing}" if field != "body" else missing
        return Invalid(f"{field}: required", field=field)
    if message.startswith("Object contains unknown field"):
        unknown = _quoted(message)
        if not unknown:  # a key "": the object holding it is the field at fault
            return Invalid(f'{field}: unknown field ""', field=field)
        field = f"{field}.{unknown}" if field != "body" else unknown
        return Invalid(f"{field}: unknown field", field=field)
    return Invalid(f"{field}: {message}", field=field)


def _quoted(message: str) -> str:
    """The name msgspec quotes in backticks (a key may hold backticks itself)."""
    return message[message.index("`") + 1 : message.rindex("`")]


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def enum_values(type_: Any, path: str) -> tuple | None:
    """The values of the ``Literal`` found at ``path`` (msgspec's ``.a[0].b``) inside ``type_``."""
    node = msgspec.inspect.type_info(type_)
    for name, _index in _STEP.findall(path):
        node = _step(node, name)
        if node is None:
            return None
    node = _unwrap(node)
    if isinstance(node, msgspec.inspect.UnionType):
        members = [_unwrap(t) for t in node.types]
        values = [v for t in members if isinstance(t, msgspec.inspect.LiteralType) for v in t.values]
        return tuple(values) or None
    return tuple(node.values) if isinstance(node, msgspec.inspect.LiteralType) else None


def _unwrap(node):
    while isinstance(node, msgspec.inspect.Metadata):
        node = node.type
    return node


def _step(node, name: str):
    """The type one step down: a field of a struct (``name``), or an item of a list or a dict."""
    node = _unwrap(node)
    i = msgspec.inspect
    if isinstance(node, i.UnionType):
        for member in node.types:
            found = _step(member, name)
            if found is not None:
                return found
        return None
    if name and isinstance(node, i.StructType):
        return next((f.type for f in node.fields if f.encode_name == name), None)
    if name and isinstance(node, i.DictType):
        return node.value_type
    if not name and isinstance(node, (i.ListType, i.SetType, i.FrozenSetType, i.VarTupleType)):
        return node.item_type
    return None


def decode(data: bytes, type_: type[T]) -> T:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    if not data.strip():
        raise Invalid("body: a JSON body is required", field="body")
    try:
        value = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise field_error(exc, type_) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"body: malformed JSON ({exc})", field="body") from None
    except RecursionError:
        raise Invalid("body: JSON nested too deeply", field="body") from None
    if b"\\u0000" in data:  # only the escape can put a NUL in a JSON string
        path = nul_path(value)
        if path is not None:
            field = ".".join(map(str, path)) or "body"
            raise Invalid(f"{field}: must not contain the character U+0000", field=field)
    return value


def nul_path(node: Any, path: tuple = ()) -> tuple | None:
    """Where a string holding U+0000 is, as field names and list indexes; None: nowhere.

    Why refuse it everywhere: no text a person or a handset sends holds one, and PostgreSQL
    cannot store it in a text column (the same body must get the same answer on both backends)."""
    if isinstance(node, str):
        return path if "\x00" in node else None
    if isinstance(node, msgspec.Struct):
        for f in msgspec.structs.fields(node):
            found = nul_path(getattr(node, f.name), (*path, f.encode_name))
            if found is not None:
                return found
    elif isinstance(node, dict):
        for key, item in node.items():
            found = nul_path(key, (*path, key)) if isinstance(key, str) and "\x00" in key else nul_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            found = nul_path(item, (*path, index))
            if found is not None:
                return found
    return None


IDLE_SECONDS = 30.0  # a body that sends nothing for this long is abandoned (408)


def refuse_declared_length(request: web.Request, limit: int) -> None:
    """A declared ``Content-Length`` over ``limit`` is refused before a byte of the body is read:
    a client announcing 2 GB learns at once, instead of after uploading it."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"body: {declared} bytes declared, larger than the limit of {limit} bytes", field="body")


async def chunks(request: web.Request, limit: int, idle: float | None = None) -> AsyncIterator[bytes]:
    """The body as it arrives, at most ``limit`` bytes in all; a pause longer than ``idle``
    seconds (default ``IDLE_SECONDS``) ends it with a 408 (a stalled upload must not hold an
    open audience forever)."""
    idle = IDLE_SECONDS if idle is None else idle
    refuse_declared_length(request, limit)
    total = 0
    content = request.content
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await content.readany()
        except TimeoutError:
            raise Timeout(f"body: nothing arrived for {idle:g} seconds; the request was abandoned", field="body") from None
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"body: larger than the limit of {limit} bytes", field="body")
        yield chunk


async def read(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body (JSON bodies are small: ``client_max_size`` bounds them)."""
    parts = [chunk async for chunk in chunks(request, limit if limit is not None else request.app._client_max_size)]
    return b"".join(parts)


async def body(request: web.Request, type_: type[T]) -> T:
    return decode(await read(request), type_)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")
