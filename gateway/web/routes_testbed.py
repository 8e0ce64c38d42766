"""The simulated carrier's control surface: profile, presets, ground truth."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import Invalid, NotFound
from gateway import paging
from simulator import profile as profiles

from .bodies import json_response, read
from .keys import db_key, platforms_key
from .middleware import workspace_key

routes = web.RouteTableDef()


def _carrier(request: web.Request):
    """The caller's workspace's simulated carrier: each workspace has its own profile, presets,
    reset and ground truth."""
    carrier = request.app[platforms_key].get("sim")
    if carrier is None:
        raise NotFound("the simulated carrier (platform 'sim') is not loaded")
    return carrier.for_workspace(request[workspace_key])


def _active_preset(profile) -> str | None:
    """The preset the profile is, field for field (a preset changed by a PATCH is none)."""
    current = profiles.to_builtins(profile)
    for name in profiles.preset_names():
        if profiles.to_builtins(profiles.load_preset(name)) == current:
            return name
    return None


@routes.get("/api/v1/simulator/profile")
async def get_profile(request: web.Request) -> web.Response:
    return json_response(profiles.to_builtins(_carrier(request).profile))


@routes.put("/api/v1/simulator/profile")
async def put_profile(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    new = profiles.profile_from_request(await read(request))
    await carrier.set_profile(new)
    return json_response(profiles.to_builtins(new))


@routes.patch("/api/v1/simulator/profile")
async def patch_profile(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    new = profiles.profile_from_request(await read(request), patching=carrier.profile)
    await carrier.set_profile(new)
    return json_response(profiles.to_builtins(new))


@routes.post("/api/v1/simulator/reset")
async def reset_carrier(request: web.Request) -> web.Response:
    """Forget what the carrier accepted and planned (its receipts will not come); keep the profile.
    The gateway's own records stay: numbers still pending end as RECEIPT_TIMEOUT."""
    carrier = _carrier(request)
    await carrier.reset()
    return json_response({"reset": True, "profile": profiles.to_builtins(carrier.profile)})


@routes.get("/api/v1/simulator/presets")
async def list_presets(request: web.Request) -> web.Response:
    active = _active_preset(_carrier(request).profile)
    items = [
        {"name": n, "description": profiles.preset_description(n), "active": n == active,
         "profile": profiles.to_builtins(profiles.load_preset(n))}
        for n in profiles.preset_names()
    ]
    return json_response({"items": items, "active": active, "next_cursor": None})


@routes.post("/api/v1/simulator/presets/{name}")
async def activate_preset(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    name = request.match_info["name"]
    try:
        preset = profiles.load_preset(name)
    except KeyError:
        raise NotFound(f"no preset named {name!r}; presets: {', '.join(profiles.preset_names())}") from None
    await carrier.set_profile(preset)
    return json_response(profiles.to_builtins(preset))


@routes.get("/api/v1/simulator/ground-truth")
async def ground_truth(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    raw = request.query.get("task_id")
    if not raw:
        raise Invalid("task_id: required", field="task_id")
    task_id = paging.parse_id(raw)
    if task_id is None:
        raise Invalid("task_id: a task id (digits)", field="task_id")
    row = await request.app[db_key].fetchone("SELECT 1 FROM tasks WHERE id=? AND workspace_id=?", (task_id, request[workspace_key]))
    if row is None:
        raise NotFound(f"task {task_id} not found")
    cursor = request.query.get("cursor") or None
    items, next_cursor = await carrier.ground_truth(task_id, cursor, paging.limit_of(request.query.get("limit")))
    from gateway.clock import to_rfc3339

    for item in items:
        item["submitted_at"] = to_rfc3339(item["submitted_at"])
        for r in item["receipts"]:
            r["at"] = to_rfc3339(r.pop("due_at"))
    return json_response({"items": items, "next_cursor": next_cursor})
