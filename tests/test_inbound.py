"""Inbound messages (replies from handsets) and opt-outs, through the real service: a reply sent
with the simulated carrier's ``POST /api/v1/simulator/mo`` is stored, listed at
``/api/v1/inbound``, and an opt-out keyword puts its sender on the workspace's opt-out list, which
later tasks skip as ``opted_out`` while ``audience_size = sent + sum(skipped)`` still holds (checked
against the message rows themselves and the carrier's ground truth)."""

from __future__ import annotations

import pytest

from gateway.config import Config
from gateway.domain.optout import DEFAULT_KEYWORDS, opt_out_keyword, parse_keywords
from gateway.platform import InboundMessage
from gateway.web.app import create_app
from gateway.web.keys import clock_key, inbound_key, storage_key
from tests.pg_support import Evidence
from tests.conftest import Api, make_config
from tests.counts import assert_counters_match_rows_of

STOPPER = "+8613800138000"
OTHERS = ["+8613800138001", "+8613800138002", "+8613800138003", "+8613800138004"]
# every number delivered a second after submission, no review delay
QUICK = {"outcomes": {"delivered": 1, "failed": 0, "missing": 0}, "receipt_delay": {"kind": "fixed", "seconds": 1},
         "moderation": {"banned_words": [], "review_seconds": 0}, "duplicate_rate": 0}


@pytest.fixture
def config(tmp_path):
    # two numbers a batch: a task of a few numbers goes out in several batches
    return make_config(tmp_path, dispatch_batch=2)


def _app(api: Api):
    return api.client.server.app


async def mo(api: Api, text: str, sender: str = STOPPER, expect: int = 201, **extra) -> dict:
    return await api.post("/api/v1/simulator/mo", {"from": sender, "text": text, **extra}, expect=expect)


async def send(api: Api, numbers: list[str], name: str, admin: Api | None = None) -> dict:
    """A task to ``numbers``, sent and completed (``admin`` moves the clock); its details."""
    aud = await api.audience(numbers, name=f"aud {name}")
    task = await api.task(aud["id"], name=name)
    await (admin or api).advance(5)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed", detail
    return detail


async def evidence(api: Api, task_id: int) -> dict:
    """What the message rows and the carrier say, independently of the task's counters."""
    db = Evidence(_app(api)[storage_key])
    await assert_counters_match_rows_of(_app(api)[storage_key], _app(api)[clock_key].now())  # every task's counters, against its rows
    by_result = dict(await db.fetchall("SELECT result, COUNT(*) FROM messages WHERE task_id=? GROUP BY result", (task_id,)))
    numbers = [n for (n,) in await db.fetchall("SELECT number FROM messages WHERE task_id=?", (task_id,))]
    truth = await api.get(f"/api/v1/simulator/ground-truth?task_id={task_id}&limit=1000")
    return {"rows": sum(by_result.values()), "by_result": by_result, "numbers": numbers,
            "carrier": [item["number"] for item in truth["items"]]}


def assert_counts_add_up(detail: dict, rows: int) -> None:
    assert detail["audience_size"] == detail["sent"] + sum(detail["skipped"].values()), detail
    assert detail["sent"] == rows == detail["succeeded"] + detail["failed"] + detail["pending"], (detail, rows)


# -- the journey ---------------------------------------------------------------------------------------
async def test_a_stop_reply_is_listed_opts_out_and_later_tasks_skip_the_number(api):
    await api.profile(**QUICK)
    audience = [STOPPER, *OTHERS, "", STOPPER]  # the stopper twice: once opted out, once a duplicate
    before = await send(api, audience, "before")
    assert before["sent"] == 5 and "opted_out" not in before["skipped"]

    reply = await mo(api, "STOP")
    assert reply["sender"] == STOPPER and reply["text"] == "STOP" and reply["opted_out"] is True
    assert reply["platform"] == "sim" and reply["recipient"] == "10690000" and reply["platform_id"].startswith("sim-mo-")
    inbound = await api.get("/api/v1/inbound")
    assert inbound["total"] == 1 and inbound["items"] == [reply]
    opt_outs = await api.get("/api/v1/opt-outs")
    assert opt_outs["total"] == 1 and opt_outs["items"][0]["number"] == STOPPER
    entry = opt_outs["items"][0]
    assert (entry["source"], entry["keyword"], entry["inbound_id"]) == ("reply", "STOP", reply["id"])

    after = await send(api, audience, "after")
    assert after["sent"] == before["sent"] - 1  # one number fewer
    assert after["skipped"] == {"empty": 1, "invalid": 0, "duplicate": 1, "over_limit": 0, "opted_out": 1}
    assert "1 opted out" in after["explanation"]
    proof = await evidence(api, after["id"])
    assert_counts_add_up(after, proof["rows"])
    assert proof["by_result"] == {1: 4}  # all four delivered
    assert STOPPER not in proof["numbers"] and sorted(proof["numbers"]) == OTHERS
    assert STOPPER not in proof["carrier"] and sorted(proof["carrier"]) == OTHERS  # never reached the carrier

    # a task whose every number opted out fails, saying so
    only = await api.audience([STOPPER], name="only the stopper")
    task = await api.task(only["id"], name="nobody")
    await api.advance(5)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "failed" and "1 opted out" in detail["status_reason"], detail
    assert detail["audience_size"] == detail["sent"] + sum(detail["skipped"].values()) == 1


async def test_an_opted_out_number_takes_no_place_under_the_recipient_limit(api):
    await api.profile(**QUICK, max_recipients=3)
    await mo(api, "STOP")
    detail = await send(api, [STOPPER, *OTHERS], "limited")  # the stopper first, then four for three places
    assert (detail["sent"], detail["skipped"]["opted_out"], detail["skipped"]["over_limit"]) == (3, 1, 1)
    proof = await evidence(api, detail["id"])
    assert_counts_add_up(detail, proof["rows"])
    assert sorted(proof["numbers"]) == OTHERS[:3]


async def test_opt_outs_belong_to_one_workspace(api, other_api):
    for client in (api, other_api):
        await client.profile(**QUICK)
    await mo(api, "stop")
    assert (await api.get("/api/v1/opt-outs"))["total"] == 1
    # the other workspace neither sees the reply nor the opt-out, and still sends to the number
    assert (await other_api.get("/api/v1/inbound"))["items"] == []
    assert (await other_api.get("/api/v1/opt-outs")) == {"items": [], "total": 0, "next_cursor": None}
    theirs = await send(other_api, [STOPPER, *OTHERS], "theirs", admin=api)
    proof = await evidence(other_api, theirs["id"])
    assert theirs["sent"] == 5 and "opted_out" not in theirs["skipped"] and STOPPER in proof["numbers"]
    assert STOPPER in proof["carrier"]
    ours = await send(api, [STOPPER, *OTHERS], "ours")
    assert ours["sent"] == 4 and ours["skipped"]["opted_out"] == 1
    # a reply in the other workspace opts out there only; nobody may remove another's entry
    await mo(other_api, "TD", sender=OTHERS[0])
    assert [e["number"] for e in (await other_api.get("/api/v1/opt-outs"))["items"]] == [OTHERS[0]]
    assert [e["number"] for e in (await api.get("/api/v1/opt-outs"))["items"]] == [STOPPER]
    await other_api.call("DELETE", f"/api/v1/opt-outs/%2B{STOPPER[1:]}", expect=404)
    assert (await api.get("/api/v1/opt-outs"))["total"] == 1


# -- which replies opt out ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, keyword", [
    ("stop", "STOP"), (" Unsubscribe ", "UNSUBSCRIBE"), ("TD", "TD"), ("STOP please", "STOP"), ("Stop.", "STOP"),
    ("td，谢谢", "TD"), ("UNSUBSCRIBE\nme", "UNSUBSCRIBE"),
    ("stopwatch", None), ("no", None), ("please STOP", None), ("STOP2", None), ("", None), ("  ", None), ("TDD", None),
])
async def test_keyword_variants_through_the_service(api, text, keyword):
    reply = await mo(api, text)
    assert reply["opted_out"] is (keyword is not None), reply
    listed = (await api.get("/api/v1/opt-outs"))["items"]
    assert [(e["number"], e["keyword"]) for e in listed] == ([(STOPPER, keyword)] if keyword else [])
    assert (await api.get("/api/v1/inbound"))["items"][0]["text"] == text


def test_the_keyword_rule():
    keywords = DEFAULT_KEYWORDS
    assert keywords == ("STOP", "UNSUBSCRIBE", "TD")
    for text in ["STOP", "stop", " Stop ", "STOP!", "stop, thanks", "Stop\tnow", "td。", "ＴＤ", "Unsubscribe me"]:
        assert opt_out_keyword(text, keywords) is not None, text
    for text in ["stopwatch", "no", "unsubscribed", "TDX", "don't stop", "STOP1", None, "", "\n"]:
        assert opt_out_keyword(text, keywords) is None, text
    assert opt_out_keyword("stop all now", ["STOP", "STOP ALL"]) == "STOP ALL"
    assert opt_out_keyword("straße", ["STRASSE"]) == "STRASSE"  # case folding, not lowering
    assert opt_out_keyword("STOP", []) is None
    assert parse_keywords(" stop, ,HALT,Stop , 取消") == ("stop", "HALT", "取消")
    assert parse_keywords("") == ()


def test_keywords_come_from_the_environment(monkeypatch):
    assert Config.from_env().opt_out_keywords == ("STOP", "UNSUBSCRIBE", "TD")
    monkeypatch.setenv("SMSLAB_OPT_OUT_KEYWORDS", "HALT, 取消")
    assert Config.from_env().opt_out_keywords == ("HALT", "取消")


async def test_configured_keywords_replace_the_defaults(aiohttp_client, tmp_path):
    from gateway.auth import create_token

    app = create_app(make_config(tmp_path, opt_out_keywords=("HALT", "取消")))
    client = await aiohttp_client(app)
    api = Api(client, await create_token(app[storage_key], "custom", app[clock_key].now(), admin=True))
    assert (await mo(api, "STOP"))["opted_out"] is False
    assert (await mo(api, "halt!", sender=OTHERS[0]))["opted_out"] is True
    assert (await mo(api, "取消 谢谢", sender=OTHERS[1]))["opted_out"] is True
    assert sorted(e["number"] for e in (await api.get("/api/v1/opt-outs"))["items"]) == OTHERS[:2]


# -- the API -----------------------------------------------------------------------------------------------
async def test_adding_and_deleting_opt_outs(api):
    await api.profile(**QUICK)
    created = await api.post("/api/v1/opt-outs", {"number": "138 0013 8001"})  # national, with spaces: stored in E.164
    assert created["number"] == OTHERS[0] and created["source"] == "api" and created["keyword"] is None
    again = await api.post("/api/v1/opt-outs", {"number": OTHERS[0]}, expect=200)  # idempotent
    assert again == created
    await mo(api, "STOP", sender=OTHERS[0])  # a reply for a number already on the list keeps the entry as it was
    assert (await api.get("/api/v1/opt-outs"))["items"] == [created]
    skipped = await send(api, [STOPPER, *OTHERS], "skips it")
    assert skipped["sent"] == 4 and skipped["skipped"]["opted_out"] == 1

    await api.call("DELETE", f"/api/v1/opt-outs/%2B{OTHERS[0][1:]}", expect=204)
    await api.call("DELETE", f"/api/v1/opt-outs/%2B{OTHERS[0][1:]}", expect=404)
    assert (await api.get("/api/v1/opt-outs"))["total"] == 0
    sendable = await send(api, [STOPPER, *OTHERS], "sends it again")
    assert sendable["sent"] == 5 and "opted_out" not in sendable["skipped"]
    assert OTHERS[0] in (await evidence(api, sendable["id"]))["numbers"]
    # a number in the path may be written as a national number, or with a plain +
    await api.post("/api/v1/opt-outs", {"number": OTHERS[1]})
    await api.call("DELETE", "/api/v1/opt-outs/13800138002", expect=204)
    await api.post("/api/v1/opt-outs", {"number": OTHERS[1]})
    await api.call("DELETE", f"/api/v1/opt-outs/{OTHERS[1]}", expect=204)


async def test_pages_searches_and_totals(api):
    numbers = [f"+86138001390{i:02d}" for i in range(7)]
    for n in reversed(numbers):
        await api.post("/api/v1/opt-outs", {"number": n})
    seen, cursor = [], None
    while True:
        page = await api.get("/api/v1/opt-outs?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert page["total"] == 7
        seen += [e["number"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == numbers  # in number order
    found = await api.get("/api/v1/opt-outs?q=%2B86%20138-0013-9003")
    assert found["total"] == 1 and [e["number"] for e in found["items"]] == [numbers[3]]
    assert (await api.get("/api/v1/opt-outs?q=9999"))["total"] == 0

    for i, n in enumerate(numbers[:5]):
        await mo(api, f"hello {i}", sender=n)
    first = await api.get("/api/v1/inbound?limit=2")
    assert [m["text"] for m in first["items"]] == ["hello 4", "hello 3"] and first["total"] == 5  # newest first
    second = await api.get(f"/api/v1/inbound?limit=2&cursor={first['next_cursor']}")
    assert [m["text"] for m in second["items"]] == ["hello 2", "hello 1"]
    by_sender = await api.get(f"/api/v1/inbound?sender={numbers[2][-4:]}")
    assert by_sender["total"] == 1 and by_sender["items"][0]["sender"] == numbers[2]
    assert (await api.get("/api/v1/inbound?platform=sim"))["total"] == 5
    assert (await api.get("/api/v1/inbound?platform=smpp"))["total"] == 0


async def test_bad_input_is_a_4xx_naming_the_field(api):
    checks = [
        ("POST", "/api/v1/opt-outs", {}, 400, "number"),
        ("POST", "/api/v1/opt-outs", {"number": 8613800138000}, 400, "number"),
        ("POST", "/api/v1/opt-outs", {"number": ""}, 400, "number"),
        ("POST", "/api/v1/opt-outs", {"number": "call me"}, 400, "number"),
        ("POST", "/api/v1/opt-outs", {"number": "+1" * 40}, 400, "number"),
        ("POST", "/api/v1/opt-outs", {"number": STOPPER, "why": "asked"}, 400, "why"),
        ("DELETE", "/api/v1/opt-outs/not-a-number", None, 400, "number"),
        ("DELETE", "/api/v1/opt-outs/%2B8613800138009", None, 404, "number"),
        ("GET", "/api/v1/opt-outs?q=abc", None, 400, "q"),
        ("GET", "/api/v1/opt-outs?limit=0", None, 400, "limit"),
        ("GET", "/api/v1/opt-outs?cursor=nonsense", None, 400, "cursor"),
        ("GET", "/api/v1/opt-outs?cursor=aWQ6MQ", None, 400, "cursor"),  # an id cursor of another list
        ("GET", "/api/v1/inbound?sender=%2B86%20abc", None, 400, "sender"),
        ("GET", "/api/v1/inbound?limit=1001", None, 400, "limit"),
        ("GET", "/api/v1/inbound?cursor=a2V5Ois4Ng", None, 400, "cursor"),  # a key cursor of another list
        ("POST", "/api/v1/simulator/mo", {"text": "STOP"}, 400, "from"),
        ("POST", "/api/v1/simulator/mo", {"from": "nobody", "text": "STOP"}, 400, "from"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER}, 400, "text"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER, "text": 1}, 400, "text"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER, "text": "x" * 1601}, 400, "text"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER, "text": "STOP", "to": "10 69"}, 400, "to"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER, "text": "STOP", "to": "1069\n"}, 400, "to"),
        ("POST", "/api/v1/simulator/mo", {"from": STOPPER, "text": "STOP", "to": ""}, 400, "to"),
    ]
    for method, path, body, status, field in checks:
        got, answer = await api.call(method, path, json=body)
        assert (got, answer["error"].get("field")) == (status, field), (method, path, body, answer)
    # nothing was stored by the refused requests
    assert (await api.get("/api/v1/opt-outs"))["total"] == 0 and (await api.get("/api/v1/inbound"))["total"] == 0
    assert (await mo(api, "hi", to="+1069ab"))["recipient"] == "+1069ab"


# -- what a platform hands over ------------------------------------------------------------------------------
async def test_a_reply_without_a_workspace_is_kept_for_admins_and_opts_nobody_out(api, other_api):
    inbound = _app(api)[inbound_key]
    now = _app(api)[clock_key].now()
    message = InboundMessage(sender="8613800138000", recipient="10690000", text="STOP", at=now - 5, platform_id="smsc-1")
    odd = InboundMessage(sender="ACME", recipient="", text="hi", at=float("nan"))  # a time no page could show: now
    assert len(await inbound.deliver("smpp", [message, odd], None)) == 2
    assert await inbound.deliver("smpp", [message], None) == []  # handed over again: stored once
    listed = await api.get("/api/v1/inbound")  # an admin token
    assert listed["total"] == 2
    assert listed["items"][0]["sender"] == "ACME" and listed["items"][0]["at"] == listed["items"][0]["received_at"]
    item = listed["items"][1]
    assert (item["workspace_id"], item["sender"], item["opted_out"], item["platform"]) == (None, STOPPER, False, "smpp")
    assert (await other_api.get("/api/v1/inbound"))["total"] == 0  # not an admin: not shown
    assert (await api.get("/api/v1/opt-outs"))["total"] == 0 and (await other_api.get("/api/v1/opt-outs"))["total"] == 0
    db = Evidence(_app(api)[storage_key])
    assert (await db.fetchone("SELECT COUNT(*) FROM opt_outs"))[0] == 0

    # with a workspace: several in one hand-over, a sender that is no phone number opts nobody out
    ws = (await db.fetchone("SELECT id FROM workspaces WHERE name='globex'"))[0]
    stored = await inbound.deliver("smpp", [
        InboundMessage(sender=OTHERS[0], recipient="10690000", text="TD", at=now),
        InboundMessage(sender="ACME", recipient="10690000", text="STOP", at=now),
    ], ws)
    assert len(stored) == 2
    theirs = await other_api.get("/api/v1/inbound")
    assert [(m["sender"], m["opted_out"], m["workspace_id"]) for m in theirs["items"]] == [("ACME", False, ws), (OTHERS[0], True, ws)]
    assert [e["number"] for e in (await other_api.get("/api/v1/opt-outs"))["items"]] == [OTHERS[0]]


async def test_a_batch_costs_no_opt_out_query_while_the_workspace_has_none(api, monkeypatch):
    """One EXISTS per workspace while its list is empty (cached), one look-up per batch once it has entries."""
    await api.profile(**QUICK)
    store = _app(api)[storage_key].inbound
    seen: list[str] = []
    has_opt_outs, opted_out = store.has_opt_outs, store.opted_out

    async def spy_exists(*args, **kw):
        seen.append("exists")
        return await has_opt_outs(*args, **kw)

    async def spy_lookup(*args, **kw):
        seen.append("lookup")
        return await opted_out(*args, **kw)

    monkeypatch.setattr(store, "has_opt_outs", spy_exists)
    monkeypatch.setattr(store, "opted_out", spy_lookup)
    numbers = [STOPPER, *OTHERS]  # three batches of two
    await send(api, numbers, "no opt-outs")
    await send(api, numbers, "still none")
    assert seen == ["exists"], seen
    seen.clear()
    await mo(api, "STOP")
    detail = await send(api, numbers, "one opt-out")
    assert detail["skipped"]["opted_out"] == 1
    assert seen == ["exists", "lookup", "lookup", "lookup"], seen
    seen.clear()
    await api.call("DELETE", f"/api/v1/opt-outs/%2B{STOPPER[1:]}", expect=204)
    await send(api, numbers, "none again")
    assert seen == ["exists"], seen


async def test_the_list_outlives_a_restart(tmp_path):
    """The list is in the database; what a fresh service caches about it starts from there."""
    from gateway.clock import VirtualClock
    from gateway.inbound import InboundService
    from gateway.plugins import build_plugin_manager
    from gateway.storage import open_storage

    config = make_config(tmp_path)
    pm = build_plugin_manager(load_entrypoints=False)
    for round_ in range(2):
        storage = open_storage(config.db_path)
        await storage.open()
        try:
            service = InboundService(storage.inbound, VirtualClock(1_700_000_000.0), pm, config)
            if round_ == 0:
                assert await service.opted_out(7, [STOPPER]) == set()
                await service.add_opt_out(7, STOPPER)
                assert await service.opted_out(7, [STOPPER, *OTHERS]) == {STOPPER}
            else:
                assert await service.opted_out(7, [STOPPER, *OTHERS]) == {STOPPER}
                assert await service.opted_out(8, [STOPPER]) == set()
        finally:
            await storage.close()
