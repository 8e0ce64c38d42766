"""The simulated carrier through the real service (app factory, SQLite file, virtual clock):
determinism across runs, run-time presets, missing receipts, duplicates and reordering,
throttling, outages, magic numbers, reset, and ground truth against the gateway's counts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from gateway.auth import create_token
from gateway.client import ApiError, AsyncClient
from gateway.web.app import create_app
from gateway.web.keys import clock_key, platforms_key, storage_key, tokens_key
from tests.pg_support import Evidence
from tests.counts import assert_counters_match_rows_of
from tests.conftest import make_config

START = 1_714_557_600.0  # 2024-05-01T10:00:00Z: both runs of a comparison start at the same instant
HOUR = 3600.0
LONG_TEXT = "Spring sale! " * 15  # 195 characters + 【signature】 (UCS-2): a 3-part message


class Api(AsyncClient):
    """The typed client (``gateway.client.AsyncClient``) on the in-process test server, plus
    what only an in-process test can read: the gateway's own table and the workspace's carrier."""

    def __init__(self, client, token: str):
        super().__init__(str(client.make_url("")), token, session=client.session)
        self.app = client.server.app

    async def task(self, numbers: list[str], name: str, text: str = "Hello", **fields) -> dict:
        aud = await self.create_audience(f"aud-{name}", numbers)
        body = {"name": name, "platform": "sim", "sms_type": "marketing", "signature": "Shop", "content": {"text": text},
                "audience_id": aud["id"], "send_type": "immediate", "sub_activities": []}
        body.update(fields)
        return await self.create_task(body)

    async def get_task(self, task_id: int) -> dict:
        task = await super().get_task(task_id)
        assert task["sent"] == task["succeeded"] + task["failed"] + task["pending"], task
        # that sum holds by construction (pending is derived); the rows are the independent witness
        await assert_counters_match_rows_of(self.app[storage_key], self.app[clock_key].now(), min_checked=0)
        return task

    async def truth(self, task_id: int) -> list[dict]:
        """Every ground-truth item of the task (all pages)."""
        return [item async for item in self.iter_ground_truth(task_id)]

    async def gateway_results(self, task_id: int) -> dict[str, tuple]:
        """Per number, straight from the gateway's table: result, platform id, reasons, receipt time."""
        rows = await Evidence(self.app[storage_key]).fetchall(
            "SELECT number, result, platform_id, reasons, receipt_at, late FROM messages WHERE task_id=?", (task_id,)
        )
        names = {0: "pending", 1: "succeeded", 2: "failed", 3: "queued"}
        return {n: (names[r], pid, [reason[0] for reason in json.loads(reasons or "[]")], at, late)
                for n, r, pid, reasons, at, late in rows}

    @property
    def carrier(self):
        """This workspace's simulated carrier (each workspace has its own profile and books)."""
        return self.app[platforms_key]["sim"].for_workspace(self.workspace_id)


@pytest.fixture
def service(aiohttp_client, tmp_path):
    """A factory: each call starts a fresh service on its own database file."""
    counter = [0]

    async def make(**cfg) -> Api:
        counter[0] += 1
        cfg.setdefault("clock", "virtual")
        if cfg["clock"] == "virtual":
            cfg.setdefault("clock_start", START)
        app = create_app(make_config(tmp_path, f"run{counter[0]}.db", **cfg))
        client = await aiohttp_client(app)
        token = await create_token(app[storage_key], "ws", app[clock_key].now(), admin=True)
        api = Api(client, token)
        api.workspace_id = (await app[tokens_key].lookup(token)).workspace_id
        return api

    return make


def numbers(n: int, base: int = 13800000000) -> list[str]:
    return [f"+86{base + i}" for i in range(n)]


def check_against_ground_truth(task: dict, truth: list[dict], results: dict[str, tuple], final: bool) -> None:
    """The gateway counted exactly what the carrier decided and emitted."""
    sent = [m for m in truth if m["outcome"] != "refused"]
    assert task["sent"] == len(sent) == len(results)
    assert task["skipped"].get("refused", 0) == len(truth) - len(sent)
    assert task["segments"] == sum(m["parts"] for m in sent)
    for m in truth:
        if m["outcome"] == "refused":
            assert m["number"] not in results and m["platform_id"] is None
            continue
        result, pid, reasons, _at, _late = results[m["number"]]
        assert pid == m["platform_id"]
        emitted = [r for r in m["receipts"] if r["emitted_at"] is not None]
        assert not any(r["swallowed"] for r in emitted)
        expected = m["expected_result"]
        if final:
            assert all(r["emitted_at"] is not None or r["swallowed"] for r in m["receipts"]), m
            want = {"succeeded": "succeeded", "failed": "failed", "receipt_timeout": "failed"}[expected]
            assert result == want, (m, results[m["number"]])
            if expected == "receipt_timeout":
                assert "RECEIPT_TIMEOUT" in reasons
            if expected == "failed":
                assert set(reasons) <= {r["code"] for r in emitted if r["status"] == "failed"} and reasons
        elif result != "pending":
            assert result == {"receipt_timeout": "failed"}.get(expected, expected)
    counts = {"succeeded": 0, "failed": 0, "pending": 0}
    for r in results.values():
        counts[r[0]] += 1
    assert (task["succeeded"], task["failed"], task["pending"]) == (counts["succeeded"], counts["failed"], counts["pending"])


# -- determinism -------------------------------------------------------------------------------
MIXED = {
    "seed": 2024,
    "outcomes": {"delivered": 0.7, "failed": 0.2, "missing": 0.1},
    "failure_codes": {"UNDELIV": 2, "EXPIRED": 1, "MK:0005": 1},
    "receipt_delay": {"kind": "lognormal", "median": 20.0, "sigma": 1.2},
    "submit_latency": {"kind": "uniform", "low": 0.1, "high": 2.0},
    "duplicate_rate": 0.2,
    "reorder": True,
    "outages": [{"start": 100, "end": 130, "kind": "receipts"}],
    "moderation": {"banned_words": [], "review_seconds": 30},
}
MAGIC = ["+15005550001", "+15005550006", "+15005550010", "+15005550020", "+15005550030", "+15005550031"]


async def run_scenario(api: Api) -> dict:
    """The same steps for every run: two tasks sent at once, the clock moved in fixed steps."""
    await api.put_profile(**MIXED)
    t1 = await api.task(numbers(260) + MAGIC, "long", text=LONG_TEXT)
    t2 = await api.task(numbers(140, base=13900000000), "short")
    await api.advance(30)  # moderation passes; both tasks are sent concurrently
    snapshots = []
    for step in (15, 60, HOUR, 72 * HOUR, 2 * HOUR):
        snap = {}
        for t in (t1, t2):
            task = await api.get_task(t["id"])
            truth = await api.truth(t["id"])
            results = await api.gateway_results(t["id"])
            check_against_ground_truth(task, truth, results, final=False)
            snap[t["id"]] = {"task": {k: task[k] for k in ("status", "sent", "succeeded", "failed", "pending", "skipped", "segments")},
                             "truth": by_number(truth), "results": without_ids(results)}
        snapshots.append(snap)
        await api.advance(step)
    final = {}
    for t in (t1, t2):
        task = await api.get_task(t["id"])
        truth = await api.truth(t["id"])
        results = await api.gateway_results(t["id"])
        assert task["status"] == "completed" and task["pending"] == 0
        check_against_ground_truth(task, truth, results, final=True)
        final[t["id"]] = {"task": task, "truth": by_number(truth), "results": without_ids(results)}
    return {"snapshots": snapshots, "final": final}


def by_number(truth: list[dict]) -> dict[str, dict]:
    """Ground truth keyed by number. Platform ids are the gateway's message ids, which depend on
    how two tasks sent at once interleave their inserts: not a carrier decision, so left out."""
    return {m["number"]: {k: v for k, v in m.items() if k != "platform_id"} for m in truth}


def without_ids(results: dict[str, tuple]) -> dict[str, tuple]:
    return {n: (r[0], *r[2:]) for n, r in results.items()}


async def test_two_runs_with_one_seed_agree_exactly_whatever_the_batch_size(service):
    first = await run_scenario(await service(dispatch_batch=1000))
    second = await run_scenario(await service(dispatch_batch=7))
    assert first == second
    final = first["final"]
    truth = [m for t in final.values() for m in t["truth"].values()]
    # the scenario exercised what it claims to
    assert {m["outcome"] for m in truth} == {"delivered", "failed", "missing", "refused"}
    assert any(r["duplicate"] for m in truth for r in m["receipts"])
    assert any(r["swallowed"] for m in truth for r in m["receipts"])
    assert {m["rule"] for m in truth if m["rule"]} == {f"number:{n}" for n in MAGIC}
    assert all(0.1 <= m["submit_latency"] <= 2.0 for m in truth if m["outcome"] != "refused")
    magic = {m["number"]: m for m in truth if m["rule"]}
    long_results = final[min(final)]["results"]
    assert long_results["+15005550010"][0] == "failed" and set(long_results["+15005550010"][1]) == {"UNDELIV"}
    assert long_results["+15005550031"][1] == ["RECEIPT_TIMEOUT"] and magic["+15005550031"]["expected_result"] == "receipt_timeout"
    assert magic["+15005550030"]["expected_result"] == "succeeded"
    # duplicates were counted as duplicates (or late), never as results
    for t in final.values():
        assert (t["task"]["duplicate_receipts"], t["task"]["late_receipts"]) == receipt_tally(t["truth"].values())
        assert t["task"]["duplicate_receipts"] > 10


def receipt_tally(truth, timeout: float = 72 * HOUR) -> tuple[int, int]:
    """What the gateway must count as duplicate and as late receipts, from the emitted receipts."""
    from gateway.clock import parse_rfc3339

    dups = late = 0
    for m in truth:
        if m["outcome"] == "refused":
            continue
        deadline = parse_rfc3339(m["submitted_at"]) + timeout
        seen: set = set()
        is_late = False
        final = False
        for r in sorted((r for r in m["receipts"] if r["emitted_at"]), key=lambda r: parse_rfc3339(r["at"])):
            at = parse_rfc3339(r["at"])
            if is_late or (not final and at > deadline):
                is_late = True
                late += 1
                continue
            bits = set(range(m["parts"])) if r["part"] is None else {r["part"]}
            if bits <= seen:
                dups += 1
                continue
            seen |= bits
            final = final or r["status"] == "failed" or len(seen) == m["parts"]
        if not final:
            is_late = True  # swept as RECEIPT_TIMEOUT; receipts after that would be late
    return dups, late


async def test_a_different_seed_gives_different_decisions(service):
    api = await service()
    await api.put_profile(**{**MIXED, "outages": []})
    t1 = await api.task(numbers(200), "a")
    await api.patch_profile(seed=MIXED["seed"] + 1)
    t2 = await api.task(numbers(200), "b")
    await api.advance(30)
    one = {m["number"]: m["outcome"] for m in await api.truth(t1["id"])}
    two = {m["number"]: m["outcome"] for m in await api.truth(t2["id"])}
    assert one.keys() == two.keys() and one != two


# -- run-time control --------------------------------------------------------------------------
async def test_presets_switched_at_run_time_change_outcomes(service):
    api = await service()
    nums = numbers(120)
    await api.activate_preset("perfect")
    perfect = await api.task(nums, "perfect")
    await api.advance(1)  # review_seconds = 0 in perfect: sending at once; receipts at once
    # switched while the first task is still pending at the gateway: only later submissions change
    await api.activate_preset("black-hole")
    hole = await api.task(nums, "hole")
    await api.advance(1)
    await api.activate_preset("flaky")
    await api.patch_profile(throughput_limit=None, moderation={"review_seconds": 0})
    flaky = await api.task(nums, "flaky")
    await api.advance(2 * HOUR)
    p, h, f = [await api.get_task(t["id"]) for t in (perfect, hole, flaky)]
    assert (p["status"], p["succeeded"], p["failed"], p["pending"]) == ("completed", 120, 0, 0)
    assert (h["status"], h["succeeded"], h["failed"], h["pending"]) == ("sending", 0, 0, 120)
    assert f["failed"] > 10 and f["succeeded"] > 40 and f["pending"] > 3
    assert f["duplicate_receipts"] > 0
    for t in (perfect, hole, flaky):
        check_against_ground_truth(await api.get_task(t["id"]), await api.truth(t["id"]), await api.gateway_results(t["id"]), final=False)
    await api.advance(72 * HOUR)
    h = await api.get_task(hole["id"])
    assert (h["status"], h["failed"], h["pending"]) == ("completed", 120, 0)
    for t in (perfect, hole, flaky):
        check_against_ground_truth(await api.get_task(t["id"]), await api.truth(t["id"]), await api.gateway_results(t["id"]), final=True)


async def test_missing_share_is_pending_then_receipt_timeout(service):
    api = await service()
    await api.put_profile(seed=5, outcomes={"delivered": 0.7, "failed": 0.0, "missing": 0.3},
                          receipt_delay={"kind": "uniform", "low": 1, "high": 60}, moderation={"review_seconds": 0})
    task = await api.task(numbers(300), "missing")
    await api.advance(HOUR)
    truth = await api.truth(task["id"])
    missing = sum(m["outcome"] == "missing" for m in truth)
    assert 60 < missing < 120
    t = await api.get_task(task["id"])
    assert (t["status"], t["succeeded"], t["pending"], t["failed"]) == ("sending", 300 - missing, missing, 0)
    pending_rows = await api.request("GET", f"/api/v1/tasks/{task['id']}/messages?result=pending&limit=1000")
    assert len(pending_rows["items"]) == missing
    await api.advance(72 * HOUR + 60)
    t = await api.get_task(task["id"])
    assert (t["status"], t["succeeded"], t["pending"], t["failed"]) == ("completed", 300 - missing, 0, missing)
    failed_rows = await api.request("GET", f"/api/v1/tasks/{task['id']}/messages?result=failed&limit=1000")
    assert len(failed_rows["items"]) == missing
    assert all([r["code"] for r in row["failure_reasons"]] == ["RECEIPT_TIMEOUT"] for row in failed_rows["items"])
    check_against_ground_truth(t, await api.truth(task["id"]), await api.gateway_results(task["id"]), final=True)


async def test_duplicates_and_reordering_never_change_the_counts(service):
    api = await service(dispatch_batch=64)
    await api.put_profile(seed=11, duplicate_rate=0.6, reorder=True, part_policy="all",
                          outcomes={"delivered": 0.8, "failed": 0.2, "missing": 0.0},
                          receipt_delay={"kind": "lognormal", "median": 30, "sigma": 1.5}, moderation={"review_seconds": 0})
    task = await api.task(numbers(400), "dups", text=LONG_TEXT)
    await api.advance(1)
    seen_pending = []
    for _ in range(12):  # small steps: receipts (and duplicates) arrive while we count
        await api.advance(20)
        t = await api.get_task(task["id"])
        seen_pending.append(t["pending"])
        check_against_ground_truth(t, await api.truth(task["id"]), await api.gateway_results(task["id"]), final=False)
    assert seen_pending[0] > seen_pending[-1] > 0  # results arrived over time
    await api.advance(48 * HOUR)
    t = await api.get_task(task["id"])
    truth = await api.truth(task["id"])
    assert t["status"] == "completed" and t["sent"] == 400 and t["segments"] == 1200
    check_against_ground_truth(t, truth, await api.gateway_results(task["id"]), final=True)
    emitted = [r for m in truth for r in m["receipts"] if r["emitted_at"]]
    assert sum(r["duplicate"] for r in emitted) > 150
    # receipts overtook each other: emitted out of planned part order for some messages
    overtaken = sum(1 for m in truth if [r["part"] for r in m["receipts"] if not r["duplicate"]] != [0, 1, 2])
    assert overtaken > 50
    assert t["succeeded"] == sum(m["expected_result"] == "succeeded" for m in truth)
    assert t["failed"] == sum(m["expected_result"] == "failed" for m in truth)


# -- throttling and outages -----------------------------------------------------------------------
async def test_a_throttled_carrier_loses_no_number(service):
    api = await service(dispatch_batch=250)
    await api.put_profile(throughput_limit=1000, outcomes={"delivered": 1, "failed": 0, "missing": 0},
                          receipt_delay={"kind": "fixed", "seconds": 5}, moderation={"review_seconds": 0})
    task = await api.task(numbers(2000), "throttled")
    began = time.monotonic()
    await api.advance(1)  # the engine waits for the send, which the carrier slows to 1000 numbers/s
    elapsed = time.monotonic() - began
    t = await api.get_task(task["id"])
    assert t["sent"] == 2000 and t["skipped"].get("refused", 0) == 0
    assert elapsed >= 0.9  # 2000 numbers at 1000/s over a sliding second
    platforms = await api.request("GET", "/api/v1/platforms")
    sim = next(p for p in platforms["items"] if p["name"] == "sim")
    assert sim["throughput_limit"] == 1000 and sim["throttled_batches"] > 0
    await api.advance(10)
    t = await api.get_task(task["id"])
    assert (t["status"], t["succeeded"]) == ("completed", 2000)
    truth = await api.truth(task["id"])
    assert len(truth) == 2000 and len({m["number"] for m in truth}) == 2000
    check_against_ground_truth(t, truth, await api.gateway_results(task["id"]), final=True)


async def test_receipts_outage_swallows_receipts(service):
    api = await service()
    await api.put_profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 10},
                          outages=[{"start": 0, "end": 100, "kind": "receipts"}], moderation={"review_seconds": 30})
    inside = await api.task(numbers(50), "inside")
    await api.advance(30)  # sent at +30 s: receipts due at +40 s, inside the outage
    await api.advance(80)
    after = await api.task(numbers(50, base=13900000000), "after")
    await api.advance(30)  # sent at +140 s: receipts due at +150 s, after the outage
    await api.advance(60)
    a, b = await api.get_task(inside["id"]), await api.get_task(after["id"])
    assert (a["succeeded"], a["pending"]) == (0, 50) and (b["succeeded"], b["pending"]) == (50, 0)
    truth = await api.truth(inside["id"])
    assert all(r["swallowed"] and r["emitted_at"] is None for m in truth for r in m["receipts"])
    assert {m["expected_result"] for m in truth} == {"receipt_timeout"}
    # changing another field keeps the outage windows where they were
    anchor = (await api.request("GET", "/api/v1/platforms"))["items"]
    await api.patch_profile(duplicate_rate=0.1)
    assert (await api.request("GET", "/api/v1/platforms"))["items"] == anchor
    await api.advance(73 * HOUR)
    a = await api.get_task(inside["id"])
    assert (a["status"], a["failed"]) == ("completed", 50)
    check_against_ground_truth(a, truth, await api.gateway_results(inside["id"]), final=True)


async def test_submit_outage_is_retried_until_it_ends(service):
    # a virtual clock that flows at 200x real time: the 60 s outage lasts 0.3 real seconds
    api = await service(clock_rate=200.0, clock_start=None)
    await api.put_profile(outages=[{"start": 0, "end": 60, "kind": "submit"}], moderation={"review_seconds": 0},
                          outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 1})
    task = await api.task(numbers(30), "outage")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        t = await api.get_task(task["id"])
        if t["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert (t["status"], t["sent"], t["succeeded"]) == ("completed", 30, 30)
    assert api.carrier.outage_refusals > 0
    truth = await api.truth(task["id"])
    anchor = api.carrier.outages_anchor
    assert len(truth) == 30 and all(_ts(m["submitted_at"]) >= anchor + 60 for m in truth)


def _ts(text: str) -> float:
    from gateway.clock import parse_rfc3339

    return parse_rfc3339(text)


async def test_submit_outage_that_outlasts_the_gateways_patience_fails_the_task(service):
    api = await service()
    await api.put_profile(outages=[{"start": 0, "end": 24 * HOUR, "kind": "submit"}])
    task = await api.task(numbers(5), "down")
    await api.advance(30)  # moderation passes, the first submission meets the outage
    t = await api.get_task(task["id"])
    assert t["status"] == "sending" and t["sent"] == 0
    await api.advance(700)  # unreachable for longer than submit_give_up_seconds (600 s of service time)
    t = await api.get_task(task["id"])
    assert t["status"] == "failed" and "simulated outage" in t["status_reason"] and t["sent"] == 0


async def test_submit_outage_on_a_frozen_clock_ends_when_the_clock_passes_it(service):
    api = await service()
    await api.put_profile(outages=[{"start": 0, "end": 45, "kind": "submit"}], moderation={"review_seconds": 30},
                          outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 1})
    task = await api.task(numbers(30), "brief outage")
    await api.advance(30)  # sending starts inside the outage and backs off; advance does not hang on it
    assert (await api.get_task(task["id"]))["sent"] == 0
    await api.advance(20)  # past the outage, within the gateway's patience: the send resumes
    await api.advance(5)
    t = await api.get_task(task["id"])
    assert (t["status"], t["sent"], t["succeeded"]) == ("completed", 30, 30)


# -- reset --------------------------------------------------------------------------------------
async def test_reset_forgets_the_carriers_state_not_the_gateways(service):
    api = await service()
    await api.put_profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 60},
                          moderation={"review_seconds": 0})
    first = await api.task(numbers(20), "first")
    await api.advance(1)
    assert len(await api.truth(first["id"])) == 20
    await api.carrier.reset()
    assert await api.truth(first["id"]) == []
    assert (await api.request("GET", "/api/v1/simulator/profile"))["receipt_delay"] == {"kind": "fixed", "seconds": 60.0}
    second = await api.task(numbers(20), "second")
    await api.advance(120)
    s = await api.get_task(second["id"])
    assert (s["succeeded"], s["pending"]) == (20, 0)
    f = await api.get_task(first["id"])  # its planned receipts were forgotten: still pending
    assert (f["sent"], f["pending"]) == (20, 20)
    await api.advance(72 * HOUR)
    f = await api.get_task(first["id"])
    assert (f["status"], f["failed"]) == ("completed", 20)


async def test_profile_api_takes_the_new_fields_and_names_bad_ones(service):
    api = await service()
    body = await api.put_profile(submit_latency={"kind": "uniform", "low": 0.5, "high": 1}, throughput_limit=300,
                                 outages=[{"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T13:00:00Z", "kind": "receipts"}],
                                 number_rules=[{"prefix": "+44", "outcome": "refused", "code": "21408"}])
    assert body["seed"] == 42 and body["outcomes"] == {"delivered": 0.9, "failed": 0.07, "missing": 0.03}
    assert body["number_rules"] == [{"prefix": "+44", "outcome": "refused", "code": "21408"}]
    patched = await api.patch_profile(submit_latency={"high": 2})
    assert patched["submit_latency"] == {"kind": "uniform", "low": 0.5, "high": 2.0} and patched["throughput_limit"] == 300
    for bad, field in [({"outages": [{"start": 10, "end": 5}]}, "outages[0].end"),
                       ({"outages": [{"start": True, "end": 5}]}, "outages[0].start"),
                       ({"number_rules": [{"number": "12345", "outcome": "failed"}]}, "number_rules[0].number"),
                       ({"submit_latency": {"kind": "gamma"}}, "submit_latency")]:
        with pytest.raises(ApiError) as refused:
            await api.patch_profile(bad)
        assert refused.value.status == 400 and field in refused.value.message, (bad, refused.value)
    # a PUT without number_rules brings the magic numbers back
    assert len((await api.put_profile(seed=1))["number_rules"]) == 14 + 8  # and the SMSC's eight
    presets = await api.request("GET", "/api/v1/simulator/presets")
    assert {p["name"] for p in presets["items"]} >= {"perfect", "realistic", "flaky", "outage", "black-hole"}
    active = await api.activate_preset("outage")
    assert [o["kind"] for o in active["outages"]] == ["submit", "receipts"]
