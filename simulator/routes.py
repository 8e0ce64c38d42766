"""The simulated carrier's control surface in the gateway: profile, presets, ground truth,
replies from handsets. The sim plugin adds these routes (``smslab_register_routes``); without it
loaded, they are not there."""

from __future__ import annotations

import re

from aiohttp import web

from gateway import paging
from gateway.errors import Invalid, NotFound
from gateway.inbound import e164_of
from gateway.web import schemas as G
from gateway.web.bodies import body, json_response, read
from gateway.web.keys import config_key, inbound_key, platforms_key, storage_key
from gateway.web.middleware import workspace_key
from gateway.web.openapi import CURSOR, LIMIT, Param, documented, enum_source

from . import profile as profiles
from . import schemas as S
from .profile import Profile

routes = web.RouteTableDef()
enum_source("presets", profiles.preset_names)  # the document lists them as PresetName's enum
_SHORT_CODE = re.compile(S.SHORT_CODE_PATTERN.strip("^$"))
# every route here answers 404 when the simulated carrier is not loaded
NO_CARRIER = {404: ("not_found",)}


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
@documented("The simulated carrier's active profile", "simulator", response=Profile, errors=NO_CARRIER,
            components=S.COMPONENTS)
async def get_profile(request: web.Request) -> web.Response:
    return json_response(profiles.to_builtins(_carrier(request).profile))


@routes.put("/api/v1/simulator/profile")
@documented("Replace the profile", "simulator", body=Profile, response=Profile, errors=NO_CARRIER,
            description="A field left out takes its default.")
async def put_profile(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    new = profiles.profile_from_request(await read(request))
    await carrier.set_profile(new)
    return json_response(profiles.to_builtins(new))


@routes.patch("/api/v1/simulator/profile")
@documented("Change some fields of the profile", "simulator", body=S.ProfilePatch, response=Profile, errors=NO_CARRIER,
            components=S.COMPONENTS)
async def patch_profile(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    new = profiles.profile_from_request(await read(request), patching=carrier.profile)
    await carrier.set_profile(new)
    return json_response(profiles.to_builtins(new))


@routes.post("/api/v1/simulator/reset")
@documented("Reset the carrier's state, keeping its profile", "simulator", response=S.CarrierReset, errors=NO_CARRIER,
            description="What the carrier accepted and planned is forgotten (its receipts will not come): numbers"
                        " still pending end as RECEIPT_TIMEOUT.")
async def reset_carrier(request: web.Request) -> web.Response:
    """Forget what the carrier accepted and planned (its receipts will not come); keep the profile.
    The gateway's own records stay: numbers still pending end as RECEIPT_TIMEOUT."""
    carrier = _carrier(request)
    await carrier.reset()
    return json_response({"reset": True, "profile": profiles.to_builtins(carrier.profile)})


@routes.get("/api/v1/simulator/presets")
@documented("The profiles shipped with smslab", "simulator", response=S.PresetPage, errors=NO_CARRIER,
            description="`active`: the preset the profile is, field for field (none after a change).")
async def list_presets(request: web.Request) -> web.Response:
    active = _active_preset(_carrier(request).profile)
    items = [
        {"name": n, "description": profiles.preset_description(n), "active": n == active,
         "profile": profiles.to_builtins(profiles.load_preset(n))}
        for n in profiles.preset_names()
    ]
    return json_response({"items": items, "active": active, "next_cursor": None})


@routes.post("/api/v1/simulator/presets/{name}")
@documented("Make a preset the active profile", "simulator", response=Profile, errors=NO_CARRIER,
            path=(Param("name", S.PresetName, "a preset's name"),))
async def activate_preset(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    name = request.match_info["name"]
    try:
        preset = profiles.load_preset(name)
    except KeyError:
        raise NotFound(f"no preset named {name!r}; presets: {', '.join(profiles.preset_names())}") from None
    await carrier.set_profile(preset)
    return json_response(profiles.to_builtins(preset))


@routes.post("/api/v1/simulator/mo")
@documented("A reply from a handset (mobile-originated)", "simulator", body=S.MobileOriginated, status=201,
            response=G.InboundItem, errors=NO_CARRIER,
            description="The simulated carrier hands the message to the gateway as an inbound message of the token's"
                        " workspace, as an SMSC's `deliver_sm` would: it is listed at `GET /api/v1/inbound`, and one"
                        " whose text is an opt-out keyword (`STOP`, `UNSUBSCRIBE`, `TD` by default) puts `from` on the"
                        " workspace's opt-out list. `to` defaults to the carrier's short code (10690000). Answers the"
                        " stored message.")
async def mobile_originated(request: web.Request) -> web.Response:
    data = await body(request, S.MobileOriginated)
    sender = e164_of(data.from_, request.app[config_key].default_region)
    if sender is None:
        raise Invalid(f"from: {data.from_!r} is not a valid phone number (write it in E.164, like +8613800138000)",
                      field="from")
    if data.to is not None and not _SHORT_CODE.fullmatch(data.to):
        raise Invalid("to: letters and digits, maybe after a + (a number or a short code)", field="to")
    carrier = _carrier(request)
    message = await carrier.mobile_originated(sender, data.text, data.to)
    stored = await request.app[inbound_key].inbound_by_platform_id(request[workspace_key], carrier.name, message.platform_id)
    return json_response(stored, status=201)


@routes.get("/api/v1/simulator/ground-truth")
@documented("What the carrier decided, per message and part", "simulator", response=S.GroundTruthPage,
            errors=NO_CARRIER, query=(Param("task_id", G.Id, "the task", required=True), LIMIT, CURSOR),
            description="Every receipt it planned, with times: `emitted_at` is when it was handed to the gateway"
                        " (null until then; a receipt `swallowed` by an outage never is).")
async def ground_truth(request: web.Request) -> web.Response:
    carrier = _carrier(request)
    raw = request.query.get("task_id")
    if not raw:
        raise Invalid("task_id: required", field="task_id")
    task_id = paging.parse_id(raw)
    if not task_id:  # not digits, above 2^63-1, or 0
        raise Invalid("task_id: a task id (digits, 1 to 2^63-1)", field="task_id")
    limit = paging.limit_of(request.query.get("limit"))  # bad input first, then a task that is not there
    if not await request.app[storage_key].tasks.exists(request[workspace_key], task_id):
        raise NotFound(f"task {task_id} not found")
    cursor = request.query.get("cursor") or None
    items, next_cursor = await carrier.ground_truth(task_id, cursor, limit)
    from gateway.clock import to_rfc3339

    for item in items:
        item["submitted_at"] = to_rfc3339(item["submitted_at"])
        for r in item["receipts"]:
            r["at"] = to_rfc3339(r.pop("due_at"))
    return json_response({"items": items, "next_cursor": next_cursor})
