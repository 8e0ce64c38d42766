"""Authentication, workspace isolation, bad input, CSV uploads, clock, system endpoints."""

from __future__ import annotations

import pytest


async def test_every_api_endpoint_needs_a_token(service):
    for method, path in [("GET", "/api/v1/tasks"), ("POST", "/api/v1/tasks"), ("GET", "/api/v1/audiences"),
                         ("GET", "/api/v1/clock"), ("GET", "/api/v1/simulator/profile"), ("GET", "/api/v1/platforms"),
                         ("GET", "/api/v1/tasks/1/messages")]:
        resp = await service.request(method, path)
        assert resp.status == 401, path
        body = await resp.json()
        assert body["error"]["code"] == "unauthorized"
    resp = await service.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401


async def test_workspaces_see_only_their_own(api, other_api):
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    for path in (f"/api/v1/tasks/{task['id']}", f"/api/v1/audiences/{aud['id']}", f"/api/v1/tasks/{task['id']}/messages",
                 f"/api/v1/simulator/ground-truth?task_id={task['id']}"):
        status, body = await other_api.call("GET", path)
        assert status == 404, path
    assert (await other_api.get("/api/v1/tasks"))["items"] == []
    assert (await other_api.get("/api/v1/audiences"))["items"] == []
    status, _ = await other_api.call("DELETE", f"/api/v1/tasks/{task['id']}")
    assert status == 404
    status, body = await other_api.call("POST", "/api/v1/tasks", json={
        "name": "steal", "audience_id": aud["id"], "content": {"text": "x"}})
    assert status == 400 and body["error"]["field"] == "audience_id"
    # the same task name is fine in another workspace
    own = await other_api.audience(["+8613800138000"])
    await other_api.task(own["id"], name="task")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"numbers": ["1"]}, "name"),
        ({"name": "a", "numbers": "x"}, "numbers"),
        ({"name": "", "numbers": []}, "name"),
        ({"name": "a", "numbers": [], "extra": 1}, "extra"),
    ],
)
async def test_bad_audience_bodies_name_the_field(api, body, field):
    status, resp = await api.call("POST", "/api/v1/audiences", json=body)
    assert status == 400 and resp["error"]["field"] == field and field in resp["error"]["message"]


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"platform": "nope"}, "platform"),
        ({"sms_type": "spam"}, "sms_type"),
        ({"content": {}}, "content"),
        ({"content": {"text": "x", "template": {"topic": "t", "body": "b"}}}, "content"),
        ({"content": {"text": "x" * 10000}}, "content.text"),
        ({"content": {"template": {"topic": "t", "body": "${a}"}}}, "content.template.params"),
        ({"send_type": "scheduled"}, "send_at"),
        ({"send_type": "scheduled", "send_at": "tomorrow"}, "send_at"),
        ({"send_type": "scheduled", "send_at": "2001-01-01T00:00:00Z"}, "send_at"),
        ({"send_type": "later"}, "send_type"),
        ({"audience_id": "x"}, "audience_id"),
        ({"audience_id": 999}, "audience_id"),
        ({"sub_activities": [{"id": 1}]}, "sub_activities.0.name"),
    ],
)
async def test_bad_task_bodies_name_the_field(api, patch, field):
    aud = await api.audience(["+8613800138000"])
    body = {"name": "t", "audience_id": aud["id"], "content": {"text": "hi"}, "platform": "sim"}
    body.update(patch)
    status, resp = await api.call("POST", "/api/v1/tasks", json=body)
    assert status == 400, resp
    assert resp["error"]["field"] == field, resp
    assert (await api.get("/api/v1/tasks"))["items"] == []


async def test_malformed_json_and_duplicate_names(api):
    status, body = await api.call("POST", "/api/v1/tasks", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["field"] == "body"
    status, body = await api.call("POST", "/api/v1/tasks", data=b"", headers={"Content-Type": "application/json"})
    assert status == 400
    aud = await api.audience(["+8613800138000"])
    first = await api.task(aud["id"], name="same")
    status, body = await api.call("POST", "/api/v1/tasks", json={"name": "same", "audience_id": aud["id"], "content": {"text": "x"}})
    assert status == 409 and body["error"]["field"] == "name"
    assert (await api.get(f"/api/v1/tasks/{first['id']}"))["content"] == {"text": "Hello"}
    status, body = await api.call("GET", "/api/v1/tasks/abc")
    assert status == 404
    status, body = await api.call("GET", "/api/v1/tasks?limit=0")
    assert status == 400 and body["error"]["field"] == "limit"
    status, body = await api.call("GET", "/api/v1/tasks?cursor=garbage!")
    assert status == 400 and body["error"]["field"] == "cursor"
    status, body = await api.call("PUT", "/api/v1/tasks")
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


async def test_csv_upload(api):
    csv_body = "name,phone\nAnn,+8613800138000\nBob,\nEve,garbage\nZed,+8613800138000\n\"Quoted, name\",13800138009\n"
    status, aud = await api.call("POST", "/api/v1/audiences?name=csv", data=csv_body.encode(), headers={"Content-Type": "text/csv"})
    assert status == 201 and aud["size"] == 5 and aud["name"] == "csv"
    status, body = await api.call("POST", "/api/v1/audiences?name=csv", data=b"phone\n1\n", headers={"Content-Type": "text/csv"})
    assert status == 409 and body["error"]["code"] == "name_taken"  # audience names are unique per workspace
    status, body = await api.call("POST", "/api/v1/audiences?name=csv2", data=b"name,mobile\nx,1\n", headers={"Content-Type": "text/csv"})
    assert status == 400 and body["error"]["field"] == "phone"
    status, body = await api.call("POST", "/api/v1/audiences", data=b"phone\n1\n", headers={"Content-Type": "text/csv"})
    assert status == 400 and body["error"]["field"] == "name"
    listing = await api.get("/api/v1/audiences")
    assert [a["name"] for a in listing["items"]] == ["csv"]


async def test_body_size_limit(tmp_path, aiohttp_client):
    from gateway.auth import create_token
    from gateway.web.app import create_app
    from gateway.web.keys import storage_key
    from tests.conftest import Api, make_config

    app = create_app(make_config(tmp_path, max_json_body=1024, max_csv_body=2048))
    client = await aiohttp_client(app)
    api = Api(client, await create_token(app[storage_key], "w", 0, admin=True))
    status, body = await api.call("POST", "/api/v1/audiences", json={"name": "big", "numbers": ["+8613800138000"] * 200})
    assert status == 413 and body["error"]["code"] == "body_too_large"
    csv_body = ("phone\n" + "+8613800138000\n" * 300).encode()
    status, body = await api.call("POST", "/api/v1/audiences?name=big", data=csv_body, headers={"Content-Type": "text/csv"})
    assert status == 413
    assert (await api.get("/api/v1/audiences"))["items"] == []


async def test_clock(api):
    clock = await api.get("/api/v1/clock")
    assert clock["mode"] == "virtual"
    moved = await api.advance(3600)
    assert moved["now"] > clock["now"]
    status, body = await api.call("POST", "/api/v1/clock/advance", json={"seconds": -5})
    assert status == 400 and body["error"]["field"] == "seconds"
    status, body = await api.call("POST", "/api/v1/clock/advance", json={"secs": 5})
    assert status == 400


async def test_wall_clock_refuses_advance(tmp_path, aiohttp_client):
    from gateway.auth import create_token
    from gateway.web.app import create_app
    from gateway.web.keys import storage_key
    from tests.conftest import Api, make_config

    app = create_app(make_config(tmp_path, clock="wall"))
    client = await aiohttp_client(app)
    api = Api(client, await create_token(app[storage_key], "w", 0, admin=True))
    assert (await api.get("/api/v1/clock"))["mode"] == "wall"
    status, body = await api.call("POST", "/api/v1/clock/advance", json={"seconds": 5})
    assert status == 409 and body["error"]["code"] == "clock_not_virtual"


async def test_system_endpoints(api, service):
    resp = await service.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    doc = await (await service.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/tasks" in doc["paths"] and "TaskCreate" in doc["components"]["schemas"]
    platforms = await api.get("/api/v1/platforms")
    assert "sim" in [p["name"] for p in platforms["items"]]
    aud = await api.audience(["+8613800138000"])
    await api.task(aud["id"])
    await api.advance(60)
    assert (await service.get("/metrics")).status == 401  # metrics are the whole service's: admin tokens only
    text = await (await service.get("/metrics", headers=api.headers)).text()
    assert 'smslab_submissions_total{platform="sim"} 1.0' in text
    assert "smslab_receipts_total" in text and "smslab_tasks{" in text


async def test_profile_and_presets(api):
    profile = await api.get("/api/v1/simulator/profile")
    assert profile["seed"] == 42 and profile["outcomes"] == {"delivered": 0.9, "failed": 0.07, "missing": 0.03}
    status, body = await api.call("PUT", "/api/v1/simulator/profile", json={"seed": 7})
    assert status == 200 and body["seed"] == 7 and body["outcomes"]["delivered"] == 0.9
    status, body = await api.call("PUT", "/api/v1/simulator/profile", json={"outcomes": {"delivered": -1}})
    assert status == 400 and "outcomes.delivered" in body["error"]["message"]
    assert (await api.get("/api/v1/simulator/profile"))["seed"] == 7
    for method, body in (("PUT", []), ("PATCH", []), ("PUT", {"receipt_delay": {"kind": "gamma"}})):
        status, err = await api.call(method, "/api/v1/simulator/profile", json=body)
        assert status == 400 and err["error"]["field"] in ("body", "receipt_delay.kind", "receipt_delay"), err
    assert (await api.get("/api/v1/simulator/profile"))["seed"] == 7
    presets = await api.get("/api/v1/simulator/presets")
    assert {"perfect", "realistic", "flaky", "outage", "black-hole"} <= {p["name"] for p in presets["items"]}
    active = await api.post("/api/v1/simulator/presets/black-hole", expect=200)
    assert active["outcomes"]["missing"] == 1.0
    status, _ = await api.call("POST", "/api/v1/simulator/presets/nope")
    assert status == 404


async def test_pushed_receipts_duplicates_and_unknown_ids(api):
    await api.profile(outcomes={"delivered": 0, "failed": 0, "missing": 1}, moderation={"review_seconds": 0})
    aud = await api.audience(["+8613800138000", "+8613800138001"])
    task = await api.task(aud["id"])
    await api.advance(1)
    truth = await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}")
    ids = [m["platform_id"] for m in truth["items"]]
    assert len(ids) == 2 and all(m["outcome"] == "missing" for m in truth["items"])
    receipts = [{"platform_id": ids[0], "status": "delivered"}, {"platform_id": ids[0], "status": "delivered"},
                {"platform_id": ids[1], "status": "failed", "code": "EXPIRED"}, {"platform_id": "sim-unknown", "status": "delivered"}]
    resp = await api.post("/api/v1/platforms/sim/receipts", {"receipts": receipts}, expect=200)
    assert resp["accepted"] == 4
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (detail["succeeded"], detail["failed"], detail["pending"], detail["duplicate_receipts"]) == (1, 1, 0, 1)
    assert detail["status"] == "completed" or detail["status"] == "sending"
    status, _ = await api.call("POST", "/api/v1/platforms/sim/receipts", json={"receipts": []}, headers={"Authorization": ""})
    assert status == 401
    status, body = await api.call("POST", "/api/v1/platforms/sim/receipts", json={"receipts": [{"platform_id": "x", "status": "maybe"}]})
    assert status == 400


async def test_reset_endpoint_forgets_planned_receipts(api):
    await api.profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 60},
                      moderation={"review_seconds": 0})
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    await api.advance(1)
    assert len((await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"]) == 1
    body = await api.post("/api/v1/simulator/reset", expect=200)
    assert body["reset"] is True and body["profile"]["receipt_delay"]["seconds"] == 60
    assert (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"] == []
    await api.advance(120)
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["pending"] == 1
