"""The REST API of SPEC §9: audiences, tasks, platforms, clock, simulated carrier."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from gateway import audiences, paging
from gateway.audiences import AudienceWriter
from gateway.clock import MAX_TIME, parse_rfc3339, to_rfc3339
from gateway.domain.labels import check_name, check_text
from gateway.domain.phone_csv import CsvError, PhoneColumnReader
from gateway.errors import Conflict, Invalid, NotFound

from . import present
from . import schemas as S
from .bodies import body, chunks, json_response
from .keys import clock_key, config_key, engine_key, platforms_key, storage_key, tasks_key, uploads_key
from .middleware import principal_key, require_admin, workspace_key
from .openapi import CURSOR, LIMIT, Param, documented
from .schemas import MAX_ADVANCE, AudienceCreate, ClockAdvance, GenerateAudience, TaskCreate, TaskPatch  # noqa: F401

routes = web.RouteTableDef()
NAME_TAKEN = {409: ("name_taken",)}
NOT_FOUND = {404: ("not_found",)}
# where a new resource's id leads (OpenAPI links: a client, or schemathesis, follows them)
_NEW_ID = {"id": "$response.body#/id"}
AUDIENCE_LINKS = {"GetAudience": ("get_audience", _NEW_ID), "DeleteAudience": ("delete_audience", _NEW_ID)}
TASK_LINKS = {
    "GetTask": ("get_task", _NEW_ID), "EditTask": ("patch_task", _NEW_ID), "DeleteTask": ("delete_task", _NEW_ID),
    "TaskMessages": ("task_messages", _NEW_ID), "AudienceFromResults": ("task_audience", _NEW_ID),
    "GroundTruth": ("ground_truth", {"task_id": "$response.body#/id"}),
}


def _choices(raw: str | None, allowed: tuple[str, ...], field: str) -> None:
    """A comma-separated choice (``?status=scheduled,sending``): every item one of ``allowed``
    (an empty item too is refused); an empty value (``?status=``) chooses nothing, as absent."""
    for item in raw.split(",") if raw else ():
        if item not in allowed:
            raise Invalid(f"{field}: unknown {field} {item!r}; one of {', '.join(allowed)}", field=field)


def _check_send_at(send_at: str | None) -> None:
    """A ``send_at`` given is a time, also when the send type leaves it unused (it is not
    ignored: ``"send_at": ""`` is a mistake to answer)."""
    if send_at is None:
        return
    try:
        parse_rfc3339(send_at)
    except ValueError:
        raise Invalid("send_at: not an RFC 3339 time between 1970 and the year 9000 (like 2030-01-01T09:00:00Z)",
                      field="send_at") from None


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
@documented(
    "Create an audience", "audiences", body=AudienceCreate, csv=True, status=201, response=S.Audience, errors=NAME_TAKEN,
    links=AUDIENCE_LINKS,
    query=(Param("name", S.Name, "the audience's name, for a CSV body (a JSON body names it itself)"),),
    description="From a JSON list of numbers, or from a CSV body (`text/csv`) with a header row and a `phone`"
                " column, streamed, with the name in the query (`?name=`). Every entry is kept and classified"
                " (valid, empty, invalid, duplicate); a name is unique in the workspace.",
)
async def create_audience(request: web.Request) -> web.Response:
    app = request.app
    config = app[config_key]
    csv_body = request.content_type in ("text/csv", "application/csv", "text/plain")
    if csv_body:
        name = check_name(request.query.get("name"))
    else:
        if "name" in request.query:  # one name, in one place: the body says it
            raise Invalid("name: a JSON body gives the audience's name itself; ?name= is for a CSV body", field="name")
        data = await body(request, AudienceCreate)
        name = check_name(data.name)
    writer = AudienceWriter(app[uploads_key], app[clock_key], config.default_region, request[workspace_key], name)
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
    return json_response(present.audience_json(result), status=201)


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
@documented("List audiences, newest first", "audiences", query=(LIMIT, CURSOR), response=S.AudiencePage)
async def list_audiences(request: web.Request) -> web.Response:
    q = request.query
    page = await audiences.page(request.app[storage_key].audiences, request[workspace_key], paging.limit_of(q.get("limit")),
                                paging.decode(q.get("cursor")))
    return json_response(present.audience_page(page))


@routes.get("/api/v1/audiences/{id}")
@documented("One audience", "audiences", response=S.Audience, errors=NOT_FOUND)
async def get_audience(request: web.Request) -> web.Response:
    audience = await audiences.get(request.app[storage_key].audiences, request[workspace_key], _id(request))
    return json_response(present.audience_json(audience))


@routes.delete("/api/v1/audiences/{id}")
@documented("Delete an audience", "audiences", status=204, errors=NOT_FOUND,
            description="Tasks not sent yet that use it fail with a reason when due.")
async def delete_audience(request: web.Request) -> web.Response:
    await audiences.delete(request.app[storage_key].audiences, request[workspace_key], _id(request))
    return web.Response(status=204)


# -- tasks -----------------------------------------------------------------------------------
@routes.post("/api/v1/tasks")
@documented("Create a send task", "tasks", body=TaskCreate, status=201, response=S.TaskDetail, errors=NAME_TAKEN,
            links=TASK_LINKS,
            description="The task enters moderation; a name is unique in the workspace.")
async def create_task(request: web.Request) -> web.Response:
    data = await body(request, TaskCreate)
    _check_send_at(data.send_at)
    task = await request.app[tasks_key].create(request[workspace_key], data)
    return json_response(present.task_json(task, request.app[clock_key].now()), status=201)


@routes.get("/api/v1/tasks")
@documented(
    "List tasks, newest first", "tasks", response=S.TaskPage, query=(
        LIMIT, CURSOR, Param("status", list[S.TaskStatus], "only these statuses (comma-separated)"),
        Param("platform", str, "only this platform's tasks"),
        Param("q", S.SearchText, "text in the name, the content summary or the audience name"),
    ))
async def list_tasks(request: web.Request) -> web.Response:
    q = request.query
    _choices(q.get("status"), get_args(S.TaskStatus), "status")
    page = await request.app[tasks_key].page(
        request[workspace_key], paging.limit_of(q.get("limit")), paging.decode(q.get("cursor")),
        q.get("status"), q.get("platform"), q.get("q"),
    )
    return json_response(present.task_page(page, request.app[clock_key].now()))


@routes.get("/api/v1/tasks/{id}")
@documented("Task details", "tasks", response=S.TaskDetail, errors=NOT_FOUND)
async def get_task(request: web.Request) -> web.Response:
    task = await request.app[tasks_key].get(request[workspace_key], _id(request))
    return json_response(present.task_json(task, request.app[clock_key].now()))


@routes.patch("/api/v1/tasks/{id}")
@documented("Edit a task", "tasks", body=TaskPatch, response=S.TaskDetail,
            errors={404: ("not_found",), 409: ("task_locked", "name_taken")},
            description="Allowed for a rejected task, or a scheduled one whose send time is more than 5 minutes"
                        " away; otherwise 409 `task_locked` with the reason. The task enters moderation again.")
async def patch_task(request: web.Request) -> web.Response:
    task_id = _id(request)
    data = await body(request, TaskPatch)
    _check_send_at(data.send_at)
    task = await request.app[tasks_key].update(request[workspace_key], task_id, data)
    return json_response(present.task_json(task, request.app[clock_key].now()))


@routes.delete("/api/v1/tasks/{id}")
@documented("Delete a task", "tasks", status=204, errors={404: ("not_found",), 409: ("task_locked",)},
            description="The same rule as an edit: otherwise 409 `task_locked` with the reason.")
async def delete_task(request: web.Request) -> web.Response:
    await request.app[tasks_key].delete(request[workspace_key], _id(request))
    return web.Response(status=204)


@routes.get("/api/v1/tasks/{id}/messages")
@documented(
    "Per-number rows of a task", "tasks", response=S.MessagePage, errors={404: ("not_found",), 410: ("details_expired",)},
    query=(LIMIT, CURSOR, Param("result", list[S.Result], "only these results (comma-separated)"),
           Param("q", S.NumberSearch, "digits of the number (+, spaces, dashes and brackets are ignored)")),
    description="Numbers masked to their last four digits; `total` counts the rows the filter chooses."
                " 410 `details_expired` once the retention (168 hours) has passed.")
async def task_messages(request: web.Request) -> web.Response:
    q = request.query
    task_id, limit, cursor = _id(request), paging.limit_of(q.get("limit")), paging.decode(q.get("cursor"))
    page = await request.app[tasks_key].messages(request[workspace_key], task_id, limit, cursor, q.get("result"), q.get("q"))
    return json_response(present.message_page(page))


@routes.post("/api/v1/tasks/{id}/audiences")
@documented("Generate an audience from a task's results", "tasks", body=GenerateAudience, status=201,
            response=S.Audience, errors={404: ("not_found",), 409: ("name_taken",), 410: ("details_expired",)},
            links=AUDIENCE_LINKS)
async def task_audience(request: web.Request) -> web.Response:
    task_id = _id(request)
    data = await body(request, GenerateAudience)
    audience = await request.app[tasks_key].generate_audience(request[workspace_key], task_id, data)
    return json_response(present.audience_json(audience), status=201)


# -- platforms -------------------------------------------------------------------------------
@routes.get("/api/v1/platforms")
@documented("The registered platforms and what each can do", "platforms", response=S.PlatformPage)
async def list_platforms(request: web.Request) -> web.Response:
    ws = request[workspace_key]
    items = [p.for_workspace(ws).describe() for _, p in sorted(request.app[platforms_key].items())]
    return json_response({"items": items, "next_cursor": None})


# -- clock -----------------------------------------------------------------------------------
def _clock_json(clock) -> dict:
    return {"now": to_rfc3339(clock.now()), "mode": clock.mode, "rate": clock.rate}


@routes.get("/api/v1/clock")
@documented("The service clock", "clock", response=S.Clock)
async def get_clock(request: web.Request) -> web.Response:
    return json_response(_clock_json(request.app[clock_key]))


@routes.post("/api/v1/clock/advance")
@documented("Advance the virtual clock", "clock", body=ClockAdvance, response=S.Clock, access="admin",
            errors={409: ("clock_not_virtual",)},
            description="Returns once everything that fell due was processed. Service-wide: an admin token only;"
                        " 409 `clock_not_virtual` on the wall clock.")
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
@documented("Receipts for unknown message ids, kept aside", "platforms", response=S.UnmatchedPage,
            query=(LIMIT, CURSOR, Param("platform", S.SearchText, "only this platform's receipts")))
async def unmatched_receipts(request: web.Request) -> web.Response:
    """Receipts whose message id no task knows: kept, counted and shown, never dropped. (A receipt
    that overtook its submission's acknowledgement is applied when the acknowledgement comes,
    and leaves this list.)"""
    q = request.query
    limit, cursor = paging.limit_of(q.get("limit")), paging.decode(q.get("cursor"))
    # a workspace sees the receipts its tokens posted; an admin also those the platforms pushed
    # themselves (they belong to no workspace until matched)
    total, rows = await request.app[storage_key].unmatched.page(
        request[workspace_key], request[principal_key].admin, check_text(q["platform"], "platform") if q.get("platform") else None, cursor, limit + 1)
    return json_response(present.unmatched_page(paging.Page.of(rows, limit, total)))
