"""The transport under every client: one sync implementation on :mod:`urllib.request` (no extra
dependency, no event loop) and one async on :mod:`aiohttp`, with the same error mapping.

Both smslab servers answer errors as ``{"error": {"code", "message", "field"?}}``; any 4xx/5xx
becomes an :class:`ApiError` carrying those fields (and the raw decoded body).
"""

from __future__ import annotations

import ipaddress
import json as _json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, AsyncIterator, Iterator, Mapping

import msgspec

__all__ = ["ApiError", "AsyncSession", "AsyncTransport", "SyncSession", "SyncTransport", "encode_body", "with_query"]


class ApiError(Exception):
    """An HTTP error answer: ``status`` (int), ``code``/``message``/``field`` from the error body
    (``field`` is None when the answer names none), ``body`` the decoded answer (dict or text)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, body: Any = None,
                 method: str = "", path: str = ""):
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        extra = f" (field {field})" if field else ""
        super().__init__(f"{where}{status} {code}: {message}{extra}")

    @classmethod
    def from_answer(cls, status: int, body: Any, reason: str = "", method: str = "", path: str = "") -> "ApiError":
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return cls(status, str(err.get("code") or "error"), str(err.get("message") or reason),
                       err.get("field"), body, method, path)
        text = body if isinstance(body, str) else reason
        return cls(status, "http_error", (text or reason or "").strip()[:500], None, body, method, path)


def encode_body(json: Any) -> bytes:
    """A request body: a msgspec Struct (the server's own request models), a dict/list, or anything
    msgspec can encode. A Struct's fields left at their default ``None`` are left out (the server
    decodes the same model, so absent and ``None`` are the same to it; the body stays readable)."""
    if isinstance(json, msgspec.Struct):
        data = msgspec.to_builtins(json)
        for field in msgspec.structs.fields(type(json)):
            if field.default is None and data.get(field.encode_name, 0) is None:
                del data[field.encode_name]
        return msgspec.json.encode(data)
    return msgspec.json.encode(json)


def with_query(path: str, params: Mapping[str, Any] | None) -> str:
    """``path`` with ``params`` appended (None values dropped; lists repeat the key; booleans as
    ``true``/``false``)."""
    if not params:
        return path
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            pairs.append((key, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    if not pairs:
        return path
    return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(pairs)


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in (content_type or ""):
        try:
            return _json.loads(raw)
        except ValueError:
            pass
    text = raw.decode("utf-8", "replace")
    return text


def _is_loopback(base_url: str) -> bool:
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Transport:
    def __init__(self, base_url: str, token: str | None, timeout: float = 300.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def prepare(self, path: str, json: Any, params: Mapping[str, Any] | None, data: bytes | str | None,
                content_type: str | None, headers: Mapping[str, str] | None) -> tuple[str, bytes | None, dict[str, str]]:
        """(path with its query, body, headers) of a request: ``json`` encoded, else ``data`` as given."""
        body: bytes | None = None
        if json is not None:
            body, content_type = encode_body(json), "application/json"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        sent = {"Accept": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if content_type:
            sent["Content-Type"] = content_type
        return with_query(path, params), body, {**sent, **(headers or {})}


class SyncTransport(_Transport):
    def __init__(self, base_url: str, token: str | None, timeout: float = 300.0):
        super().__init__(base_url, token, timeout)
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.base_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, json: Any = None, *, params: Mapping[str, Any] | None = None,
                data: bytes | str | None = None, content_type: str | None = None, raw: bool = False,
                headers: Mapping[str, str] | None = None) -> Any:
        path, body, sent = self.prepare(path, json, params, data, content_type, headers)
        req = urllib.request.Request(self.base_url + path, data=body, method=method.upper(), headers=sent)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                payload, ctype = resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            payload = exc.read() if exc.fp is not None else b""
            decoded = _decode(payload, exc.headers.get("Content-Type", "") if exc.headers else "")
            raise ApiError.from_answer(exc.code, decoded, exc.reason or "", method.upper(), path) from None
        if raw:
            return payload.decode("utf-8", "replace")
        return _decode(payload, ctype)

    def close(self) -> None:
        pass


class AsyncTransport(_Transport):
    def __init__(self, base_url: str, token: str | None, timeout: float = 300.0, session=None):
        super().__init__(base_url, token, timeout)
        self._session = session
        self._own_session = session is None

    async def _session_(self):
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  trust_env=not _is_loopback(self.base_url))
        return self._session

    async def request(self, method: str, path: str, json: Any = None, *, params: Mapping[str, Any] | None = None,
                      data: bytes | str | None = None, content_type: str | None = None, raw: bool = False,
                headers: Mapping[str, str] | None = None) -> Any:
        path, body, sent = self.prepare(path, json, params, data, content_type, headers)
        session = await self._session_()
        async with session.request(method.upper(), self.base_url + path, data=body, headers=sent) as resp:
            payload = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            if resp.status >= 400:
                raise ApiError.from_answer(resp.status, _decode(payload, ctype), resp.reason or "", method.upper(), path)
        if raw:
            return payload.decode("utf-8", "replace")
        return _decode(payload, ctype)

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


class SyncSession:
    """The sync half every client shares (the gateway's and the carrier's): requests through
    its transport, cursor paging, closing. The route methods come from an ``_Operations`` class."""

    _http: SyncTransport

    def request(self, method: str, path: str, json: Any = None, *, params: dict | None = None, **kw: Any) -> Any:
        return self._http.request(method, path, json, params=params, **kw)

    _call = request

    def _iter(self, path: str, params: dict) -> Iterator[dict]:
        params = dict(params)
        while True:
            page = self.request("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncSession:
    """:class:`SyncSession` as coroutines (``async with``; the ``iter_*`` methods are async iterators)."""

    _http: AsyncTransport

    async def request(self, method: str, path: str, json: Any = None, *, params: dict | None = None, **kw: Any) -> Any:
        return await self._http.request(method, path, json, params=params, **kw)

    _call = request

    async def _iter(self, path: str, params: dict) -> AsyncIterator[dict]:
        params = dict(params)
        while True:
            page = await self.request("GET", path, params=params)
            for item in page["items"]:
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
