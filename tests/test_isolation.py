"""Workspaces cannot reach each other: receipts posted with a token, the simulated carrier's
profile, presets, reset and ground truth, and the service-wide controls (clock, metrics) that
need an admin token. Each test replays what an attacker (or a careless colleague) did on main."""

from __future__ import annotations

import asyncio

ALL_DELIVERED = {"outcomes": {"delivered": 1, "failed": 0, "missing": 0}, "receipt_delay": {"kind": "fixed", "seconds": 60},
                 "moderation": {"review_seconds": 0}}


async def _sent_task(api, numbers, name="t"):
    await api.profile(**ALL_DELIVERED)
    aud = await api.audience(numbers, name=f"{name}-aud")
    task = await api.task(aud["id"], name=name)
    await api.advance(1)  # moderated, sent; receipts due in 60 s
    return task


async def test_a_token_cannot_rewrite_another_workspaces_results(api, other_api):
    task = await _sent_task(api, ["+8613800138000", "+8613800138001"])
    truth = await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}")
    victim = truth["items"][0]["platform_id"]
    hijack = {"receipts": [{"platform_id": victim, "status": "failed", "code": "HIJACK"}]}
    assert (await other_api.post("/api/v1/platforms/sim/receipts", hijack, expect=200))["accepted"] == 1
    page = await api.get(f"/api/v1/tasks/{task['id']}/messages")
    assert {m["result"] for m in page["items"]} == {"pending"}
    # kept aside in the poster's workspace, invisible to the victim's
    theirs = await other_api.get("/api/v1/receipts/unmatched")
    assert [(r["platform_id"], r["code"]) for r in theirs["items"]] == [(victim, "HIJACK")] and theirs["total"] == 1
    victims = await api.get("/api/v1/receipts/unmatched")
    assert victims["items"] == [] or all(r["code"] != "HIJACK" for r in victims["items"])
    await api.advance(120)
    done = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (done["status"], done["succeeded"], done["failed"]) == ("completed", 2, 0)


async def test_a_receipt_posted_for_a_future_id_is_not_applied_to_another_workspace(api, other_api):
    """``sim-{task}-{seq}`` ids can be guessed before the task exists; the early receipt waits as
    unmatched, and the dispatcher must not match it to the victim's number when it records it."""
    await api.profile(**ALL_DELIVERED)
    aud = await api.audience(["+8613800138000"], name="future")
    guessed = None
    for attempt in range(3):  # the next task id: the id a probe task gets, plus one
        probe = await other_api.audience(["+8613800138009"], name=f"probe{attempt}")
        created = await other_api.task(probe["id"], name=f"probe{attempt}", send_type="scheduled",
                                       send_at="2100-01-01T00:00:00Z")
        guessed = f"sim-{created['id'] + 1}-0000000000"
        await other_api.post("/api/v1/platforms/sim/receipts",
                             {"receipts": [{"platform_id": guessed, "status": "failed", "code": "HIJACK"}]}, expect=200)
        task = await api.task(aud["id"], name=f"victim{attempt}")
        if task["id"] == created["id"] + 1:
            break
    await api.advance(1)
    rows = (await api.get(f"/api/v1/tasks/{task['id']}/messages"))["items"]
    assert [r["result"] for r in rows] == ["pending"] and rows[0]["failure_reasons"] == []


async def test_simulator_profiles_presets_and_reset_are_per_workspace(api, other_api):
    mine = await api.profile(**ALL_DELIVERED)
    await other_api.post("/api/v1/simulator/presets/outage", expect=200)
    assert await api.get("/api/v1/simulator/profile") == mine
    presets = await other_api.get("/api/v1/simulator/presets")
    assert presets["active"] == "outage" and [p["name"] for p in presets["items"] if p["active"]] == ["outage"]
    assert (await api.get("/api/v1/simulator/presets"))["active"] is None
    # the colleague's outage does not stop this workspace's send
    task = await _sent_task(api, ["+8613800138000"], name="unaffected")
    await api.advance(120)
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["status"] == "completed"
    # a reset of the other workspace's carrier leaves this one's ground truth alone
    await other_api.post("/api/v1/simulator/reset", expect=200)
    assert len((await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"]) == 1
    sim = next(p for p in (await other_api.get("/api/v1/platforms"))["items"] if p["name"] == "sim")
    assert sim["outage_refusals"] == 0  # the description is the caller's workspace's carrier


async def test_service_wide_controls_need_an_admin_token(api, other_api, service):
    status, body = await other_api.call("POST", "/api/v1/clock/advance", json={"seconds": 60})
    assert status == 403 and body["error"]["code"] == "admin_required"
    assert (await other_api.get("/api/v1/clock"))["mode"] == "virtual"  # reading the clock is fine
    status, _ = await other_api.call("GET", "/metrics")
    assert status == 403
    assert (await service.get("/metrics", headers=api.headers)).status == 200
    await api.advance(60)


async def test_receipts_route_does_not_reveal_which_platforms_are_installed(service):
    answers = []
    for name in ("sim", "http", "no-such-platform", "x" * 50):
        resp = await service.post(f"/api/v1/platforms/{name}/receipts", data=b'{"receipts": []}',
                                  headers={"Content-Type": "application/json"})
        answers.append((resp.status, await resp.json()))
    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0][0] == 401


async def test_concurrent_advances_each_move_the_clock(api):
    from gateway.clock import parse_rfc3339

    start = parse_rfc3339((await api.get("/api/v1/clock"))["now"])

    async def client():
        for _ in range(20):
            await api.advance(1800)

    await asyncio.gather(client(), client())
    now = parse_rfc3339((await api.get("/api/v1/clock"))["now"])
    assert now - start == 2 * 20 * 1800
