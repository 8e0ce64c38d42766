"""The simulated carrier's books on both backends, on real databases: the same contract for the
SQLite file and the gateway's PostgreSQL database, and a takeover on PostgreSQL (one instance
killed without stopping, another carrying on from the books it left)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from gateway.clock import VirtualClock
from gateway.config import Config
from gateway.platform import PlatformContext, SubmitItem
from gateway.storage.postgres.db import Database as PostgresDatabase
from simulator import profile as P
from simulator.carrier import SimulatedCarrier
from simulator.core import CarrierCore
from simulator.core.books_postgres import MIGRATIONS_TABLE, PostgresBooks
from simulator.core.books_sqlite import SqliteBooks
from simulator.model import RuleBook, decide_many
from simulator.store import open_carrier_db
from tests.pg_support import fresh_database, pg_url  # noqa: F401 (a fixture)

START = 1_714_557_600.0
PROFILE = P.Profile(duplicate_rate=0.3)


def items(n: int, task: int, start: int = 0) -> list[SubmitItem]:
    """``n`` numbers of a task, and two of the default magic numbers (one refused at submission)."""
    nums = [f"+86138{i:08d}" for i in range(start, start + n)] + ["+15005550001", "+15005550010"]
    return [SubmitItem(key=f"{task}-{start + i:05d}", task_id=task, number=num, text="hi", parts=2)
            for i, num in enumerate(nums)]


def ids_of(batch: list[SubmitItem]) -> list[str]:
    return [f"sim-{item.key}" for item in batch]


def decide(batch: list[SubmitItem], profile: P.Profile = PROFILE) -> list:
    return decide_many(profile, [(f"{i.task_id}:{i.number}", i.parts, i.number) for i in batch],
                       RuleBook(profile.number_rules))


@pytest.fixture(params=["sqlite", "postgres"])
async def books(request, tmp_path):
    if request.param == "sqlite":
        db = await open_carrier_db(str(tmp_path / "carrier.db"))
        try:
            yield SqliteBooks(db)
        finally:
            await db.close()
    else:
        async with fresh_database() as url:
            db = PostgresDatabase(url)  # the gateway's database, with the gateway's schema
            await db.open()
            try:
                b = PostgresBooks(db)
                await b.open()
                yield b
            finally:
                await db.close()


# -- the contract, on both backends ------------------------------------------------------------------
async def test_a_submission_is_recorded_with_its_receipts_and_counter(books):
    clock = VirtualClock(START)
    batch = items(20, task=7)
    ids = ids_of(batch)
    refused, due_rows, recorded, next_rid = await books.record_submission(
        clock, batch, ids, decide(batch), {}, PROFILE, START, "ws1")
    assert refused == {"sim-7-00020": refused["sim-7-00020"]} and refused["sim-7-00020"]  # the refused magic number
    truth = await books.ground_truth_rows(7, "", 100)
    assert next_rid == 1 + sum(len(row[8]) for row in truth) and len(due_rows) <= next_rid - 1
    assert (await books.load_state()).next_rid == next_rid
    assert [(t, first, last) for t, _bid, first, last in recorded] == [(7, ids[0], ids[-1])]
    assert [tuple(r) for r in await books.key_ranges(7)] == [(recorded[0][1], ids[0], ids[-1])]
    [messages] = await books.batch_messages([recorded[0][1]])
    assert [m[0] for m in messages] == sorted(ids)
    # receipt ids go on from the counter: a second submission never reuses one
    more = items(5, task=8)
    _, due2, _, next2 = await books.record_submission(clock, more, ids_of(more), decide(more), {}, PROFILE, START, "ws1")
    assert min(r[1] for r in due2) >= next_rid and next2 > next_rid
    assert (await books.load_state()).next_rid == next2


async def test_pending_receipts_after_the_watermark(books):
    clock = VirtualClock(START)
    batch = items(30, task=1)
    _, due_rows, _, _ = await books.record_submission(clock, batch, ids_of(batch), decide(batch), {}, PROFILE, START)
    everything = sorted(due_rows)
    assert sorted(await books.pending_receipts(float("-inf"), 0)) == everything
    mark = everything[len(everything) // 2][:2]
    await books.log_emission(mark[0], mark[1], START + 100)
    assert (await books.load_state()).watermark == mark
    assert sorted(await books.pending_receipts(*mark)) == [r for r in everything if r[:2] > mark]
    assert await books.emission_log() == [(mark[0], mark[1], START + 100)]
    # an outbox's mark may stay behind what was emitted
    await books.save_mark((mark[0], mark[1] - 1))
    assert (await books.load_state()).watermark == (mark[0], mark[1] - 1)


async def test_a_resubmission_is_answered_from_the_record(books):
    clock = VirtualClock(START)
    core = CarrierCore(books, clock, default_profile=PROFILE)
    await core.load()
    batch = items(40, task=3)
    refused, due_rows = await core.submit(core.default, batch, ids_of(batch))
    stamp = await books.stamp()
    ranges = await books.key_ranges(3)
    clock.advance(60)
    again, due_again = await core.submit(core.default, batch[10:] + batch[:3], ids_of(batch[10:] + batch[:3]))
    assert due_again == [] and again == refused  # the refused number stays refused, nothing is decided again
    assert await books.key_ranges(3) == ranges
    # a fresh core (another process) answers the same from the books alone
    other = CarrierCore(books, clock, default_profile=PROFILE)
    await other.load()
    again, due_again = await other.submit(other.default, batch, ids_of(batch))
    assert due_again == [] and again == refused
    state = await books.stamp()
    assert state[1] == stamp[1]  # no new batch row
    assert sorted(other.due.pop_due(float("inf"), 10_000)) == sorted(due_rows)  # and its queue is A's


async def test_ground_truth_rows_and_message_lookups(books):
    clock = VirtualClock(START)
    for task, start in ((1, 0), (1, 50), (2, 0)):
        batch = items(25, task=task, start=start)
        await books.record_submission(clock, batch, ids_of(batch), decide(batch), {}, PROFILE, START, f"ws{task}")
        clock.advance(1)
    rows = await books.ground_truth_rows(1, "", 1000)
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 2 * 27
    page = await books.ground_truth_rows(1, "", 10)
    assert page == rows[:10]
    assert await books.ground_truth_rows(1, page[-1][0], 10) == rows[10:20]
    by_tenant = await books.ground_truth_rows(None, "", 1000, "ws2")
    assert {r[0].split("-")[1] for r in by_tenant} == {"2"}
    assert await books.ground_truth_rows(None, "", 1000, None) == []  # no batch of the default tenant
    wanted = [rows[3][0], rows[40][0], "sim-1-99999"]
    assert await books.message_rows("ws1", wanted) == [rows[3], rows[40]]
    assert await books.message_rows("ws2", wanted) == []
    assert await books.message_at_or_before("ws1", rows[5][0] + "~") == rows[5]
    assert await books.message_at_or_before("ws1", "sim-0") is None
    for row in rows:  # the shape: (id, number, parts, submitted_at, outcome, code, latency, rule, planned, extra)
        assert row[2] == 2 and row[3] >= START and row[9] is None and isinstance(row[8], list)


async def test_forgetting_a_tenant(books):
    clock = VirtualClock(START)
    for task, tenant in ((1, "a"), (2, "a"), (3, "b"), (4, None)):
        batch = items(5, task=task)
        await books.record_submission(clock, batch, ids_of(batch), decide(batch), {}, PROFILE, START, tenant)
    assert sorted(await books.tasks_of("a")) == [1, 2]
    assert sorted(await books.forget_tenant("a")) == [1, 2]
    assert await books.tasks_of("a") == [] and await books.ground_truth_rows(1, "", 100) == []
    assert await books.tasks_of("b") == [3] and await books.tasks_of(None) == [4]
    assert sorted(await books.forget_tenant(None)) == [4]
    assert await books.tasks_of("b") == [3] and await books.tasks_of(None) == []
    await books.save_state([("profile:a", "{}"), ("outages_anchor:a", "1.0"), ("profile", "{}")])
    await books.clear_tenant_profiles()
    assert (await books.load_state()).entries == {"profile": "{}"}


async def test_both_backends_record_the_same(tmp_path):
    """The same submissions give the same rows on SQLite and on PostgreSQL."""
    results = []
    db = await open_carrier_db(str(tmp_path / "carrier.db"))
    try:
        results.append(await _scenario(SqliteBooks(db)))
    finally:
        await db.close()
    async with fresh_database() as url:
        pg = PostgresDatabase(url)
        await pg.open()
        try:
            books = PostgresBooks(pg)
            await books.open()
            results.append(await _scenario(books))
        finally:
            await pg.close()
    assert results[0] == results[1]


async def _scenario(books) -> tuple:
    clock = VirtualClock(START)
    core = CarrierCore(books, clock, default_profile=PROFILE)
    await core.load()
    for task in (1, 2):
        batch = items(30, task=task)
        await core.submit(core.tenant(str(task)), batch, ids_of(batch))
        clock.advance(2)
    emitted = []
    await core.emit(START + 6, emitted.extend)
    truth = await core.ground_truth(task_ref=1, limit=100)
    return emitted, truth, (await books.load_state()).next_rid, await books.pending_receipts(*core.watermark)


# -- takeover on PostgreSQL ------------------------------------------------------------------------
def _planned(rows) -> list[tuple]:
    """Every receipt to emit, from sim_batches' rows: (due, receipt id, platform id, part, status, code)."""
    found = []
    for (messages,) in rows:
        for msg_id, _number, _parts, _outcome, _code, _latency, _rule, planned, *_ in json.loads(messages):
            for rid, part, status, code, due_at, _dup, swallowed in planned:
                if not swallowed:
                    found.append((due_at, rid, msg_id, part, status, code))
    return found


class Instance:
    """One ``smslab serve`` process's carrier on the shared gateway database: a pool of its own."""

    def __init__(self, url: str, clock: VirtualClock):
        self.url, self.clock = url, clock
        self.delivered: list = []

    async def start(self) -> SimulatedCarrier:
        self.db = PostgresDatabase(self.url)
        await self.db.open()

        async def deliver(platform, receipts):
            self.delivered.extend(receipts)

        self.carrier = SimulatedCarrier(PROFILE)
        await self.carrier.start(PlatformContext(clock=self.clock, database=self.db, deliver_receipts=deliver,
                                                 config=Config(), extras={}))
        return self.carrier

    def kill(self) -> None:
        """kill -9: the connections drop, nothing is stopped or flushed."""
        self.db.pool.terminate()


async def test_another_instance_takes_the_carrier_over(pg_url):
    clock = VirtualClock(START)
    a, b = Instance(pg_url, clock), Instance(pg_url, clock)
    carrier_a = await a.start()
    carrier_b = await b.start()  # a follower, loaded before A did anything
    try:
        await _check_takeover(pg_url, clock, a, b, carrier_a, carrier_b)
    finally:
        await carrier_b.stop()
        await b.db.close()


async def _check_takeover(url, clock, a, b, carrier_a, carrier_b):
    check = PostgresDatabase(url)
    await check.open()
    try:
        await carrier_a.on_leadership()
        first = items(200, task=1)
        results_a = await carrier_a.submit(first)
        clock.advance(1)
        ws = carrier_a.for_workspace(5)
        second = items(100, task=2)
        results_a2 = await ws.submit(second)
        clock.advance(4)  # the default delay is lognormal around 5 s: about half is due
        await carrier_a.on_clock(clock.now())
        emitted_by_a = list(a.delivered)
        assert 0 < len(emitted_by_a)

        batches = await check.fetchall("SELECT messages FROM sim_batches")
        planned = _planned(batches)
        assert len(emitted_by_a) < len(planned)
        (rid_before,) = await check.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'")
        (mark,) = await check.fetchone("SELECT value FROM sim_state WHERE key='emitted_until'")
        mark = tuple(json.loads(mark))
        a.kill()  # A is gone without a stop

        await carrier_b.on_leadership()  # B loaded before A's work: it must reload
        assert carrier_b.core.watermark == mark
        # A's ids resubmitted (the gateway did not record A's answers): answered from the record
        again = await carrier_b.submit(first)
        again2 = await carrier_b.for_workspace(5).submit(second)
        assert [(r.key, r.platform_id, r.error_code) for r in again] == [(r.key, r.platform_id, r.error_code) for r in results_a]
        assert [(r.key, r.platform_id, r.error_code) for r in again2] == [(r.key, r.platform_id, r.error_code)
                                                                           for r in results_a2]
        assert len(await check.fetchall("SELECT id FROM sim_batches")) == len(batches)  # no new batch rows
        assert (await check.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'"))[0] == rid_before  # no new decisions

        clock.advance(3600)
        await carrier_b.on_clock(clock.now())
        after_mark = [r for r in planned if (r[0], r[1]) > mark]
        as_receipts = Counter((pid, status, due, part, code) for due, _rid, pid, part, status, code in after_mark)
        assert Counter((r.platform_id, r.status, r.at, r.part, r.code) for r in b.delivered) == as_receipts
        everything = Counter((pid, status, due, part, code) for due, _rid, pid, part, status, code in planned)
        assert Counter((r.platform_id, r.status, r.at, r.part, r.code) for r in emitted_by_a + b.delivered) == everything

        # B goes on numbering receipts after A's
        third = items(50, task=3)
        await carrier_b.submit(third)
        rids = [r[1] for r in _planned(await check.fetchall("SELECT messages FROM sim_batches"))]
        all_rids = [rid for (messages,) in await check.fetchall("SELECT messages FROM sim_batches")
                    for m in json.loads(messages) for rid, *_ in m[7]]
        assert len(all_rids) == len(set(all_rids)) and max(rids) >= int(rid_before)
        assert min(rid for (messages,) in await check.fetchall("SELECT messages FROM sim_batches WHERE task_ref=3")
                   for m in json.loads(messages) for rid, *_ in m[7]) >= int(rid_before)
        # ground truth is whole on B, with A's emissions' times
        truth, _ = await carrier_b.ground_truth(1, None, 1000)
        assert len(truth) == len(first)
        emitted_at = [r["emitted_at"] for item in truth for r in item["receipts"] if not r["swallowed"]]
        assert all(t is not None for t in emitted_at)
    finally:
        await check.close()


async def test_first_leadership_after_start_does_not_reload_twice(pg_url):
    clock = VirtualClock(START)
    a = Instance(pg_url, clock)
    carrier = await a.start()
    try:
        await carrier.submit(items(10, task=1))
        # the carrier wrote since it loaded: the first call reloads (correctness first) ...
        await carrier.on_leadership()
        before = len(carrier.core.due)
        # ... and a reload of an unchanged database rebuilds the same queue
        await carrier.core.reload()
        assert len(carrier.core.due) == before and await carrier.core.current()
    finally:
        await carrier.stop()
        await a.db.close()
    b = Instance(pg_url, clock)
    carrier = await b.start()
    try:
        calls = []
        original = carrier.core.reload

        async def counted(*args, **kw):
            calls.append(1)
            return await original(*args, **kw)

        carrier.core.reload = counted
        await carrier.on_leadership()  # nothing changed since start: no reload
        assert calls == []
        await carrier.on_leadership()  # a later call always reloads
        assert calls == [1]
    finally:
        await carrier.stop()
        await b.db.close()


async def test_two_instances_submitting_at_once_never_share_a_receipt_id(pg_url):
    """A leader that has not noticed it lost its lease may still submit for a moment: the receipt
    counter is taken under a row lock, so the two never hand out the same receipt id."""
    clock = VirtualClock(START)
    instances = [Instance(pg_url, clock) for _ in range(2)]
    carriers = [await i.start() for i in instances]
    try:
        await asyncio.gather(*(c.submit(items(50, task=10 * n + k, start=0))
                               for n, c in enumerate(carriers) for k in range(5)))
        check = instances[0].db
        rids = [rid for (messages,) in await check.fetchall("SELECT messages FROM sim_batches")
                for m in json.loads(messages) for rid, *_ in m[7]]
        assert len(rids) == len(set(rids)) and len(rids) > 10 * 50
        (next_rid,) = await check.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'")
        assert int(next_rid) == max(rids) + 1
    finally:
        for c, i in zip(carriers, instances):
            await c.stop()
            await i.db.close()


async def test_a_message_two_instances_both_submit_is_recorded_and_decided_once(pg_url):
    """Two leaders overlapping for a moment both submit the same messages: the second one's look
    before its transaction misses the first one's record (its cache of key ranges predates it),
    and the look under the counter's lock finds it, so it is answered from that record."""
    clock = VirtualClock(START)
    one, two = Instance(pg_url, clock), Instance(pg_url, clock)
    carrier_one, carrier_two = await one.start(), await two.start()
    try:
        await carrier_two.submit(items(10, task=7, start=0))  # two caches task 7's key ranges
        again = items(10, task=7, start=100)
        first = await carrier_one.submit(again)
        rows_before = await one.db.fetchall("SELECT id, messages FROM sim_batches ORDER BY id")
        (rid_before,) = await one.db.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'")
        second = await carrier_two.submit(again)
        assert [(r.key, r.platform_id) for r in second] == [(r.key, r.platform_id) for r in first]
        assert await one.db.fetchall("SELECT id, messages FROM sim_batches ORDER BY id") == rows_before
        assert await one.db.fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'") == (rid_before,)
        ids = [m[0] for _, messages in rows_before for m in json.loads(messages)]
        assert len(ids) == len(set(ids)) == 24
    finally:
        for c, i in ((carrier_one, one), (carrier_two, two)):
            await c.stop()
            await i.db.close()


async def test_the_carriers_migrations_run_once_apart_from_the_gateways(pg_url):
    dbs = [PostgresDatabase(pg_url) for _ in range(3)]
    await asyncio.gather(*(db.open() for db in dbs))
    try:
        await asyncio.gather(*(PostgresBooks(db).open() for db in dbs))  # instances starting together
        versions = await dbs[0].fetchall(f"SELECT version FROM {MIGRATIONS_TABLE}")
        assert [v for (v,) in versions] == [1]
        gateway = {v for (v,) in await dbs[0].fetchall("SELECT version FROM schema_migrations")}
        assert 1 in gateway and len(gateway) >= 1
        assert (await dbs[0].fetchone("SELECT value FROM sim_state WHERE key='next_receipt_id'"))[0] == "1"
    finally:
        for db in dbs:
            await db.close()
