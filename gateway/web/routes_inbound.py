"""Inbound messages (replies from handsets) and the workspace's opt-out list."""

from __future__ import annotations

from aiohttp import web

from gateway import paging

from . import schemas as S
from .bodies import body, json_response
from .keys import inbound_key
from .middleware import principal_key, workspace_key
from .openapi import CURSOR, LIMIT, Param, documented

routes = web.RouteTableDef()


@routes.get("/api/v1/inbound")
@documented(
    "Inbound messages (replies), newest first", "inbound", response=S.InboundPage,
    query=(LIMIT, CURSOR,
           Param("sender", S.NumberSearch, "digits of the sender's number (+, spaces, dashes and brackets are ignored)"),
           Param("platform", str, "only this platform's messages")),
    description="Mobile-originated messages the platforms handed to the gateway for the token's workspace;"
                " `opted_out` marks a reply whose text was an opt-out keyword (it put its sender on the"
                " opt-out list). An admin token also sees the messages whose workspace the platform could not"
                " tell (`workspace_id` null). `total` counts what the filters choose.")
async def list_inbound(request: web.Request) -> web.Response:
    q = request.query
    limit, cursor = paging.limit_of(q.get("limit")), paging.decode(q.get("cursor"))
    page = await request.app[inbound_key].inbound_page(
        request[workspace_key], request[principal_key].admin, limit, cursor, q.get("sender"), q.get("platform"))
    return json_response(page)


@routes.get("/api/v1/opt-outs")
@documented(
    "The workspace's opt-out list, in number order", "inbound", response=S.OptOutPage,
    query=(LIMIT, CURSOR, Param("q", S.NumberSearch, "digits of the number (+, spaces, dashes and brackets are ignored)")),
    description="Numbers that the workspace's tasks skip as `opted_out`: put there by a reply with an opt-out"
                " keyword (`source` `reply`) or over the API (`api`). `total` counts what the search chooses.")
async def list_opt_outs(request: web.Request) -> web.Response:
    q = request.query
    limit, cursor = paging.limit_of(q.get("limit")), paging.decode_key(q.get("cursor"))
    page = await request.app[inbound_key].opt_outs_page(request[workspace_key], limit, cursor, q.get("q"))
    return json_response(page)


@routes.post("/api/v1/opt-outs")
@documented(
    "Put a number on the opt-out list", "inbound", body=S.OptOutCreate, status=201, response=S.OptOut,
    other={200: S.OptOut},
    description="201 with the new entry; a number already on the list answers 200 with its entry as it was"
                " (idempotent: nothing changes). The number is stored in E.164; one that is no valid phone"
                " number is a 400 naming `number`. Tasks that send from now on skip it as `opted_out`.")
async def add_opt_out(request: web.Request) -> web.Response:
    data = await body(request, S.OptOutCreate)
    entry, created = await request.app[inbound_key].add_opt_out(request[workspace_key], data.number)
    return json_response(entry, status=201 if created else 200)


@routes.delete("/api/v1/opt-outs/{number}")
@documented(
    "Take a number off the opt-out list", "inbound", status=204, errors={400: ("invalid_request",), 404: ("not_found",)},
    path=(Param("number", S.PhoneNumber, "the number, URL-encoded (%2B8613800138000), in E.164 or as written in the"
                                         " service's default region"),),
    description="Tasks that send from now on send to it again. 404 when it is not on the list; a 400 naming"
                " `number` when it is no valid phone number.")
async def remove_opt_out(request: web.Request) -> web.Response:
    await request.app[inbound_key].remove_opt_out(request[workspace_key], request.match_info["number"])
    return web.Response(status=204)
