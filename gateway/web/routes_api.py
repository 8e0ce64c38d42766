"""The REST API of SPEC §9: audiences, tasks, platforms, clock, simulated carrier."""

from __future__ import annotations

import csv
import io

import msgspec
from aiohttp import web

from gateway import audiences, paging
from gateway.audiences import AudienceWriter, check_name
from gateway.clock import to_rfc3339
from gateway.errors import Conflict, Invalid, NotFound, TooLarge
from gateway.tasks import GenerateAudience, TaskCreate, TaskPatch

from .bodies import body, json_response
from .keys import clock_key, config_key, db_key, engine_key, platforms_key, tasks_key
from .middleware import workspace_key

routes = web.RouteTableDef()


class AudienceCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    numbers: list[str | int | None]


class ClockAdvance(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


def _id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise NotFound(f"{name}: {raw!r} is not an id this service gave out") from None


# -- audiences -------------------------------------------------------------------------------
@routes.post("/api/v1/audiences")
async def create_audience(request: web.Request) -> web.Response:
    app = request.app
    ws = request[workspace_key]
    config = app[config_key]
    if request.content_type in ("text/csv", "application/csv", "text/plain"):
        name = check_name(request.query.get("name"))
        writer = AudienceWriter(app[db_key], app[clock_key], config.default_region, ws, name)
        try:
            await _stream_csv(request, writer, config.max_csv_body)
        except BaseException:
            await writer.abort()
            raise
        return json_response(await writer.finish(), status=201)
    data = await body(request, AudienceCreate)
    name = check_name(data.name)
    writer = AudienceWriter(app[db_key], app[clock_key], config.default_region, ws, name)
    try:
        for start in range(0, len(data.numbers), 5000):
            await writer.add(data.numbers[start : start + 5000])
    except BaseException:
        await writer.abort()
        raise
    return json_response(await writer.finish(), status=201)


async def _stream_csv(request: web.Request, writer: AudienceWriter, limit: int) -> None:
    """Read the CSV line by line from the socket: the body is never whole in memory."""
    column: int | None = None
    total = 0
    chunk: list[str | None] = []
    line_no = 0
    async for raw_line in request.content:
        total += len(raw_line)
        if total > limit:
            raise TooLarge(f"body: the CSV is larger than the limit of {limit} bytes", field="body")
        line_no += 1
        try:
            text = raw_line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            raise Invalid(f"body: line {line_no} is not UTF-8", field="body") from None
        if not text.strip() and column is not None:
            continue
        fields = next(csv.reader(io.StringIO(text)), [])
        if column is None:
            header = [f.strip().lower() for f in fields]
            if "phone" not in header:
                raise Invalid("phone: the CSV header row needs a 'phone' column", field="phone")
            column = header.index("phone")
            continue
        chunk.append(fields[column] if column < len(fields) else None)
        if len(chunk) >= 5000:
            await writer.add(chunk)
            chunk = []
    if column is None:
        raise Invalid("phone: the CSV is empty; it needs a header row with a 'phone' column", field="phone")
    if chunk:
        await writer.add(chunk)


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
        request[workspace_key], _id(request), paging.limit_of(q.get("limit")), paging.decode(q.get("cursor")), q.get("result")
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
    items = [p.describe() for _, p in sorted(request.app[platforms_key].items())]
    return json_response({"items": items, "next_cursor": None})


# -- clock -----------------------------------------------------------------------------------
def _clock_json(clock) -> dict:
    return {"now": to_rfc3339(clock.now()), "mode": clock.mode, "rate": clock.rate}


@routes.get("/api/v1/clock")
async def get_clock(request: web.Request) -> web.Response:
    return json_response(_clock_json(request.app[clock_key]))


@routes.post("/api/v1/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    clock = request.app[clock_key]
    data = await body(request, ClockAdvance)
    if not clock.can_advance:
        raise Conflict("the service runs on the wall clock, which cannot be advanced; start it with --clock virtual", code="clock_not_virtual")
    if not 0 < data.seconds <= 10 * 365 * 86400:
        raise Invalid("seconds: must be above 0 and at most ten years", field="seconds")
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
    where, args = ["matched=0", "id > ?"], [cursor if cursor is not None else -1]
    if q.get("platform"):
        where.append("platform=?")
        args.append(q["platform"])
    db = request.app[db_key]
    rows = await db.fetchall(
        "SELECT id, platform, platform_id, part, status, code, message, at, received_at FROM unmatched_receipts"
        f" WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        (*args, limit + 1),
    )
    (total,) = await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts WHERE matched=0")
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"platform": r[1], "platform_id": r[2], "part": r[3], "status": r[4], "code": r[5], "message": r[6],
         "at": to_rfc3339(r[7]), "received_at": to_rfc3339(r[8])}
        for r in rows
    ]
    return json_response({"items": items, "total": total, "next_cursor": paging.encode(rows[-1][0]) if more else None})
