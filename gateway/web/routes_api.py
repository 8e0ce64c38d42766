"""The REST API of SPEC §9: audiences, tasks, platforms, clock, simulated carrier."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from gateway import audiences, paging
from gateway.audiences import AudienceWriter
from gateway.clock import MAX_TIME, to_rfc3339
from gateway.domain.labels import check_name
from gateway.domain.phone_csv import CsvError, PhoneColumnReader
from gateway.errors import Conflict, Invalid, NotFound
from gateway.tasks import GenerateAudience, TaskCreate, TaskPatch

from .bodies import body, chunks, json_response
from .keys import clock_key, config_key, db_key, engine_key, platforms_key, tasks_key, uploads_key
from .middleware import principal_key, require_admin, workspace_key

routes = web.RouteTableDef()


class AudienceCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    numbers: list[str | int | None]


MAX_ADVANCE = 10 * 365 * 86400.0


class ClockAdvance(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_ADVANCE)]


def _id(request: web.Request, name: str = "id") -> int:
    """A path id: ASCII digits naming a 64-bit row id, else nothing this service gave out (404).
    (``int()`` alone would take "１", "1_0" and " 1", and a 2^63 would overflow in SQLite.)"""
    raw = request.match_info[name]
    value = paging.parse_id(raw)
    if value is None:
        raise NotFound(f"{name}: {raw!r} is not an id this service gave out")
    return value


# -- audiences -------------------------------------------------------------------------------
@routes.post("/api/v1/audiences")
async def create_audience(request: web.Request) -> web.Response:
    app = request.app
    config = app[config_key]
    csv_body = request.content_type in ("text/csv", "application/csv", "text/plain")
    if csv_body:
        name = check_name(request.query.get("name"))
    else:
        data = await body(request, AudienceCreate)
        name = check_name(data.name)
    writer = AudienceWriter(app[db_key], app[clock_key], config.default_region, request[workspace_key], name,
                            uploads=app[uploads_key])
    await writer.begin()
    try:
        if csv_body:
            await _stream_csv(request, writer, config.max_csv_body)
        else:
            for start in range(0, len(data.numbers), 5000):
                await writer.add(data.numbers[start : start + 5000])
        result = await writer.finish()
    except BaseException:
        await writer.abort()
        raise
    return json_response(result, status=201)


async def _stream_csv(request: web.Request, writer: AudienceWriter, limit: int) -> None:
    """Read the CSV as it arrives: the body is never whole in memory (see phone_csv)."""
    reader = PhoneColumnReader()
    batch: list[str | None] = []
    try:
        async for chunk in chunks(request, limit):
            batch += reader.feed(chunk)
            if len(batch) >= 5000:
                await writer.add(batch)
                batch = []
        batch += reader.finish()
    except CsvError as exc:
        field = "phone" if "'phone' column" in str(exc) else "body"
        raise Invalid(f"{field}: {exc}", field=field) from None
    if batch:
        await writer.add(batch)


@routes.get("/api/v1/audiences")
async def list_audiences(request: web.Request) -> web.Response:
    q = request.query
    page = await audiences.page(request.app[db_key], request[workspace_key], paging.limit_of(q.get("limit")), paging.decode(q.get("cursor")))
    return json_response(page)


@routes.get("/api/v1/audiences/{id}")
async def get_audience(request: web.Request) -> web.Response:
    return json_response(await audiences.get(request.app[db_key], request[workspace_key], _id(request)))


@routes.delete("/api/v1/audiences/{id}")
async def delete_audience(request: web.Request) -> web.Response:
    await audiences.delete(request.app[db_key], request[workspace_key], _id(request))
    return web.Response(status=204)


# -- tasks -----------------------------------------------------------------------------------
@routes.post("/api/v1/tasks")
async def create_task(request: web.Request) -> web.Response:
    data = await body(request, TaskCreate)
    return json_response(await request.app[tasks_key].create(request[workspace_key], data), status=201)


@routes.get("/api/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    q = request.query
    page = await request.app[tasks_key].page(
        request[workspace_key], paging.limit_of(q.get("limit")), paging.decode(q.get("cursor")),
        q.get("status"), q.get("platform"), q.get("q"),
    )
    return json_response(page)


@routes.get("/api/v1/tasks/{id}")
async def get_task(request: web.Request) -> web.Response:
    return json_response(await request.app[tasks_key].get(request[workspace_key], _id(request)))


@routes.patch("/api/v1/tasks/{id}")
async def patch_task(request: web.Request) -> web.Response:
    task_id = _id(request)
    data = await body(request, TaskPatch)
    return json_response(await request.app[tasks_key].update(request[workspace_key], task_id, data))


@routes.delete("/api/v1/tasks/{id}")
async def delete_task(request: web.Request) -> web.Response:
    await request.app[tasks_key].delete(request[workspace_key], _id(request))
    return web.Response(status=204)


@routes.get("/api/v1/tasks/{id}/messages")
async def task_messages(request: web.Request) -> web.Response:
    q = request.query
    page = await request.app[tasks_key].messages(
        request[workspace_key], _id(request), paging.limit_of(q.get("limit")), paging.decode(q.get("cursor")), q.get("result"),
        q.get("q"),
    )
    return json_response(page)


@routes.post("/api/v1/tasks/{id}/audiences")
async def task_audience(request: web.Request) -> web.Response:
    task_id = _id(request)
    data = await body(request, GenerateAudience)
    return json_response(await request.app[tasks_key].generate_audience(request[workspace_key], task_id, data), status=201)


# -- platforms -------------------------------------------------------------------------------
@routes.get("/api/v1/platforms")
async def list_platforms(request: web.Request) -> web.Response:
    ws = request[workspace_key]
    items = [p.for_workspace(ws).describe() for _, p in sorted(request.app[platforms_key].items())]
    return json_response({"items": items, "next_cursor": None})


# -- clock -----------------------------------------------------------------------------------
def _clock_json(clock) -> dict:
    return {"now": to_rfc3339(clock.now()), "mode": clock.mode, "rate": clock.rate}


@routes.get("/api/v1/clock")
async def get_clock(request: web.Request) -> web.Response:
    return json_response(_clock_json(request.app[clock_key]))


@routes.post("/api/v1/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    require_admin(request)
    clock = request.app[clock_key]
    data = await body(request, ClockAdvance)
    if not clock.can_advance:
        raise Conflict("the service runs on the wall clock, which cannot be advanced; start it with --clock virtual", code="clock_not_virtual")
    if clock.now() + data.seconds > MAX_TIME:
        raise Invalid(f"seconds: the clock stops at {to_rfc3339(MAX_TIME)}; it can move at most"
                      f" {max(MAX_TIME - clock.now(), 0):.0f} seconds more", field="seconds")
    await request.app[engine_key].advance(data.seconds)
    return json_response(_clock_json(clock))


# -- receipts kept aside -----------------------------------------------------------------------
@routes.get("/api/v1/receipts/unmatched")
async def unmatched_receipts(request: web.Request) -> web.Response:
    """Receipts whose message id no task knows: kept, counted and shown, never dropped. (A receipt
    that overtook its submission's acknowledgement is applied when the acknowledgement comes,
    and leaves this list.)"""
    q = request.query
    limit, cursor = paging.limit_of(q.get("limit")), paging.decode(q.get("cursor"))
    # a workspace sees the receipts its tokens posted; an admin also those the platforms pushed
    # themselves (they belong to no workspace until matched)
    scope = "(workspace_id = ? OR workspace_id IS NULL)" if request[principal_key].admin else "workspace_id = ?"
    where, args = ["matched=0", scope], [request[workspace_key]]
    if q.get("platform"):
        where.append("platform=?")
        args.append(q["platform"])
    db = request.app[db_key]
    (total,) = await db.fetchone(f"SELECT COUNT(*) FROM unmatched_receipts WHERE {' AND '.join(where)}", args)
    rows = await db.fetchall(
        "SELECT id, platform, platform_id, part, status, code, message, at, received_at FROM unmatched_receipts"
        f" WHERE {' AND '.join(where)} AND id > ? ORDER BY id LIMIT ?",
        (*args, cursor if cursor is not None else -1, limit + 1),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"platform": r[1], "platform_id": r[2], "part": r[3], "status": r[4], "code": r[5], "message": r[6],
         "at": to_rfc3339(r[7]), "received_at": to_rfc3339(r[8])}
        for r in rows
    ]
    return json_response({"items": items, "total": total, "next_cursor": paging.encode(rows[-1][0]) if more else None})
