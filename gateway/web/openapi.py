"""The OpenAPI 3.1 document, with request schemas generated from the msgspec models."""

from __future__ import annotations

import functools

import msgspec

from gateway import __version__
from gateway.tasks import GenerateAudience, TaskCreate, TaskPatch
from simulator.profile import Profile

_ERR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, *, body: str | None = None, ok: int = 200, errors=(400, 401), params=(), tag: str = "") -> dict:
    op: dict = {"summary": summary, "tags": [tag] if tag else [], "responses": {str(ok): {"description": "OK"}}}
    if ok == 204:
        op["responses"]["204"] = {"description": "No content"}
    for code in errors:
        op["responses"][str(code)] = {"description": "Error", "content": {"application/json": {"schema": _ERR}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in params]
    return op


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    from .routes_api import AudienceCreate, ClockAdvance

    _, components = msgspec.json.schema_components(
        [AudienceCreate, TaskCreate, TaskPatch, GenerateAudience, ClockAdvance, Profile],
        ref_template="#/components/schemas/{name}",
    )
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
            "required": ["code", "message"]}},
    }
    page = ("limit", "cursor")
    paths = {
        "/api/v1/audiences": {
            "post": _op("Create an audience from a JSON list, or a text/csv body with a phone column (?name=)", body="AudienceCreate", ok=201, errors=(400, 401, 413), tag="audiences"),
            "get": _op("List audiences", params=page, tag="audiences"),
        },
        "/api/v1/audiences/{id}": {
            "get": _op("One audience", errors=(401, 404), tag="audiences"),
            "delete": _op("Delete an audience", ok=204, errors=(401, 404), tag="audiences"),
        },
        "/api/v1/tasks": {
            "post": _op("Create a send task (enters moderation)", body="TaskCreate", ok=201, errors=(400, 401, 409), tag="tasks"),
            "get": _op("List tasks", params=(*page, "status", "platform", "q"), tag="tasks"),
        },
        "/api/v1/tasks/{id}": {
            "get": _op("Task details", errors=(401, 404), tag="tasks"),
            "patch": _op("Edit a task (rejected, or scheduled more than 5 minutes ahead)", body="TaskPatch", errors=(400, 401, 404, 409), tag="tasks"),
            "delete": _op("Delete a task (same rule as edit)", ok=204, errors=(401, 404, 409), tag="tasks"),
        },
        "/api/v1/tasks/{id}/messages": {"get": _op("Per-number rows", params=(*page, "result"), errors=(400, 401, 404, 410), tag="tasks")},
        "/api/v1/tasks/{id}/audiences": {"post": _op("Generate an audience from results", body="GenerateAudience", ok=201, errors=(400, 401, 404, 410), tag="tasks")},
        "/api/v1/platforms": {"get": _op("Registered platforms", tag="platforms")},
        "/api/v1/platforms/{name}/receipts": {"post": _op("Receipts pushed by a platform (verified by its plugin)", errors=(400, 401, 404), tag="platforms")},
        "/api/v1/receipts/unmatched": {"get": _op("Receipts for unknown message ids, kept aside", params=(*page, "platform"), tag="platforms")},
        "/api/v1/clock": {"get": _op("The service clock", tag="clock")},
        "/api/v1/clock/advance": {"post": _op("Advance the virtual clock", body="ClockAdvance", errors=(400, 401, 409), tag="clock")},
        "/api/v1/simulator/profile": {
            "get": _op("The simulated carrier's active profile", tag="simulator"),
            "put": _op("Replace the profile", body="Profile", tag="simulator"),
            "patch": _op("Change some fields of the profile", tag="simulator"),
        },
        "/api/v1/simulator/reset": {"post": _op("Reset the carrier's state (keeps the profile)", tag="simulator")},
        "/api/v1/simulator/presets": {"get": _op("Shipped profiles", tag="simulator")},
        "/api/v1/simulator/presets/{name}": {"post": _op("Activate a preset", errors=(401, 404), tag="simulator")},
        "/api/v1/simulator/ground-truth": {"get": _op("What the carrier decided, per message and part", params=("task_id", *page), errors=(400, 401, 404), tag="simulator")},
        "/healthz": {"get": {"summary": "Health", "security": [], "responses": {"200": {"description": "OK"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "OK"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "smslab", "version": __version__, "description": "SMS gateway simulator and testbed"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
