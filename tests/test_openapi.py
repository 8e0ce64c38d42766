"""The OpenAPI document is valid, covers every route, and is exact: a schemathesis run over every
operation against a real ``smslab serve`` finds no server error and no answer that the document
does not describe (status, content type, headers, body).

Run the schemathesis part alone with (SMSLAB_SCHEMATHESIS_EXAMPLES=200 for a longer hunt):
    python3 -m pytest -q -p no:cacheprovider tests/test_openapi.py -k schemathesis
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter

import pytest
from aiohttp import web

from gateway.domain.labels import check_name, forbidden_character
from gateway.errors import Invalid
from gateway.web import openapi, schemas
from tests.conftest import make_config


async def _document(service) -> dict:
    resp = await service.get("/api/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    return await resp.json()


# -- (a) valid -----------------------------------------------------------------------------------
async def test_the_served_document_is_valid_openapi(service):
    from openapi_spec_validator import validate

    doc = await _document(service)
    validate(doc)
    assert doc["openapi"] == "3.1.0"


# -- (b) complete ----------------------------------------------------------------------------------
async def test_every_route_is_documented_and_every_operation_is_a_route(service):
    app = service.server.app
    doc = await _document(service)
    routes = {(method, path) for method, path, _ in openapi.routes_of(app)}
    operations = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == operations
    assert openapi.undocumented(app) == []
    assert not [op for ops in doc["paths"].values() for op in ops.values() if op.get("x-smslab-undocumented")]
    handlers = {handler for _, _, handler in openapi.routes_of(app)}
    assert [h.__name__ for h in openapi.DOCUMENTED if h not in handlers] == []  # documentation of no route
    # the SPEC §9 table, by name
    for method, path in [("post", "/api/v1/audiences"), ("get", "/api/v1/audiences/{id}"), ("patch", "/api/v1/tasks/{id}"),
                         ("get", "/api/v1/tasks/{id}/messages"), ("post", "/api/v1/tasks/{id}/audiences"),
                         ("post", "/api/v1/clock/advance"), ("patch", "/api/v1/simulator/profile"),
                         ("post", "/api/v1/simulator/presets/{name}"), ("get", "/api/v1/simulator/ground-truth"),
                         ("post", "/api/v1/platforms/{name}/receipts"), ("get", "/metrics"),
                         # issue 14, item 6: replies and opt-outs
                         ("get", "/api/v1/inbound"), ("get", "/api/v1/opt-outs"), ("post", "/api/v1/opt-outs"),
                         ("delete", "/api/v1/opt-outs/{number}"), ("post", "/api/v1/simulator/mo")]:
        assert method in doc["paths"][path], (method, path)


def test_a_route_added_without_documentation_is_caught(tmp_path):
    from gateway.web.app import create_app

    async def extra(request):  # pragma: no cover - never called
        return web.json_response({})

    app = create_app(make_config(tmp_path))
    app.router.add_get("/api/v1/extra/{key}", extra)
    assert openapi.undocumented(app) == ["GET /api/v1/extra/{key}"]
    op = openapi.openapi_document(app)["paths"]["/api/v1/extra/{key}"]["get"]
    assert op["x-smslab-undocumented"] is True and op["parameters"][0]["name"] == "key"


async def test_operations_say_what_they_need(service):
    doc = await _document(service)
    paths = doc["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            public = op.get("security") == [] or op.get("security") == [{"bearer": []}, {}]
            assert public or "401" in op["responses"], (method, path)
            if method != "get":
                assert "503" in op["responses"], (method, path)
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(p["in"] == "path" and p["name"] == name and p["required"] for p in op["parameters"])
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert ok and all(s == "204" or op["responses"][s].get("content") for s in ok), (method, path)
    public = {p for p, ops in paths.items() if ops["get" if "get" in ops else next(iter(ops))].get("security") == []}
    expected_public = {"/healthz", "/api/openapi.json", "/"}
    if "/api/v1/platforms/{name}/{token}/receipts" in paths:  # smslab-aliyun: a secret path token, no bearer
        expected_public.add("/api/v1/platforms/{name}/{token}/receipts")
    assert public == expected_public
    assert set(paths["/metrics"]["get"]["responses"]) == {"200", "401", "403"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert paths["/api/v1/clock/advance"]["post"]["responses"]["403"]["content"]["application/json"]["schema"]["allOf"][1][
        "properties"]["error"]["properties"]["code"]["enum"] == ["admin_required"]
    audiences = paths["/api/v1/audiences"]["post"]
    assert {"application/json", "text/csv"} <= set(audiences["requestBody"]["content"])
    assert [p["name"] for p in audiences["parameters"]] == ["name"]
    assert paths["/api/v1/simulator/profile"]["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProfilePatch"}
    limit = next(p for p in paths["/api/v1/tasks"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["type"], limit["schema"]["minimum"], limit["schema"]["maximum"]) == ("integer", 1, 1000)
    components = doc["components"]["schemas"]
    assert components["ClockAdvance"]["properties"]["seconds"]["exclusiveMinimum"] == 0
    assert components["TaskCreate"]["properties"]["name"]["minLength"] == 1
    assert sorted(components["TaskCreate"]["properties"]["sms_type"]["enum"]) == ["digital", "marketing", "notification"]
    assert components["TaskCreate"]["properties"]["platform"]["enum"] == ["sim"]
    reason = components["FailureReason"]
    assert set(reason["properties"]) == {"code", "message", "part"} and reason["required"] == ["code", "message"]


# -- the patterns say what the server checks ---------------------------------------------------------
def _name_accepted(text: str) -> bool:
    try:
        check_name(text)
        return True
    except Invalid:
        return False


def _ecma(pattern: str) -> re.Pattern:
    """A JSON Schema pattern as ECMA-262 reads it: ``$`` is the very end (in Python it also
    matches before a final newline)."""
    return re.compile(pattern.replace("$", r"\Z"))


def test_the_name_patterns_match_the_server_rules_for_every_character():
    name = _ecma(schemas.NAME_PATTERN)
    text = _ecma(schemas.TEXT_PATTERN)
    not_blank = re.compile(schemas.NOT_BLANK_PATTERN)
    # every character of the BMP, and a sample of the other planes (none of which is a control,
    # a space or a bidirectional control)
    for code in [*range(0x10000), *range(0x10000, sys.maxunicode + 1, 251)]:
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        for sample in (ch, f"a{ch}", f"{ch}b "):
            assert bool(name.match(sample)) == _name_accepted(sample), hex(code)
        assert bool(text.match(ch)) == (forbidden_character(ch) is None), hex(code)
        assert bool(not_blank.search(ch)) == bool(ch.strip()), hex(code)
    assert not name.match("") and not name.match(" \u3000 ") and text.match("")


def test_the_number_search_pattern_matches_the_server_rule():
    from gateway.tasks import _number_search

    pattern = _ecma(schemas.NUMBER_SEARCH_PATTERN)
    for q in ["", "8000", "+86 138", "(0)-1", " ", "+", "abc", "１２", "8 a", "--", "1\n", "٣"]:
        try:
            _number_search(q)
            accepted = True
        except Invalid:
            accepted = False
        assert bool(pattern.match(q)) == accepted, repr(q)


def test_the_enums_are_the_values_the_services_know():
    from typing import get_args

    from gateway import tasks
    from gateway.domain import results
    from gateway.domain.lifecycle import Status

    assert set(get_args(schemas.TaskStatus)) == {s.value for s in Status}
    assert set(get_args(schemas.SmsType)) == set(tasks.SMS_TYPES)
    assert set(get_args(schemas.SendType)) == set(tasks.SEND_TYPES)
    assert set(get_args(schemas.Result)) == set(results.RESULT_CODES)


def test_the_documented_webhook_body_is_the_one_the_platforms_decode():
    """``schemas.PushedReceipts`` documents ``gateway.wire.webhooks``' decoder: the same bodies pass."""
    import msgspec

    from gateway.platform import WebhookRejected
    from gateway.web.bodies import decode
    from gateway.wire.webhooks import decode_receipts

    good = {"platform_id": "x", "status": "delivered"}
    samples = [{"receipts": []}, {"receipts": [good]}, {"receipts": [{**good, "status": "failed", "code": "E", "message": "m"}]},
               {"receipts": [{**good, "status": "lost"}]}, {"receipts": [{**good, "platform_id": ""}]},
               {"receipts": [{**good, "platform_id": "x" * 257}]}, {"receipts": [{**good, "part": 62}]},
               {"receipts": [{**good, "part": 63}]}, {"receipts": [{**good, "part": -1}]},
               {"receipts": [{**good, "at": 0}]}, {"receipts": [{**good, "at": -1}]}, {"receipts": [{**good, "at": 2.2e11}]},
               {"receipts": [{**good, "at": "2030-01-01T00:00:00Z"}]}, {"receipts": [{**good, "at": None}]},
               {"receipts": [{**good, "code": "c" * 65}]}, {"receipts": [{**good, "message": "m" * 1001}]},
               {"receipts": [{**good, "extra": 1}]}, {"receipts": [], "extra": 1}, {}, {"receipts": [{"status": "failed"}]}]
    for sample in samples:
        body = msgspec.json.encode(sample)
        try:
            decode_receipts(body, 0.0)
            wire = True
        except WebhookRejected:
            wire = False
        try:
            decode(body, schemas.PushedReceipts)
            documented = True
        except Invalid:
            documented = False
        assert wire == documented, sample


# -- what the schemathesis runs found: each a 4xx naming the field, nothing stored ---------------------
async def _nothing_new(api, tasks: int, audiences: int) -> None:
    assert len((await api.get("/api/v1/tasks"))["items"]) == tasks
    assert len((await api.get("/api/v1/audiences"))["items"]) == audiences


async def test_inputs_the_fuzzing_found_are_refused_naming_the_field(api):
    await api.profile(moderation={"review_seconds": 0}, outcomes={"delivered": 0, "failed": 1, "missing": 0})
    aud = await api.audience(["+8613800138000", "+8613800138001"], name="crowd")
    task = await api.task(aud["id"])
    await api.advance(60)
    checks = [
        # a task's audience named like one that exists: was a 500 (IntegrityError)
        ("POST", f"/api/v1/tasks/{task['id']}/audiences", {"json": {"name": "crowd", "results": ["failed"]}}, 409, "name"),
        # an empty limit is no number
        ("GET", "/api/v1/tasks?limit=", {}, 400, "limit"),
        ("GET", f"/api/v1/simulator/ground-truth?task_id={task['id']}&limit=", {}, 400, "limit"),
        # a list with an empty item, or an item with spaces
        ("GET", "/api/v1/tasks?status=,", {}, 400, "status"),
        ("GET", "/api/v1/tasks?status=scheduled,%20sending", {}, 400, "status"),
        ("GET", f"/api/v1/tasks/{task['id']}/messages?result=failed,", {}, 400, "result"),
        # a name twice: in the query and in the JSON body
        ("POST", "/api/v1/audiences?name=other", {"json": {"name": "x", "numbers": []}}, 400, "name"),
        # a send time that is no time, also when the send type leaves it unused
        ("POST", "/api/v1/tasks", {"json": {"name": "t2", "audience_id": aud["id"], "content": {"text": "x"},
                                            "send_at": ""}}, 400, "send_at"),
        ("PATCH", f"/api/v1/tasks/{task['id']}", {"json": {"send_at": "soon"}}, 400, "send_at"),
        # a task id 0 in the query
        ("GET", "/api/v1/simulator/ground-truth?task_id=0", {}, 400, "task_id"),
        # an unknown key "" in a body: named by the object holding it
        ("POST", "/api/v1/platforms/sim/receipts", {"json": {"receipts": [], "": 1}}, 400, "body"),
        ("POST", "/api/v1/platforms/sim/receipts", {"json": {"receipts": [{"platform_id": "x", "status": "failed", "": 1}]}},
         400, "receipts.0"),
        ("POST", "/api/v1/platforms/sim/receipts", {"json": {"receipts": [], "a b": 1}}, 400, "body"),
        ("POST", "/api/v1/tasks", {"json": {"name": "t3", "audience_id": aud["id"], "content": {"text": "x", "": 2}}},
         400, "content"),
    ]
    for method, path, kw, expect, field in checks:
        status, body = await api.call(method, path, **kw)
        assert (status, body["error"].get("field")) == (expect, field), (method, path, body)
    await _nothing_new(api, tasks=1, audiences=1)
    # bad input is answered before the task's state: 400 for a bad filter, even once details expired
    await api.advance(169 * 3600)
    status, body = await api.call("GET", f"/api/v1/tasks/{task['id']}/messages?result=lost")
    assert status == 400 and body["error"]["field"] == "result"
    assert (await api.call("GET", f"/api/v1/tasks/{task['id']}/messages"))[0] == 410
    # a value outside an enum is told the values allowed
    status, body = await api.call("POST", "/api/v1/tasks", json={"name": "t4", "audience_id": aud["id"],
                                                                 "content": {"text": "x"}, "sms_type": "spam"})
    assert status == 400 and body["error"]["field"] == "sms_type"
    assert "one of digital, marketing, notification" in body["error"]["message"]


# -- (c) schemathesis over every operation ---------------------------------------------------------------
# Per operation, after a few real resources were made: its boundary cases (schemathesis's
# coverage phase: limits, enums, required fields, each one just inside and just outside), then
# EXAMPLES generated cases that fit the document and EXAMPLES that do not (derandomized: the same
# cases every run). Every answer is checked: no 5xx; a status, content type, headers and body the
# document gives for that operation; bad input refused with a 4xx that changed nothing stored.
EXAMPLES = int(os.environ.get("SMSLAB_SCHEMATHESIS_EXAMPLES", "15"))
SMALL_ADVANCE = 600.0  # a generated clock advance moves at most 10 minutes
TEXT = "20% off this weekend"


def _setup(server, token: str) -> dict[str, list[int]]:
    """Real resources for the operations that need an id: audiences, and tasks in the states that
    change the answers (sent with results, details expired, rejected, scheduled and editable)."""

    def call(method, path, body=None):
        status, data = server.request(method, path, token, body)
        assert status in (200, 201), (method, path, status, data)
        return data

    call("PUT", "/api/v1/simulator/profile", {"seed": 7, "moderation": {"review_seconds": 0, "banned_words": ["lottery"]},
                                               "receipt_delay": {"kind": "fixed", "seconds": 2},
                                               "outcomes": {"delivered": 0.6, "failed": 0.3, "missing": 0.1}})
    numbers = ["+8613800138000", "13800138001", "", "abc", "+8613800138000", "+15005550000", "+15005550001",
               "+15005550010", "+15005550020", "+15005550030", "+14155552671"] + [f"+86139{i:08d}" for i in range(20)]
    aud = call("POST", "/api/v1/audiences", {"name": "seeded", "numbers": numbers})
    spare = call("POST", "/api/v1/audiences", {"name": "spare", "numbers": ["+8613800138000"]})
    task = {"platform": "sim", "sms_type": "marketing", "signature": "Shop", "audience_id": aud["id"],
            "sub_activities": [{"id": "a1", "name": "Spring"}, {"id": 7, "name": "Seven"}]}
    expired = call("POST", "/api/v1/tasks", {**task, "name": "expired", "content": {"text": TEXT}})
    call("POST", "/api/v1/clock/advance", {"seconds": 5})
    call("POST", "/api/v1/clock/advance", {"seconds": 169 * 3600})  # past the 168-hour retention
    done = call("POST", "/api/v1/tasks", {**task, "name": "done", "content": {"text": "Long message " * 30 + "€"}})
    digital = call("POST", "/api/v1/tasks", {**task, "name": "digital", "sms_type": "digital", "content": {
        "template": {"topic": "code", "body": "Your code is ${code}", "params": {"code": 1234}}}})
    call("POST", "/api/v1/clock/advance", {"seconds": 10})
    rejected = call("POST", "/api/v1/tasks", {**task, "name": "rejected", "content": {"text": "win the lottery"}})
    scheduled = call("POST", "/api/v1/tasks", {**task, "name": "scheduled", "content": {"text": TEXT},
                                               "send_type": "scheduled", "send_at": "2100-01-01T00:00:00Z"})
    call("POST", "/api/v1/clock/advance", {"seconds": 1})
    call("POST", "/api/v1/platforms/sim/receipts", {"receipts": [
        {"platform_id": "sim-unknown-1", "status": "failed", "code": "EXPIRED", "part": 0},
        {"platform_id": "sim-unknown-2", "status": "delivered", "at": "2030-01-01T00:00:00Z"}]})
    generated = call("POST", f"/api/v1/tasks/{done['id']}/audiences", {"name": "failed ones", "results": ["failed"]})
    assert call("GET", f"/api/v1/tasks/{rejected['id']}")["status"] == "rejected"
    assert call("GET", f"/api/v1/tasks/{scheduled['id']}")["can_edit"] is True
    assert call("GET", f"/api/v1/tasks/{expired['id']}")["details_expired"] is True
    assert call("GET", f"/api/v1/tasks/{done['id']}/messages")["total"] > 0
    return {"tasks": [t["id"] for t in (done, digital, expired, rejected, scheduled)],
            "audiences": [a["id"] for a in (aud, spare, generated)]}


def _stored(server, token: str) -> tuple:
    """What the workspace holds, in the fields that only a request changes (the engine moves
    statuses and counts, never these): refused input must leave it as it was."""

    def get(path):
        status, data = server.request("GET", path, token)
        assert status == 200, (path, status, data)
        return data

    tasks = [(t["id"], t["name"], t["content_summary"], t["audience_id"], t["platform"], t["sms_type"], t["send_type"],
              t["send_at"], t["sub_activities"]) for t in get("/api/v1/tasks?limit=1000")["items"]]
    audiences = [(a["id"], a["name"], a["size"]) for a in get("/api/v1/audiences?limit=1000")["items"]]
    return (tasks, audiences, get("/api/v1/simulator/profile"), get("/api/v1/clock")["now"],
            get("/api/v1/receipts/unmatched?limit=1")["total"])


def _valid_number(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _clamp_advance(case):
    """A clock advance moves the clock at most SMALL_ADVANCE: hundreds of them stay within hours
    (a valid ``seconds`` is shortened, and stays valid; an invalid one is left to be refused)."""
    body = case.body
    if isinstance(body, dict) and _valid_number(body.get("seconds"), 1e-300, schemas.MAX_ADVANCE):
        case.body = {**body, "seconds": min(float(body["seconds"]), SMALL_ADVANCE)}
    return case


def _with_audience(pair):
    """A task body with a real audience, so that some tasks get created (only a valid
    ``audience_id`` is swapped, for another valid one)."""
    case, audience = pair
    body = case.body
    if audience is not None and isinstance(body, dict) and _valid_number(body.get("audience_id"), 1, 2**63 - 1) \
            and isinstance(body["audience_id"], int):
        case.body = {**body, "audience_id": audience}
    return case


def _order(label: str) -> tuple:
    """What deletes the seeded resources or changes the carrier's profile runs last."""
    last = ("DELETE", "PUT /api/v1/simulator/profile", "PATCH /api/v1/simulator/profile", "POST /api/v1/simulator/presets",
            "POST /api/v1/simulator/reset")
    return next(((1 + i, label) for i, prefix in enumerate(last) if label.startswith(prefix)), (0, label))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``smslab serve`` on 127.0.0.1 with a virtual clock and a fresh database, and an admin token."""
    from tests.pg_support import db_target
    from tests.procs import Server, create_token

    folder = tmp_path_factory.mktemp("openapi")
    db = db_target(folder, session=True)
    token = create_token(db, "schemathesis", admin=True)
    server = Server(db, "--clock", "virtual", "--clock-start", "2030-01-01T00:00:00Z", log_path=folder / "serve.log")
    try:
        yield server, token, folder / "serve.log"
    finally:
        server.stop()


def test_schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe(served):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                                   response_headers_conformance, response_schema_conformance,
                                                   status_code_conformance)

    server, token, log = served
    started = time.monotonic()
    ids = _setup(server, token)
    status, document = server.request("GET", "/api/openapi.json")
    assert status == 200
    # the token goes with every request (no generated Authorization header); from_url would leave
    # the document's own route out
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(document, config=config)
    schemathesis.serializer.alias("application/csv", "text/plain")
    headers = {"Authorization": f"Bearer {token}"}
    conformance = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
                   response_schema_conformance]
    checks = {GenerationMode.POSITIVE: conformance, GenerationMode.NEGATIVE: [*conformance, negative_data_rejection]}
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: _order(op.label))
    assert {op.label for op in operations} == {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    failures: dict[str, str] = {}
    statuses: dict[str, Counter] = {}

    def check(case, label: str, chosen: list) -> None:
        if case.operation.path == "/api/v1/clock/advance":
            _clamp_advance(case)
        writes = case.method.upper() != "GET"
        before = _stored(server, token) if writes else None
        response = case.call(base_url=server.base, headers=headers, timeout=60)
        statuses.setdefault(label, Counter())[response.status_code] += 1
        case.validate_response(response, checks=chosen, headers=headers)
        if writes and 400 <= response.status_code < 500:
            assert _stored(server, token) == before, f"{label} answered {response.status_code} but changed what is stored:" \
                                                     f" {case.as_curl_command()}"

    def fuzz(strategy, label: str, chosen: list) -> None:
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            check(case, label, chosen)

        run()

    def report(key: str, exc: BaseException) -> None:
        def text(e: BaseException) -> str:  # hypothesis wraps what it saw (a flaky failure, say) in groups
            inner = "".join(f"\n  - {text(sub)}" for sub in getattr(e, "exceptions", ()))
            return f"{type(e).__name__}: {e}{inner}"

        failures.setdefault(key, text(exc)[:4000])

    for op in operations:
        label = op.label
        # boundary cases
        generation = schema.config.generation_for(operation=op, phase="coverage")
        for case in schema.iter_coverage_cases(op, generation_modes=list(GenerationMode), generation_config=generation):
            mode = case.meta.generation.mode if case.meta is not None else GenerationMode.POSITIVE
            try:
                check(case, label, checks[mode])
            except (Exception, BaseExceptionGroup) as exc:  # one report per operation, for every operation
                report(f"{label} (coverage, {mode.value})", exc)
        # generated cases, with real ids among the generated ones
        real_ids = ids["audiences"] if op.path.startswith("/api/v1/audiences/") else ids["tasks"]
        raw = document["paths"][op.path][op.method.lower()]
        for mode in GenerationMode:
            if mode is GenerationMode.NEGATIVE and not (raw.get("parameters") or raw.get("requestBody")):
                continue  # nothing to get wrong
            strategies = [op.as_strategy(generation_mode=mode)]
            if "{id}" in op.path:
                strategies += [op.as_strategy(generation_mode=mode, path_parameters={"id": i}) for i in real_ids]
            elif op.path == "/api/v1/simulator/ground-truth":
                strategies += [op.as_strategy(generation_mode=mode, query={"task_id": i}) for i in real_ids]
            strategy = st.one_of(strategies)
            if label in ("POST /api/v1/tasks", "PATCH /api/v1/tasks/{id}"):
                strategy = st.tuples(strategy, st.sampled_from([None, *ids["audiences"]])).map(_with_audience)
            try:
                fuzz(strategy, label, checks[mode])
            except (Exception, BaseExceptionGroup) as exc:
                report(f"{label} ({mode.value})", exc)

    total = sum(sum(seen.values()) for seen in statuses.values())
    print(f"\nschemathesis: {total} requests over {len(operations)} operations in {time.monotonic() - started:.1f} s")
    for label, seen in sorted(statuses.items()):
        print(f"  {label}: {dict(sorted(seen.items()))}")
    assert server.proc.poll() is None, "smslab serve died"
    assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items()) + f"\n(server log: {log})"
    assert total >= 300 and set(statuses) == {op.label for op in operations}
    # the real resources were reached: created, found, listed, refused for their state
    assert {201} <= set(statuses["POST /api/v1/tasks"]) and {200, 404} <= set(statuses["GET /api/v1/tasks/{id}"])
    assert {200, 410} <= set(statuses["GET /api/v1/tasks/{id}/messages"])
    assert {400, 409} <= set(statuses["PATCH /api/v1/tasks/{id}"])
