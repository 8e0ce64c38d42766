"""The OpenAPI 3.1 document, built from the app's route table.

Every handler carries its documentation next to its route (``@documented(...)``): its summary,
parameters, request body and answers. ``openapi_document(app)`` walks ``app.router`` (static
files and the HEAD twins of GET routes aside) and writes each route's operation; path
parameters come from the route's path, bodies and answers from the msgspec Structs of
``gateway.web.schemas``. A route without documentation (a plugin's, say) still appears, marked
``x-smslab-undocumented``, and ``undocumented(app)`` lists it: the tests require none.

Answers documented for every operation, besides its own:
- 401 ``unauthorized`` unless the route is public; 403 ``admin_required`` for admin-only ones;
- 400 ``invalid_request`` (always with ``field``) when it takes a body or query parameters;
- 408 and 413 when it reads a body; 503 ``storage_unavailable`` (``Retry-After``) when it writes.
"""

from __future__ import annotations

import json
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource

from gateway import __version__

from . import schemas as S
from .keys import platforms_key

Access = Literal["token", "admin", "public", "optional"]

ERROR_CODES = {
    400: ("invalid_request",), 401: ("unauthorized",), 403: ("admin_required",), 404: ("not_found",),
    408: ("request_timeout",), 409: ("conflict",), 410: ("details_expired",), 413: ("body_too_large",),
    503: ("storage_unavailable",),
}
_REASONS = {
    400: "Bad input; `field` names it, and nothing was stored", 401: "No valid bearer token",
    403: "The token is not an admin token", 404: "Not found (or not in the token's workspace)",
    408: "The body stopped arriving", 409: "Conflict", 410: "Gone: per-number details expired",
    413: "The body is larger than the limit", 503: "The storage cannot write now; nothing was changed, try again",
}
_TAGS = [
    {"name": "audiences", "description": "Named lists of phone numbers"},
    {"name": "tasks", "description": "Send tasks, their per-number results, and audiences from results"},
    {"name": "platforms", "description": "Platforms, receipts they push, and receipts for unknown messages"},
    {"name": "clock", "description": "The service clock (virtual clocks can be advanced)"},
    {"name": "inbound", "description": "Replies from handsets (mobile-originated messages) and the opt-out list"},
    {"name": "simulator", "description": "The simulated carrier of the token's workspace"},
    {"name": "system", "description": "Health, metrics, this document and the console"},
]


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter; ``schema`` is a type (msgspec writes its JSON Schema)
    or a JSON Schema. An array is sent comma-separated (``explode`` false)."""

    name: str
    schema: Any
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    description: str = ""
    body: Any = None  # the type of a JSON request body
    csv: bool = False  # the body may also be CSV text
    query: tuple[Param, ...] = ()
    headers: tuple[Param, ...] = ()
    path: tuple[Param, ...] = ()  # path parameters other than an {id}
    status: int = 200
    response: Any = None  # the type (or JSON Schema) of the success body; None: no body
    content_type: str | tuple[str, ...] = "application/json"  # of the success body
    errors: dict[int, tuple[str, ...]] = field(default_factory=dict)  # more statuses, with their codes
    other: dict[int, Any] = field(default_factory=dict)  # other non-error answers: status -> body type
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # name -> (operationId, parameters)
    access: Access = "token"
    components: tuple = ()  # types its schemas refer to by a written $ref, which the document must hold

    def types(self) -> list:
        found = [self.body, self.response, *self.other.values(), *(p.schema for p in (*self.query, *self.headers, *self.path)),
                 *self.components]
        return [t for t in found if t is not None and not isinstance(t, dict)]


DOCUMENTED: list = []  # every documented handler, for the tests' "and vice versa"
_ENUM_SOURCES: dict[str, Any] = {}


def enum_source(name: str, values) -> None:
    """``values()`` gives the enum of every schema marked ``x-smslab-enum: name`` (a plugin's
    route module registers its own, as the simulator does for its preset names)."""
    _ENUM_SOURCES[name] = values


def documented(summary: str, tag: str, **details: Any):
    """Attach an Operation to a handler (stacked with ``@routes.get(...)`` in either order)."""
    operation = Operation(summary, tag, **details)

    def mark(handler):
        handler.__openapi__ = operation
        DOCUMENTED.append(handler)
        return handler

    return mark


def operation_of(handler) -> Operation | None:
    return getattr(handler, "__openapi__", None)


# common parameters
LIMIT = Param("limit", S.Limit, "items per page")
CURSOR = Param("cursor", S.Cursor, "where the page starts: the previous page's next_cursor")


def routes_of(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path, handler) of every route the document covers: not static files, not HEAD."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, StaticResource) or route.resource is None:
            continue
        out.append((route.method.lower(), route.resource.canonical, route.handler))
    return out


def undocumented(app: web.Application) -> list[str]:
    """The routes of ``app`` with no documentation, as "METHOD /path"."""
    return [f"{m.upper()} {p}" for m, p, h in routes_of(app) if operation_of(h) is None]


_documents: "weakref.WeakKeyDictionary[web.Application, bytes]" = weakref.WeakKeyDictionary()


def openapi_json(app: web.Application) -> bytes:
    """The document as JSON, built once per app (its routes are frozen once it runs)."""
    body = _documents.get(app)
    if body is None:
        body = _documents[app] = msgspec.json.encode(openapi_document(app))
    return body


def openapi_document(app: web.Application) -> dict:
    routes = routes_of(app)
    operations = [operation_of(h) for _, _, h in routes]
    types = [*S.ALL, *(t for op in operations if op is not None for t in op.types())]
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip(types, refs))
    for cls in {t for t in types if isinstance(t, type)}:  # rules across fields (schemas.Schema)
        extra = getattr(cls, "__schema_extra__", None)
        if extra and cls.__name__ in components:
            components[cls.__name__].update(json.loads(json.dumps(extra)))

    def schema(t: Any) -> dict:
        return t if isinstance(t, dict) else schema_of[t]

    paths: dict[str, dict] = {}
    used_ids: set[str] = set()
    for (method, path, handler), op in zip(routes, operations):
        op_id = getattr(handler, "__name__", "operation")
        while op_id in used_ids:
            op_id += "_"
        used_ids.add(op_id)
        paths.setdefault(path, {})[method] = (_operation(method, path, op, schema) if op is not None
                                              else _undocumented(path))
        paths[path][method]["operationId"] = op_id
    for ops in paths.values():  # links to operations the app does not have are left out
        for op in ops.values():
            for response in op["responses"].values():
                if "links" in response:
                    response["links"] = {k: v for k, v in response["links"].items() if v["operationId"] in used_ids}
                    if not response["links"]:
                        del response["links"]

    platforms = sorted(app[platforms_key]) if platforms_key in app else []
    enums = {"platforms": platforms, **{name: list(values()) for name, values in _ENUM_SOURCES.items()}}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "smslab", "version": __version__,
                 "description": "SMS gateway simulator and testbed (SPEC §8, §9). Errors are"
                                " `{\"error\": {\"code\", \"message\", \"field\"?}}`; a 400 always names the field."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": _TAGS,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a workspace's token (smslab token create)"}},
        },
    }
    return _fill_enums(doc, enums)


def _fill_enums(node: Any, enums: dict[str, list[str]]) -> Any:
    """Replace the ``x-smslab-enum`` markers with the values the app has (installed platforms,
    preset names)."""
    if isinstance(node, dict):
        out = {k: _fill_enums(v, enums) for k, v in node.items() if k != "x-smslab-enum"}
        if "x-smslab-enum" in node:
            values = enums.get(node["x-smslab-enum"], [])
            if values:
                out["enum"] = list(values)
            if "default" in out and out["default"] not in values:
                del out["default"]  # the default platform is not installed
        return out
    if isinstance(node, list):
        return [_fill_enums(v, enums) for v in node]
    return node


def _error_response(status: int, codes: tuple[str, ...]) -> dict:
    detail: dict = {"type": "object", "properties": {"code": {"enum": list(codes)}}}
    if status == 400:
        detail["required"] = ["field"]
    response: dict = {
        "description": _REASONS.get(status, "Error"),
        "content": {"application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"type": "object", "properties": {"error": detail}},
        ]}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
    elif status == 503:
        response["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string"}}}
    return response


def _parameter(where: str, p: Param, schema) -> dict:
    out = {"name": p.name, "in": where, "required": p.required or where == "path", "schema": schema(p.schema)}
    if p.description:
        out["description"] = p.description
    if out["schema"].get("type") == "array":
        out["style"], out["explode"] = ("form", False) if where == "query" else ("simple", False)
    return out


_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _operation(method: str, path: str, op: Operation, schema) -> dict:
    out: dict = {"tags": [op.tag], "summary": op.summary}
    if op.description:
        out["description"] = op.description
    own_path = {p.name: p for p in op.path}
    params = []
    for name in _PATH_PARAM.findall(path):
        p = own_path.get(name) or Param(name, S.Id if name == "id" else {"type": "string"}, "")
        params.append(_parameter("path", p, schema))
    params += [_parameter("query", p, schema) for p in op.query]
    params += [_parameter("header", p, schema) for p in op.headers]
    if params:
        out["parameters"] = params
    if op.body is not None:
        content = {"application/json": {"schema": schema(op.body)}}
        if op.csv:
            text = {"type": "string", "description": "CSV with a header row and a `phone` column; streamed"}
            for media in ("text/csv", "application/csv", "text/plain"):
                content[media] = {"schema": text}
        out["requestBody"] = {"required": True, "content": content}

    responses: dict[str, dict] = {}
    if op.response is None:
        responses[str(op.status)] = {"description": "Done, nothing to return"}
    else:
        media = (op.content_type,) if isinstance(op.content_type, str) else op.content_type
        responses[str(op.status)] = {"description": "OK", "content": {m: {"schema": schema(op.response)} for m in media}}
    if op.links:
        responses[str(op.status)]["links"] = {
            name: {"operationId": target, "parameters": params} for name, (target, params) in op.links.items()}
    for status, t in op.other.items():
        responses[str(status)] = {"description": "See the body", "content": {"application/json": {"schema": schema(t)}}}
    errors: dict[int, tuple[str, ...]] = {}
    if op.access in ("token", "admin"):
        errors[401] = ERROR_CODES[401]
    if op.access == "admin":
        errors[403] = ERROR_CODES[403]
    if op.body is not None or op.query:
        errors[400] = ERROR_CODES[400]
    if op.body is not None:
        errors[408], errors[413] = ERROR_CODES[408], ERROR_CODES[413]
    if method != "get":
        errors[503] = ERROR_CODES[503]
    for status, codes in op.errors.items():
        errors[status] = codes or ERROR_CODES.get(status, ("error",))
    for status in sorted(errors):
        responses[str(status)] = _error_response(status, errors[status])
    out["responses"] = responses
    if op.access == "public":
        out["security"] = []
    elif op.access == "optional":
        out["security"] = [{"bearer": []}, {}]
    return out


def _undocumented(path: str) -> dict:
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in _PATH_PARAM.findall(path)]
    out: dict = {"summary": "Added by a plugin, without documentation", "x-smslab-undocumented": True,
                 "responses": {"default": {"description": "Not documented"}}}
    if params:
        out["parameters"] = params
    return out
