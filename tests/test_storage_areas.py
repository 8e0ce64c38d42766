"""The storage areas' contract, run the same on both backends: every test here takes ``storage``,
once a SQLite file and once a fresh PostgreSQL database (tests/pg_support.py; these FAIL without a
server unless SMSLAB_TEST_POSTGRES=0), and asserts the same results on each. This is the
evidence that a service gets the same answers whichever database holds its rows.

Rows no area writes yet in these tests (a task's message rows, unmatched receipts, counters the
pipeline keeps) go in through ``sql`` below: minimal statements written once, with ``?``.
"""

from __future__ import annotations

import re

import pytest

from gateway.domain import results as R
from gateway.storage import NameTaken, open_storage
from gateway.storage.audiences import AudienceRow, KIND_DUPLICATE, KIND_EMPTY, KIND_INVALID, KIND_OK
from gateway.storage.check import NO_TASK, CounterMismatch
from gateway.storage.inbound import NewInbound, OptOutRecord, StoredInbound
from gateway.storage.tasks import Counters, DetailsState, EditableTask, MessageRow, TaskFields
from gateway.storage.tokens import TokenInfo, TokenOwner
from gateway.storage.unmatched import UnmatchedReceipt
from tests.pg_support import fresh_database

WS, OTHER = 1, 2


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request, tmp_path):
    if request.param == "sqlite":
        storage = open_storage(str(tmp_path / "gateway.db"))
        await storage.open()
        yield storage
        await storage.close()
        return
    async with fresh_database() as url:
        storage = open_storage(url)
        await storage.open()
        yield storage
        await storage.close()


async def sql(storage, statement: str, *rows: tuple) -> list[tuple]:
    """Run ``statement`` (``?`` placeholders) once per row, or once without arguments, in one
    transaction; the rows a query returns, as tuples."""
    if storage.backend == "sqlite":
        def run(conn):
            out = []
            for args in rows or [()]:
                out += [tuple(r) for r in conn.execute(statement, args).fetchall()]
            return out
        return await storage.db.write(run)
    numbered = iter(range(1, 1000))
    statement = re.sub(r"\?", lambda _: f"${next(numbered)}", statement)

    async def run_pg(conn):
        out = []
        for args in rows or [()]:
            out += [tuple(r) for r in await conn.fetch(statement, *args)]
        return out
    return await storage.db.write(run_pg)


def fields(name: str = "spring", **changes) -> TaskFields:
    base = TaskFields(name=name, platform="sim", sms_type="notification", signature="Acme",
                      content='{"text":"hi"}', content_summary="hi there", audience_id=0, audience_name="list",
                      send_type="now", send_at=None, sub_activities="[]", moderation_due_at=100.5, parts=1, encoding="GSM-7")
    return base._replace(**changes)


async def add_messages(storage, task_id: int, rows: list[tuple]) -> None:
    """Message rows ``(number, parts, result)`` for a task, in id order."""
    await sql(storage, "INSERT INTO messages(task_id, number, parts, result, receipt_at, reasons) VALUES (?,?,?,?,?,?)",
              *[(task_id, number, parts, result, 5.25 if result else None, '[["E1","bad"]]' if result == R.FAILED else None)
                for number, parts, result in rows])


async def set_counters(storage, task_id: int, sent: int, succeeded: int, failed: int, segments: int) -> None:
    await sql(storage, "UPDATE tasks SET sent=?, succeeded=?, failed=?, segments=? WHERE id=?",
              (sent, succeeded, failed, segments, task_id))


# -- tasks -------------------------------------------------------------------------------------
async def test_task_create_get_edit_delete(storage):
    tasks = storage.tasks
    first = await tasks.create(WS, fields(), 10.0)
    second = await tasks.create(WS, fields("summer"), 11.0)
    assert (first, second) == (1, 2)
    assert await tasks.create(OTHER, fields(), 12.0) == 3  # names are per workspace
    with pytest.raises(NameTaken) as taken:
        await tasks.create(WS, fields(), 13.0)
    assert taken.value.name == "spring"
    assert [t.id for t in await tasks.page(WS, 10, None, [], None, None)] == [2, 1]  # nothing stored

    row = await tasks.get(WS, first)
    assert (row.name, row.status, row.created_at, row.updated_at, row.send_at, row.audience_size) == \
        ("spring", "moderating", 10.0, 10.0, None, 0)
    assert type(row.created_at) is float and type(row.sent) is int and type(row.details_purged) is int
    assert await tasks.get(OTHER, first) is None and await tasks.get(WS, 99) is None
    assert await tasks.exists(WS, first) and not await tasks.exists(OTHER, first)
    assert await tasks.editable(WS, first) == EditableTask("moderating", "now", None, "spring", "sim", "notification",
                                                          "Acme", '{"text":"hi"}', 0, "[]")
    assert await tasks.editable(OTHER, first) is None
    assert await tasks.details(WS, first) == DetailsState(False, None)
    assert await tasks.details(OTHER, first) is None
    assert await tasks.counters(first) == Counters(0, 0, 0)

    assert await tasks.update(WS, first, "moderating", fields("autumn", send_type="timed", send_at=50.5), 20.0)
    row = await tasks.get(WS, first)
    assert (row.name, row.send_type, row.send_at, row.updated_at, row.created_at) == ("autumn", "timed", 50.5, 20.0, 10.0)
    assert not await tasks.update(WS, first, "scheduled", fields("winter"), 21.0)  # the status moved on
    with pytest.raises(NameTaken):
        await tasks.update(WS, first, "moderating", fields("summer"), 22.0)
    assert (await tasks.get(WS, first)).name == "autumn"

    assert not await tasks.delete(WS, first, "scheduled")
    assert not await tasks.delete(OTHER, first, "moderating")
    assert await tasks.delete(WS, first, "moderating")
    assert await tasks.get(WS, first) is None
    assert await tasks.count_by_status() == [("moderating", 2)]
    await sql(storage, "UPDATE tasks SET status='completed' WHERE id=?", (second,))
    assert await tasks.count_by_status() == [("completed", 1), ("moderating", 1)]


async def test_task_pages_filters_and_cursor(storage):
    tasks = storage.tasks
    await tasks.create(WS, fields("100% sure", platform="sim"), 1.0)
    await tasks.create(WS, fields("a_b", platform="twilio", content_summary="Offer"), 2.0)
    await tasks.create(WS, fields("aXb", platform="sim", audience_name="VIP list"), 3.0)
    await tasks.create(WS, fields("École", platform="sim"), 4.0)
    await tasks.create(OTHER, fields("other", platform="sim"), 5.0)
    await sql(storage, "UPDATE tasks SET status='scheduled' WHERE id=?", (2,))

    async def ids(limit=10, before=None, statuses=(), platform=None, text=None):
        return [t.id for t in await tasks.page(WS, limit, before, list(statuses), platform, text)]

    assert await ids() == [4, 3, 2, 1]
    assert await ids(limit=2) == [4, 3] and await ids(limit=2, before=3) == [2, 1] and await ids(before=1) == []
    assert await ids(statuses=["scheduled"]) == [2]
    assert await ids(statuses=["scheduled", "moderating"], platform="sim") == [4, 3, 1]
    assert await ids(platform="twilio") == [2]
    # the text is taken literally (no wildcards), ASCII letters in either case, in three columns
    assert await ids(text="_") == [2]
    assert await ids(text="%") == [1]
    assert await ids(text="A_B") == [2]
    assert await ids(text="offer") == [2]
    assert await ids(text="vip") == [3]
    assert await ids(text="éCOLE") == []  # SQLite folds ASCII letters only
    assert await ids(text="École") == [4]


async def test_task_audience_size_follows_the_audience_until_the_send(storage):
    audience = await storage.audiences.begin(WS, "list", "upload", None, 1.0)
    await storage.audiences.add_entries([(audience, i, f"+1555000{i:04d}", f"+1555000{i:04d}", KIND_OK) for i in range(3)])
    await storage.audiences.complete(audience, 3)
    task = await storage.tasks.create(WS, fields(audience_id=audience), 2.0)
    assert (await storage.tasks.get(WS, task)).audience_size == 3
    await sql(storage, "UPDATE tasks SET dispatch_started_at=?, audience_size=? WHERE id=?", (3.0, 7, task))
    assert (await storage.tasks.get(WS, task)).audience_size == 7
    await sql(storage, "UPDATE tasks SET dispatch_started_at=NULL WHERE id=?", (task,))
    await storage.audiences.delete(audience)
    assert (await storage.tasks.get(WS, task)).audience_size == 0


async def test_task_message_rows_pages_and_counts(storage):
    task = await storage.tasks.create(WS, fields(), 1.0)
    other = await storage.tasks.create(WS, fields("other"), 1.0)
    await add_messages(storage, task, [("+15550001", 1, R.SUCCEEDED), ("+15550002", 2, R.FAILED),
                                       ("+15550012", 1, R.PENDING), ("+15550003", 1, R.FAILED)])
    await add_messages(storage, other, [("+15550001", 1, R.FAILED)])
    tasks = storage.tasks
    every = list(R.RESULT_NAMES)
    rows = await tasks.messages(task, every, "", None, 10)
    assert [r.number for r in rows] == ["+15550001", "+15550002", "+15550012", "+15550003"]
    assert rows[1] == MessageRow(rows[1].id, "+15550002", R.FAILED, 5.25, '[["E1","bad"]]', 2)
    assert rows[2].receipt_at is None and rows[2].reasons is None
    first, second = await tasks.messages(task, every, "", None, 2), await tasks.messages(task, every, "", rows[1].id, 2)
    assert first + second == rows
    assert [r.number for r in await tasks.messages(task, [R.FAILED], "", None, 10)] == ["+15550002", "+15550003"]
    assert [r.number for r in await tasks.messages(task, [R.FAILED, R.PENDING], "", None, 10)] == \
        ["+15550002", "+15550012", "+15550003"]
    assert [r.number for r in await tasks.messages(task, [R.SUCCEEDED, R.PENDING], "12", None, 10)] == ["+15550012"]
    assert [r.number for r in await tasks.messages(task, every, "0001", None, 10)] == ["+15550001"]
    assert await tasks.count_messages(task, every, "") == 4
    assert await tasks.count_messages(task, [R.FAILED], "") == 2
    assert await tasks.count_messages(task, [R.FAILED], "3") == 1
    assert await tasks.count_messages(other, every, "") == 1


# -- audiences ---------------------------------------------------------------------------------
async def members(storage, audience_id: int) -> list[tuple]:
    return await sql(storage, "SELECT seq, raw, e164, kind FROM audience_members WHERE audience_id=? ORDER BY seq",
                     (audience_id,))


async def test_audience_upload_begin_add_complete(storage):
    audiences = storage.audiences
    audience = await audiences.begin(WS, "list", "upload", None, 7.5)
    with pytest.raises(NameTaken):
        await audiences.begin(WS, "list", "upload", None, 8.0)
    assert await audiences.unready() == [audience]
    elsewhere = await audiences.begin(OTHER, "list", "upload", None, 8.0)  # names are per workspace
    await audiences.discard(elsewhere)
    assert await audiences.get(WS, audience) is None and await audiences.page(WS, 10, None) == []  # not ready yet
    await audiences.add_entries([(audience, 0, "+15550001", "+15550001", KIND_OK), (audience, 1, "", None, KIND_EMPTY)])
    await audiences.add_entries([])
    await audiences.add_entries([(audience, 2, "junk", None, KIND_INVALID), (audience, 3, "+1 555 0001", "+15550001", KIND_OK),
                                 (audience, 4, "+15550002", "+15550002", KIND_OK)])
    await audiences.complete(audience, 2)
    assert await members(storage, audience) == [
        (0, "+15550001", "+15550001", KIND_OK), (1, "", None, KIND_EMPTY), (2, "junk", None, KIND_INVALID),
        (3, "+1 555 0001", "+15550001", KIND_DUPLICATE), (4, "+15550002", "+15550002", KIND_OK)]
    assert await audiences.unready() == []
    assert await audiences.get(WS, audience) == AudienceRow(audience, "list", "upload", 2, 7.5, None)
    assert await audiences.get(OTHER, audience) is None


async def test_audience_pages_delete_and_name_reuse(storage):
    audiences = storage.audiences
    ids = []
    for i in range(4):
        aid = await audiences.begin(WS, f"a{i}", "upload", None, float(i))
        await audiences.add_entries([(aid, 0, "+15550001", "+15550001", KIND_OK)])
        await audiences.complete(aid, 1)
        ids.append(aid)
    assert [a.id for a in await audiences.page(WS, 10, None)] == ids[::-1]
    assert [a.id for a in await audiences.page(WS, 2, None)] == ids[:1:-1]
    assert [a.id for a in await audiences.page(WS, 2, ids[2])] == ids[1::-1]
    assert await audiences.page(OTHER, 10, None) == []

    # a task not sent yet keeps the entries of the audience it reads; otherwise they go
    task = await storage.tasks.create(WS, fields(audience_id=ids[0]), 1.0)
    await audiences.delete(ids[0])
    await audiences.delete(ids[1])
    assert len(await members(storage, ids[0])) == 1 and await members(storage, ids[1]) == []
    assert await audiences.get(WS, ids[0]) is None
    assert [a.id for a in await audiences.page(WS, 10, None)] == ids[:1:-1][:2]
    reused = await audiences.begin(WS, "a0", "upload", None, 9.0)  # a deleted audience's name is free
    assert reused > ids[-1]
    await sql(storage, "UPDATE tasks SET status='completed' WHERE id=?", (task,))
    await audiences.delete(ids[0])
    assert await members(storage, ids[0]) == []


async def test_audience_discard_and_unready_sweep(storage, monkeypatch):
    from gateway.storage.postgres import audiences as pg_audiences
    from gateway.storage.sqlite import audiences as sqlite_audiences

    monkeypatch.setattr(pg_audiences, "SWEEP_CHUNK", 3)
    monkeypatch.setattr(sqlite_audiences, "SWEEP_CHUNK", 3)
    audiences = storage.audiences
    kept = await audiences.begin(WS, "kept", "upload", None, 1.0)
    discarded = await audiences.begin(WS, "discarded", "upload", None, 1.0)
    abandoned = await audiences.begin(WS, "abandoned", "upload", None, 1.0)
    for aid in (kept, discarded, abandoned):
        await audiences.add_entries([(aid, i, "x", None, KIND_INVALID) for i in range(7)])
    await audiences.complete(kept, 0)
    await audiences.discard(discarded)
    assert await members(storage, discarded) == []
    assert await audiences.unready() == [abandoned]
    await audiences.remove_unready(abandoned)
    assert await members(storage, abandoned) == [] and await audiences.unready() == []
    assert await audiences.begin(WS, "abandoned", "upload", None, 2.0)  # its name is free again
    await audiences.remove_unready(kept)  # a ready audience is never removed
    assert (await audiences.get(WS, kept)).name == "kept"


async def test_audience_from_task_results(storage):
    task = await storage.tasks.create(WS, fields(), 1.0)
    await add_messages(storage, task, [("+15550001", 1, R.SUCCEEDED), ("+15550002", 1, R.FAILED),
                                       ("+15550003", 1, R.PENDING), ("+15550004", 1, R.FAILED)])
    audiences = storage.audiences
    failed = await audiences.from_task_results(WS, task, "retry", [R.FAILED, R.PENDING], 3.5)
    assert await audiences.get(WS, failed) == AudienceRow(failed, "retry", "task", 3, 3.5, task)
    assert await members(storage, failed) == [(0, "+15550002", "+15550002", KIND_OK), (1, "+15550003", "+15550003", KIND_OK),
                                              (2, "+15550004", "+15550004", KIND_OK)]
    with pytest.raises(NameTaken):
        await audiences.from_task_results(WS, task, "retry", [R.SUCCEEDED], 4.0)
    assert [a.id for a in await audiences.page(WS, 10, None)] == [failed]  # nothing stored
    every = await audiences.from_task_results(WS, task, "all", list(R.RESULT_NAMES), 5.0)
    assert (await audiences.get(WS, every)).size == 4


# -- tokens ------------------------------------------------------------------------------------
async def test_tokens(storage):
    tokens = storage.tokens
    await tokens.create("acme", "a" * 64, "serve", True, 1.5)
    await tokens.create("acme", "b" * 64, None, False, 2.5)
    await tokens.create("beta", "c" * 64, "ci", False, 3.5)
    acme = await tokens.owner("a" * 64)
    assert acme == TokenOwner(acme.workspace_id, "acme", True)
    assert await tokens.owner("b" * 64) == TokenOwner(acme.workspace_id, "acme", False)
    beta = await tokens.owner("c" * 64)
    assert beta.workspace == "beta" and beta.workspace_id != acme.workspace_id
    assert await tokens.owner("d" * 64) is None
    assert await tokens.listing() == [TokenInfo(1, "acme", "serve", True, 1.5, "aaaaaaaa"),
                                      TokenInfo(2, "acme", None, False, 2.5, "bbbbbbbb"),
                                      TokenInfo(3, "beta", "ci", False, 3.5, "cccccccc")]
    assert await tokens.revoke(token_id=2) == TokenInfo(2, "acme", None, False, 2.5, "bbbbbbbb")
    assert await tokens.revoke(token_id=2) is None
    assert await tokens.revoke(digest="c" * 64) == TokenInfo(3, "beta", "ci", False, 3.5, "cccccccc")
    assert await tokens.revoke(digest="c" * 64) is None
    assert await tokens.owner("c" * 64) is None
    assert [t.id for t in await tokens.listing()] == [1]
    await tokens.create("beta", "e" * 64, None, False, 4.5)  # ids are never handed out twice
    assert [t.id for t in await tokens.listing()] == [1, 4]

    assert await tokens.serve_token("acme") is None
    await tokens.keep_serve_token("acme", "first")
    await tokens.keep_serve_token("acme", "second")
    await tokens.keep_serve_token("beta", "other")
    assert (await tokens.serve_token("acme"), await tokens.serve_token("beta")) == ("second", "other")


# -- unmatched receipts, health -------------------------------------------------------------------
async def test_unmatched_pages(storage):
    rows = [("sim", "p1", None, "DELIVRD", None, None, 1.5, 2.5, 0, WS),
            ("twilio", "p2", 1, "UNDELIV", "E9", "gone", 1.5, 2.5, 0, None),
            ("sim", "p3", 0, "DELIVRD", None, None, 1.5, 2.5, 1, WS),  # matched since
            ("sim", "p4", None, "DELIVRD", None, None, 1.5, 2.5, 0, OTHER),
            ("sim", "p5", None, "DELIVRD", None, None, 1.5, 2.5, 0, WS)]
    await sql(storage, "INSERT INTO unmatched_receipts(platform, platform_id, part, status, code, message, at, received_at,"
              " matched, workspace_id) VALUES (?,?,?,?,?,?,?,?,?,?)", *rows)
    unmatched = storage.unmatched
    total, page = await unmatched.page(WS, False, None, None, 10)
    assert total == 2 and [r.platform_id for r in page] == ["p1", "p5"]
    assert page[0] == UnmatchedReceipt(1, "sim", "p1", None, "DELIVRD", None, None, 1.5, 2.5)
    total, page = await unmatched.page(WS, True, None, None, 2)
    assert total == 3 and [r.platform_id for r in page] == ["p1", "p2"]
    assert page[1] == UnmatchedReceipt(2, "twilio", "p2", 1, "UNDELIV", "E9", "gone", 1.5, 2.5)
    total, page = await unmatched.page(WS, True, None, 2, 2)
    assert total == 3 and [r.platform_id for r in page] == ["p5"]
    total, page = await unmatched.page(WS, True, "twilio", None, 10)
    assert total == 1 and [r.platform_id for r in page] == ["p2"]


async def test_health_ping(storage):
    assert await storage.health.ping() is None


# -- inbound -----------------------------------------------------------------------------------
def reply(sender: str, text: str = "hello", platform_id: str | None = None, keyword: str | None = None,
          at: float = 1.25) -> NewInbound:
    return NewInbound(sender, "+15559999", text, at, platform_id, keyword)


async def test_inbound_store_replies_skips_known_ones_and_opts_out(storage):
    inbound = storage.inbound
    stored = await inbound.store_replies(WS, "sim", [
        reply("+15550001", platform_id="m1"),
        reply("+15550002", "STOP", platform_id="m2", keyword="STOP"),
        reply("+15550003", platform_id="m1"),  # the same reply handed over again in the batch
        reply("+15550002", "stop", keyword="stop"),  # already on the list: the first entry stays
        reply("+15550004", platform_id=None),
    ], 10.5)
    assert [(s.index, s.opted_out) for s in stored] == [(0, False), (1, True), (3, True), (4, False)]
    ids = [s.inbound_id for s in stored]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert await inbound.store_replies(WS, "sim", [reply("+15550005", platform_id="m1")], 11.0) == []
    again = await inbound.store_replies(WS, "other", [reply("+15550005", platform_id="m1")], 11.0)  # another platform
    assert [s.index for s in again] == [0] and again[0].inbound_id > ids[-1]
    assert await inbound.store_replies(WS, "sim", [], 11.0) == []

    page = await inbound.opt_outs_page(WS, 10, None)
    assert page.total == 1 and not page.more
    assert page.items == [OptOutRecord("+15550002", "reply", "STOP", ids[1], 10.5)]
    record = await inbound.inbound_by_platform_id(WS, "sim", "m2")
    assert record.id == ids[1] and record.opted_out is True and record.text == "STOP"
    assert (record.workspace_id, record.platform, record.sender, record.recipient, record.at, record.received_at) == \
        (WS, "sim", "+15550002", "+15559999", 1.25, 10.5)
    assert (await inbound.inbound_by_platform_id(WS, "sim", "m1")).opted_out is False
    assert await inbound.inbound_by_platform_id(OTHER, "sim", "m1") is None
    assert await inbound.inbound_by_platform_id(None, "sim", "m1") is None

    unowned = await inbound.store_replies(None, "sim", [reply("+15550006", platform_id="u1")], 12.0)
    assert (await inbound.inbound_by_platform_id(None, "sim", "u1")).id == unowned[0].inbound_id
    assert await inbound.inbound_by_platform_id(WS, "sim", "u1") is None


async def test_inbound_pages(storage):
    inbound = storage.inbound
    await inbound.store_replies(WS, "sim", [reply(f"+1555000{i}", platform_id=f"m{i}") for i in range(5)], 1.0)
    await inbound.store_replies(None, "twilio", [reply("+15550009")], 2.0)
    await inbound.store_replies(OTHER, "sim", [reply("+15550008")], 3.0)

    page = await inbound.inbound_page(WS, False, 2, None)
    assert [r.sender for r in page.items] == ["+15550004", "+15550003"] and page.total == 5 and page.more
    page = await inbound.inbound_page(WS, False, 2, page.items[-1].id)
    assert [r.sender for r in page.items] == ["+15550002", "+15550001"] and page.more
    page = await inbound.inbound_page(WS, False, 2, page.items[-1].id)
    assert [r.sender for r in page.items] == ["+15550000"] and not page.more and page.total == 5
    admin = await inbound.inbound_page(WS, True, 10, None)
    assert admin.total == 6 and admin.items[0].sender == "+15550009" and admin.items[0].workspace_id is None
    assert admin.items[0].platform_id is None and admin.items[0].opted_out is False
    assert [r.sender for r in (await inbound.inbound_page(WS, True, 10, None, "0003")).items] == ["+15550003"]
    only = await inbound.inbound_page(WS, True, 10, None, platform="twilio")
    assert [r.sender for r in only.items] == ["+15550009"] and only.total == 1


async def test_opt_outs(storage):
    inbound = storage.inbound
    assert not await inbound.has_opt_outs(WS)
    record, new = await inbound.add_opt_out(WS, "+15550002", 5.5)
    assert new and record == OptOutRecord("+15550002", "api", None, None, 5.5)
    again, new = await inbound.add_opt_out(WS, "+15550002", 6.5)
    assert not new and again == record
    for number in ("+15550010", "+15550001", "+4420000001"):
        await inbound.add_opt_out(WS, number, 7.0)
    await inbound.add_opt_out(OTHER, "+15550003", 7.0)
    assert await inbound.has_opt_outs(WS)

    page = await inbound.opt_outs_page(WS, 2, None)
    assert [o.number for o in page.items] == ["+15550001", "+15550002"] and page.total == 4 and page.more
    page = await inbound.opt_outs_page(WS, 2, page.items[-1].number)
    assert [o.number for o in page.items] == ["+15550010", "+4420000001"] and not page.more
    found = await inbound.opt_outs_page(WS, 10, None, "555")
    assert [o.number for o in found.items] == ["+15550001", "+15550002", "+15550010"] and found.total == 3
    assert await inbound.opted_out(WS, ["+15550001", "+15550003", "+15550010", "+19999"]) == {"+15550001", "+15550010"}
    assert await inbound.opted_out(WS, iter([])) == set()

    assert await inbound.remove_opt_out(WS, "+15550001")
    assert not await inbound.remove_opt_out(WS, "+15550001")
    assert not await inbound.remove_opt_out(WS, "+15550003")  # another workspace's
    assert (await inbound.opt_outs_page(WS, 10, None)).total == 3
    for number in ("+15550002", "+15550010", "+4420000001"):
        await inbound.remove_opt_out(WS, number)
    assert not await inbound.has_opt_outs(WS) and await inbound.has_opt_outs(OTHER)


async def test_stored_inbound_record_shapes(storage):
    stored = await storage.inbound.store_replies(WS, "sim", [reply("+15550001", keyword="STOP")], 2.0)
    assert stored == [StoredInbound(0, stored[0].inbound_id, True)]
    item = (await storage.inbound.inbound_page(WS, False, 1, None)).items[0]
    assert type(item.id) is int and type(item.at) is float and type(item.opted_out) is bool


# -- check -------------------------------------------------------------------------------------
async def test_count_mismatches(storage):
    tasks = storage.tasks
    good = await tasks.create(WS, fields("good"), 1.0)
    bad = await tasks.create(WS, fields("bad"), 1.0)
    purged = await tasks.create(WS, fields("purged"), 1.0)
    expiring = await tasks.create(WS, fields("expiring"), 1.0)
    await add_messages(storage, good, [("+15550001", 2, R.SUCCEEDED), ("+15550002", 1, R.FAILED), ("+15550003", 1, R.PENDING)])
    await set_counters(storage, good, 3, 1, 1, 4)
    await add_messages(storage, bad, [("+15550001", 1, R.SUCCEEDED), ("+15550002", 3, R.FAILED)])
    await set_counters(storage, bad, 2, 2, 0, 4)
    await sql(storage, "UPDATE tasks SET details_purged=1, sent=9 WHERE id=?", (purged,))
    await add_messages(storage, expiring, [("+15550001", 1, R.SUCCEEDED)])
    await sql(storage, "UPDATE tasks SET details_expire_at=? WHERE id=?", (50.0, expiring))
    await add_messages(storage, 77, [("+15550001", 1, R.PENDING), ("+15550002", 1, R.FAILED)])  # no such task

    result = await storage.check.count_mismatches(now=10.0)
    assert (result.checked, result.purged, result.expired) == (3, 1, 0)
    assert result.mismatches == [CounterMismatch(bad, "succeeded", 2, 1), CounterMismatch(bad, "failed", 0, 1),
                                 CounterMismatch(expiring, "sent", 0, 1), CounterMismatch(expiring, "succeeded", 0, 1),
                                 CounterMismatch(expiring, "segments", 0, 1), CounterMismatch(77, NO_TASK, 0, 2)]
    assert not result.ok
    later = await storage.check.count_mismatches(now=50)
    assert (later.checked, later.purged, later.expired) == (2, 1, 1)
    # no instant given: the one a virtual clock saved
    await sql(storage, "INSERT INTO service_state(key, value) VALUES ('virtual_now', ?)", ("60.0",))
    saved = await storage.check.count_mismatches()
    assert saved.expired == 1 and saved.mismatches == later.mismatches
    await sql(storage, "DELETE FROM messages WHERE task_id=?", (77,))
    await set_counters(storage, bad, 2, 1, 1, 4)
    assert (await storage.check.count_mismatches()).ok
