"""A submit outage on the virtual clock ends at its own instant, however far one advance jumps:
"an outage from 10:00 to 10:20, then advance an hour" sends the numbers at 10:20, so a scenario
replays the same times whatever steps it advances in."""

from __future__ import annotations

from gateway.clock import parse_rfc3339

START = 1_780_000_000.0  # 2026-05-28T20:26:40Z; any fixed instant


def _numbers(n: int) -> list[str]:
    return [f"+86138{i:08d}" for i in range(n)]


async def test_one_long_advance_sends_when_the_outage_ends(api):
    now = parse_rfc3339((await api.get("/api/v1/clock"))["now"])
    # an absolute window from 5 to 15 minutes from now (within the gateway's 600 s of patience)
    start, end = now + 300, now + 900
    from gateway.clock import to_rfc3339

    await api.profile(outages=[{"start": to_rfc3339(start), "end": to_rfc3339(end), "kind": "submit"}],
                      moderation={"review_seconds": 0, "banned_words": []})
    await api.advance(600)  # inside the outage
    audience = await api.audience(_numbers(20))
    task = await api.task(audience["id"])
    await api.advance(1)  # the send meets the outage and backs off
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["sent"] == 0
    await api.advance(3600)  # one jump far past the outage's end
    t = await api.get(f"/api/v1/tasks/{task['id']}")
    assert t["sent"] == 20, {k: t[k] for k in ("status", "status_reason", "sent", "skipped")}
    truth = (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}&limit=100"))["items"]
    submitted = {parse_rfc3339(m["submitted_at"]) for m in truth}
    assert submitted == {end}, (submitted, end)  # at the outage's end, not at the end of the jump


async def test_an_outage_longer_than_the_gateways_patience_fails_at_its_deadline(api):
    now = parse_rfc3339((await api.get("/api/v1/clock"))["now"])
    from gateway.clock import to_rfc3339

    await api.profile(outages=[{"start": to_rfc3339(now), "end": to_rfc3339(now + 86400), "kind": "submit"}],
                      moderation={"review_seconds": 0, "banned_words": []})
    audience = await api.audience(_numbers(5))
    task = await api.task(audience["id"])
    await api.advance(1)
    first_try = parse_rfc3339((await api.get("/api/v1/clock"))["now"])
    await api.advance(7200)  # one jump: the task fails 600 s of service time after its first refusal
    t = await api.get(f"/api/v1/tasks/{task['id']}")
    assert t["status"] == "failed" and t["sent"] == 0, t
    assert abs(parse_rfc3339(t["completed_at"] or t["updated_at"]) - (first_try + 600)) < 2, t
