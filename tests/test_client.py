"""gateway.client against the real processes (``smslab serve`` and ``smslab carrier`` on
127.0.0.1, virtual clocks): every route has a method and every method is exercised, the paged
lists are walked by cursor, errors carry the API's code and field, and the ground-truth check
passes on an honest task and names the numbers that differ on a tampered one."""

from __future__ import annotations

import asyncio
import re

import msgspec
import pytest

from gateway.client import (CARRIER_ROUTES, ITERATORS, PLUGIN_ROUTES, ROUTES, ApiError, AsyncCarrierClient, AsyncClient, CarrierClient,
                            Client)
from gateway.client import truth as T
from gateway.testing.pytest_plugin import CarrierProcess, GatewayProcess
from gateway.web import schemas as S
from simulator import schemas as SimS

HOUR = 3600.0
QUICK = {"moderation": {"review_seconds": 0}, "receipt_delay": {"kind": "fixed", "seconds": 60},
         "outcomes": {"delivered": 1, "failed": 0, "missing": 0}}


@pytest.fixture(scope="module")
def gateway_process():
    with GatewayProcess() as process:
        yield process


@pytest.fixture(scope="module")
def carrier_process():
    with CarrierProcess() as process:
        yield process


def _template(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


class Recording:
    """Wraps a client's ``_call``: which routes (method, path template) were requested."""

    def __init__(self, client, routes: dict):
        self.hit: set[tuple[str, str]] = set()
        self.patterns = [(key, _template(key[1])) for key in routes]
        inner = client._call

        def call(method, path, json=None, **kw):
            self.record(method, path)
            return inner(method, path, json, **kw)

        client._call = call

    def record(self, method: str, path: str) -> None:
        bare = path.split("?", 1)[0]
        matches = [key for key, pattern in self.patterns if key[0] == method.upper() and pattern.match(bare)]
        # a literal route beats a template (/ground-truth/summary is not /ground-truth/{x})
        exact = [key for key in matches if key[1] == bare]
        self.hit.update(exact or matches)


# -- coverage of the routes -----------------------------------------------------------------------------
def _documented(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops
            if method in ("get", "post", "put", "patch", "delete")}


def test_every_documented_route_has_a_client_method_and_back(gateway_process):
    """Both ways: a route the service documents has a method (the routes of the platform plugins
    installed here too), and a method's route is still served."""
    doc = Client(gateway_process.base_url).openapi()
    documented = _documented(doc)
    known = {**ROUTES, **{k: v for k, v in PLUGIN_ROUTES.items() if k in documented}}
    assert documented == set(known), {"undocumented in the client": documented - set(known),
                                      "no longer served": set(ROUTES) - documented}
    for cls in (Client, AsyncClient):
        for name in [*ROUTES.values(), *PLUGIN_ROUTES.values(), *ITERATORS.values()]:
            assert callable(getattr(cls, name, None)), (cls, name)
    # every paged list has its iterator: the responses that carry a next_cursor
    paged = {known[(m.upper(), p)] for p, ops in doc["paths"].items() for m, op in ops.items()
             if "next_cursor" in str(op.get("responses", {}).get("200", {})) or _page_schema(doc, op)}
    assert paged - {"list_platforms", "list_presets"} == set(ITERATORS), paged


def _page_schema(doc: dict, op: dict) -> bool:
    ref = str(op.get("responses", {}).get("200", {}))
    names = re.findall(r"#/components/schemas/(\w+)", ref)
    return any("next_cursor" in doc.get("components", {}).get("schemas", {}).get(n, {}).get("properties", {}) for n in names)


def test_every_carrier_route_has_a_client_method_and_back():
    from simulator.server import routes

    served = {(route.method, route.path) for route in routes}
    assert served == set(CARRIER_ROUTES), {"missing": served - set(CARRIER_ROUTES), "gone": set(CARRIER_ROUTES) - served}
    for cls in (CarrierClient, AsyncCarrierClient):
        for name in [*CARRIER_ROUTES.values(), "iter_ground_truth", "iter_journal"]:
            assert callable(getattr(cls, name, None)), (cls, name)


# -- the gateway, sync ------------------------------------------------------------------------------------
def test_the_sync_client_drives_every_route(gateway_process):
    client = gateway_process.client()
    served = {k: v for k, v in {**ROUTES, **PLUGIN_ROUTES}.items() if k in _documented(client.openapi())}
    rec = Recording(client, served)
    assert client.base_url == gateway_process.base_url and client.token == gateway_process.token
    assert client.health()["status"] == "ok"
    assert "smslab" in client.metrics()
    assert client.openapi()["openapi"].startswith("3.")
    assert isinstance(client.console(), str)
    assert {p["name"] for p in client.list_platforms()["items"]} >= {"sim"}
    assert client.get_clock()["mode"] == "virtual"

    # the simulated carrier's controls
    assert client.list_presets()["items"]
    client.activate_preset(client.list_presets()["items"][0]["name"])
    assert client.put_profile(**QUICK)["moderation"]["review_seconds"] == 0
    assert client.patch_profile(seed=7)["seed"] == 7
    assert client.patch_profile(SimS.ProfilePatch(duplicate_rate=0.0))["duplicate_rate"] == 0.0
    assert client.get_profile()["seed"] == 7

    # audiences: JSON, CSV, a Struct body; listed page by page
    numbers = [f"+86138001{i:05d}" for i in range(12)]
    first = client.create_audience("client-json", numbers)
    assert first["size"] == 12
    csv = client.create_audience("client-csv", csv="phone\n+8613800200001\n+8613800200002\n")
    assert csv["size"] == 2
    struct = client.create_audience(body=S.AudienceCreate(name="client-struct", numbers=["+8613800300001"]))
    assert client.get_audience(struct["id"])["name"] == "client-struct"
    assert [a["id"] for a in client.iter_audiences(limit=1)][:3] == [struct["id"], csv["id"], first["id"]]
    assert client.list_audiences(limit=1)["next_cursor"]
    assert client.delete_audience(csv["id"]) is None

    # a task: created from keywords, a Struct, or a dict; listed, edited, sent, compared
    task = client.create_task(name="client-task", audience_id=first["id"], text="Hello")
    assert task["platform"] == "sim" and task["content"] == {"text": "Hello"}
    later = client.create_task(S.TaskCreate(name="client-later", audience_id=first["id"], content=S.Content(text="Later"),
                               send_type="scheduled", send_at="2099-01-01T00:00:00Z"))
    assert client.advance(1)["mode"] == "virtual"  # through moderation (an edit waits for it)
    assert client.update_task(later["id"], name="client-later-2")["name"] == "client-later-2"
    client.advance(1)  # and through it again
    assert client.update_task(later["id"], {"signature": "Shop"})["signature"] == "Shop"
    client.advance(1)
    assert client.delete_task(later["id"]) is None
    done = client.wait_for_task(task["id"], ("sending", "completed"))
    assert done["id"] == task["id"]
    client.advance(HOUR)
    client.wait_for_task(task["id"], "completed", timeout=10)
    client.assert_matches_ground_truth(task["id"])
    assert [t["id"] for t in client.iter_tasks(status=["completed"], q="client-task")] == [task["id"]]
    assert client.list_tasks(platform="sim", limit=1)["items"]
    rows = list(client.iter_messages(task["id"], limit=5))
    assert len(rows) == 12 and {r["result"] for r in rows} == {"succeeded"}
    assert client.list_messages(task["id"], result="succeeded", q="00011")["total"] == 1
    truth = list(client.iter_ground_truth(task["id"], limit=5))
    assert sorted(t["number"] for t in truth) == numbers
    assert len(client.ground_truth(task["id"], limit=5)["items"]) == 5
    again = client.audience_from_task(task["id"], "client-again", ["succeeded"])
    assert again["source"] == "task" and again["size"] == 12

    # receipts: one for an id no task knows is kept aside
    assert client.push_receipts("sim", [{"platform_id": "sim-unknown-1", "status": "delivered"}]) == {"accepted": 1}
    kept = list(client.iter_unmatched_receipts(platform="sim"))
    assert [r["platform_id"] for r in kept] == ["sim-unknown-1"]
    assert client.list_unmatched_receipts(limit=1)["total"] == 1
    for route in set(served) & set(PLUGIN_ROUTES):  # a plugin's push with a wrong token: the usual 401
        with pytest.raises(ApiError) as refused:
            getattr(client, PLUGIN_ROUTES[route])("sim", "wrong-token", [])
        assert (refused.value.status, refused.value.code) == (401, "webhook_rejected")

    # replies and opt-outs
    reply = client.mobile_originated("+8613800100003", "STOP")
    assert reply["opted_out"] is True
    assert [m["id"] for m in client.iter_inbound(sender="13800100003")] == [reply["id"]]
    assert client.list_inbound(platform="sim")["total"] == 1
    assert client.add_opt_out("+8613800100004")["number"] == "+8613800100004"
    assert [o["number"] for o in client.iter_opt_outs(limit=1)] == ["+8613800100003", "+8613800100004"]
    assert client.list_opt_outs(q="100004")["total"] == 1
    assert client.remove_opt_out("+8613800100004") is None
    assert client.reset_simulator()["reset"] is True

    # the raw call
    assert client.request("GET", f"/api/v1/tasks/{task['id']}")["name"] == "client-task"
    assert client.request("GET", "/api/v1/tasks", params={"limit": 1})["items"]

    assert rec.hit == set(served), set(served) - rec.hit


def test_errors_carry_the_api_code_and_field(gateway_process):
    client = gateway_process.client()
    with pytest.raises(ApiError) as bad:
        client.request("POST", "/api/v1/audiences", {"name": "x", "numbers": "not a list"})
    assert (bad.value.status, bad.value.code, bad.value.field) == (400, "invalid_request", "numbers")
    assert bad.value.body["error"]["field"] == "numbers" and "numbers" in str(bad.value)
    with pytest.raises(ApiError) as limit:
        client.list_tasks(limit=0)
    assert (limit.value.status, limit.value.field) == (400, "limit")
    with pytest.raises(ApiError) as missing:
        client.get_task(987654)
    assert (missing.value.status, missing.value.code, missing.value.field) == (404, "not_found", None)
    with pytest.raises(ApiError) as anonymous:
        Client(gateway_process.base_url, "not-a-token").list_tasks()
    assert (anonymous.value.status, anonymous.value.code) == (401, "unauthorized")
    with pytest.raises(ApiError) as taken:
        client.create_audience("dup", ["+8613800400001"])
        client.create_audience("dup", ["+8613800400001"])
    assert (taken.value.status, taken.value.code) == (409, "name_taken")
    # keyword fields are checked against the server's own model before anything is sent
    with pytest.raises(msgspec.ValidationError):
        client.create_task(name="t", audience_id=1, text="x", colour="red")
    with pytest.raises(TimeoutError) as slow:
        task = client.create_task(name="never", audience_id=client.create_audience("n", ["+8613800400002"])["id"],
                                  text="x", send_type="scheduled", send_at="2099-01-01T00:00:00Z")
        client.wait_for_task(task["id"], "completed", timeout=0.2)
    assert slow.value.task["status"] in ("moderating", "scheduled") and "still" in str(slow.value)


def test_a_tampered_task_fails_the_ground_truth_check_naming_the_number(gateway_process):
    client = gateway_process.client()
    client.put_profile(**{**QUICK, "receipt_delay": {"kind": "fixed", "seconds": HOUR}})
    # the first two share their last four digits: the check searches for each of them
    numbers = ["+8613800550000", "+8613900550000", "+8613800550001"]
    task = client.create_task(name="tampered", audience_id=client.create_audience("tampered", numbers)["id"], text="Hi")
    client.advance(1)
    client.assert_matches_ground_truth(task["id"], final=False)  # receipts still due: pending is fine
    with pytest.raises(AssertionError, match="not emitted"):
        client.assert_matches_ground_truth(task["id"])
    victim = next(t for t in client.iter_ground_truth(task["id"]) if t["number"] == "+8613900550000")
    client.push_receipts("sim", [{"platform_id": victim["platform_id"], "status": "failed", "code": "UNDELIV"}])
    client.advance(73 * HOUR)
    with pytest.raises(AssertionError) as diff:
        client.assert_matches_ground_truth(task["id"])
    text = str(diff.value)
    assert "+8613900550000: gateway failed UNDELIV vs carrier expected succeeded" in text, text
    assert "+8613800550000" not in text and "+8613800550001" not in text and "1 difference" in text


def test_the_differences_are_computed_row_by_row():
    truth = [
        {"number": "+8613800000001", "outcome": "delivered", "parts": 1, "expected_result": "succeeded", "code": "DELIVERED",
         "receipts": [{"status": "delivered", "code": "DELIVERED", "emitted_at": "t", "swallowed": False}]},
        {"number": "+8613800000002", "outcome": "failed", "parts": 2, "expected_result": "failed", "code": "UNDELIV",
         "receipts": [{"status": "failed", "code": "UNDELIV", "emitted_at": "t", "swallowed": False}]},
        {"number": "+8613800000003", "outcome": "missing", "parts": 1, "expected_result": "receipt_timeout", "code": None,
         "receipts": []},
        {"number": "+8613800000004", "outcome": "refused", "parts": 1, "expected_result": "refused", "code": None,
         "platform_id": None, "receipts": []},
    ]
    rows = [
        {"number_masked": T.mask("+8613800000001"), "result": "succeeded", "failure_reasons": [], "segments": 1},
        {"number_masked": T.mask("+8613800000002"), "result": "failed", "failure_reasons": [{"code": "EXPIRED"}], "segments": 2},
        {"number_masked": T.mask("+8613800000003"), "result": "failed", "failure_reasons": [{"code": "RECEIPT_TIMEOUT"}],
         "segments": 1},
        {"number_masked": T.mask("+8613800000009"), "result": "pending", "failure_reasons": [], "segments": 1},
    ]
    task = {"sent": 4, "succeeded": 1, "failed": 2, "pending": 1, "segments": 5, "skipped": {}}
    found, stray = T.pair(rows, truth, lambda n: [])
    lines = T.differences(task, rows, truth, found, stray)
    assert lines == [
        "task sent=4 but the carrier accepted 3 numbers",
        "the gateway lists 4 message rows but the carrier accepted 3 numbers",
        "task skipped.refused=0 but the carrier refused 1 numbers",
        "task segments=5 but the carrier's parts add up to 4",
        "+8613800000002: gateway failed EXPIRED vs carrier expected failed with one of ['UNDELIV']",
        "**********0009: a gateway row (pending) for a number the carrier never saw",
    ]
    honest = rows[:3]
    task = {"sent": 3, "succeeded": 1, "failed": 2, "pending": 0, "segments": 4, "skipped": {"refused": 1}}
    honest[1] = {**honest[1], "failure_reasons": [{"code": "UNDELIV"}]}
    found, stray = T.pair(honest, truth, lambda n: [])
    assert T.differences(task, honest, truth, found, stray) == []
    assert "3 difference(s)" in T.report(5, ["a", "b", "c"]) and "... and 1 more" in T.report(5, ["a", "b"], limit=1)


# -- the gateway, async -------------------------------------------------------------------------------------
def test_the_async_client_has_the_same_methods_as_coroutines(gateway_process):
    async def main():
        async with AsyncClient(gateway_process.base_url, gateway_process.token) as client:
            await client.put_profile(**QUICK)
            audience = await client.create_audience("async", [f"+86138006{i:05d}" for i in range(7)])
            task = await client.create_task(name="async-task", audience_id=audience["id"], text="Hello")
            assert (await client.advance(2 * 60))["mode"] == "virtual"
            await client.wait_for_task(task["id"], "completed", timeout=10)
            await client.assert_matches_ground_truth(task["id"])
            rows = [r async for r in client.iter_messages(task["id"], limit=2)]
            assert len(rows) == 7
            assert [t["id"] async for t in client.iter_tasks(q="async-task")] == [task["id"]]
            assert (await client.request("GET", "/healthz"))["status"] == "ok"
            with pytest.raises(ApiError) as bad:
                await client.list_messages(task["id"], result="lost")
            assert (bad.value.status, bad.value.field) == (400, "result")
            with pytest.raises(ApiError) as missing:
                await client.get_audience(10**12)
            assert missing.value.code == "not_found"
            with pytest.raises(TimeoutError):
                await client.wait_for_task(task["id"], "rejected", timeout=0.1)

    asyncio.run(main())


# -- the carrier ------------------------------------------------------------------------------------------
def test_the_carrier_client_drives_every_route(carrier_process):
    carrier = carrier_process.client()
    rec = Recording(carrier, CARRIER_ROUTES)
    assert carrier.smpp_port == carrier_process.smpp_port and carrier.smpp_host == "127.0.0.1"
    assert (carrier.system_id, carrier.password, carrier.token) == (carrier_process.system_id, carrier_process.password,
                                                                    carrier_process.token)
    assert {"http", "smpp"} <= set(carrier.health()["protocols"])
    assert carrier.get_clock()["mode"] == "virtual"
    assert carrier.list_presets()["items"]
    carrier.activate_preset(carrier.list_presets()["items"][0]["name"])
    carrier.put_profile(**QUICK)
    assert carrier.patch_profile(seed=3)["seed"] == 3
    assert carrier.get_profile()["seed"] == 3
    assert carrier.moderate("hello") == {"reasons": []}
    sent = carrier.submit([{"key": f"k{i}", "number": f"+86138007{i:05d}", "text": "hi", "task_id": 41} for i in range(3)])
    assert [r["key"] for r in sent["results"]] == ["k0", "k1", "k2"]
    carrier.advance(HOUR)
    truth = list(carrier.iter_ground_truth(41, limit=2))
    assert len(truth) == 3 and {t["expected_result"] for t in truth} == {"succeeded"}
    assert carrier.ground_truth(41, limit=1)["next_cursor"]
    assert carrier.ground_truth_summary(41)["messages"] == 3
    assert carrier.get_message(sent["results"][0]["platform_id"])["number"] == "+8613800700000"
    assert [a["system_id"] for a in carrier.list_accounts()["items"]] == [carrier.system_id]
    assert carrier.put_account("esme2", password="pw2")["system_id"] == "esme2"
    assert carrier.patch_account("esme2", max_binds=2)["max_binds"] == 2
    assert carrier.get_account("esme2")["binds"] == []
    assert carrier.ground_truth(account="esme2")["items"] == []
    assert carrier.delete_account("esme2") is None
    assert "standard" in {d["name"] for d in carrier.list_dialects()["items"]}
    assert carrier.journal(account=carrier.system_id)["items"] == []
    assert list(carrier.iter_journal(command="submit_sm")) == []
    assert carrier.mobile_originated("+8613800138000", "STOP", "10690000")["account"] == carrier.system_id
    with pytest.raises(ApiError) as no_callback:
        carrier.deliver()
    assert (no_callback.value.status, no_callback.value.code) == (409, "no_callback")
    assert carrier.reset(account=carrier.system_id) == {"reset": True, "account": carrier.system_id}
    assert carrier.reset() == {"reset": True}
    assert rec.hit == set(CARRIER_ROUTES), set(CARRIER_ROUTES) - rec.hit


def test_carrier_errors_and_the_async_carrier_client(carrier_process):
    carrier = carrier_process.client()
    with pytest.raises(ApiError) as bad:
        carrier.submit([{"key": "", "number": "+8613800138000"}])
    assert (bad.value.status, bad.value.code, bad.value.field) == (400, "invalid_request", "messages.0.key")
    with pytest.raises(ApiError) as anonymous:
        CarrierClient(carrier_process.base_url).get_profile()
    assert anonymous.value.status == 401
    with pytest.raises(ApiError) as missing:
        carrier.get_account("nobody")
    assert missing.value.code == "not_found"

    async def main():
        async with AsyncCarrierClient(carrier_process.base_url, carrier_process.token, smpp_port=1) as client:
            assert client.smpp_port == 1 and (await client.get_clock())["mode"] == "virtual"
            await client.submit([{"key": "a1", "number": "+8613800800001", "task_id": 42}])
            await client.advance(HOUR)
            assert [t["number"] async for t in client.iter_ground_truth(42)] == ["+8613800800001"]
            with pytest.raises(ApiError) as err:
                await client.ground_truth()
            assert err.value.field == "task_id"

    asyncio.run(main())
