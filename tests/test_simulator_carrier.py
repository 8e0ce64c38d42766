"""The SimulatedCarrier object on a real SQLite database, without the web layer: concurrency and
batching do not change decisions, idempotent resubmission, throttling, outages, restart, reset."""

from __future__ import annotations

import json

import asyncio
import random

import pytest

from gateway.clock import VirtualClock
from gateway.config import Config
from gateway.platform import PlatformContext, PlatformError, SubmitItem, Throttled
from gateway.storage.sqlite.db import Database
from simulator import profile as P
from simulator.carrier import SimulatedCarrier

START = 1_714_557_600.0


class Harness:
    def __init__(self, tmp_path, name: str, clock: VirtualClock | None = None):
        self.path = tmp_path / f"{name}.db"
        self.clock = clock or VirtualClock(START)
        self.delivered: list = []

    async def start(self, profile: P.Profile | None = None, monotonic=None) -> SimulatedCarrier:
        self.db = Database(self.path)
        await self.db.open()

        async def deliver(platform, receipts):
            self.delivered.extend(receipts)

        extras = {"sim_profile": profile} if profile is not None else {}
        ctx = PlatformContext(clock=self.clock, database=self.db, deliver_receipts=deliver, config=Config(), extras=extras)
        carrier = SimulatedCarrier(monotonic=monotonic) if monotonic else SimulatedCarrier()
        await carrier.start(ctx)
        self.carrier = carrier
        return carrier

    async def close(self) -> None:
        await self.carrier.stop()
        await self.db.close()

    async def decisions(self) -> dict:
        """Everything the carrier recorded, independent of how submissions were batched."""
        msgs, recs = [], []
        for submitted_at, messages in await self.carrier.db.fetchall("SELECT submitted_at, messages FROM sim_batches"):
            for _id, number, parts, outcome, code, latency, rule, plan in json.loads(messages):
                msgs.append((number, parts, submitted_at, outcome, code, latency, rule))
                recs.extend((number, part, status, code, due_at, dup, swallowed)
                            for _rid, part, status, code, due_at, dup, swallowed in plan)
        return {"messages": sorted(msgs), "receipts": sorted(recs, key=repr)}


def items(n: int, task: int = 1, parts: int = 2) -> list[SubmitItem]:
    nums = [f"+86138{i:08d}" for i in range(n)] + ["+15005550001", "+15005550010"]
    return [SubmitItem(key=f"{task}-{i}", task_id=task, number=num, text="hi", parts=parts) for i, num in enumerate(nums)]


PROFILE = P.merge(P.Profile(), {
    "seed": 3, "duplicate_rate": 0.3, "reorder": True, "submit_latency": {"kind": "lognormal", "median": 1, "sigma": 0.5},
    "outcomes": {"delivered": 0.6, "failed": 0.3, "missing": 0.1}, "outages": [{"start": 10, "end": 20, "kind": "receipts"}],
})


async def test_batching_order_and_concurrency_do_not_change_decisions(tmp_path):
    one = Harness(tmp_path, "one")
    carrier = await one.start(PROFILE)
    all_items = items(300)
    results = await carrier.submit(all_items)
    expected = await one.decisions()

    many = Harness(tmp_path, "many")
    carrier2 = await many.start(PROFILE)
    shuffled = all_items[:]
    random.Random(1).shuffle(shuffled)
    batches = [shuffled[i : i + 13] for i in range(0, len(shuffled), 13)]
    answers = await asyncio.gather(*(carrier2.submit(b) for b in batches))  # concurrent submissions
    assert await many.decisions() == expected
    by_key = {r.key: r for batch in answers for r in batch}
    assert {r.key: r for r in results} == by_key
    refused = by_key["1-300"]
    assert refused.platform_id is None and refused.error_code == "21211" and "invalid" in refused.error_message
    await one.close()
    await many.close()


async def test_resubmission_is_idempotent_even_after_a_profile_change(tmp_path):
    h = Harness(tmp_path, "idem")
    carrier = await h.start(PROFILE)
    first = await carrier.submit(items(20))
    before = await h.decisions()
    await carrier.set_profile(P.merge(PROFILE, {"seed": 99, "number_rules": []}))
    again = await carrier.submit(items(20))
    assert again == first and await h.decisions() == before  # refused stays refused, nothing sent twice
    await h.close()


async def test_throttling_refuses_whole_batches_and_says_when_to_come_back(tmp_path):
    h = Harness(tmp_path, "thr")
    t = [100.0]
    carrier = await h.start(P.merge(P.Profile(), {"throughput_limit": 40}), monotonic=lambda: t[0])
    batch = items(30)  # 32 numbers
    await carrier.submit(batch[:16])
    await carrier.submit(batch[16:32])
    with pytest.raises(Throttled) as exc:
        await carrier.submit(items(10, task=2))
    assert exc.value.retryable and exc.value.retry_after == pytest.approx(1.0)
    assert await h.carrier.db.fetchone("SELECT COUNT(*) FROM sim_batches WHERE task_ref=2") == (0,)  # nothing half-taken
    t[0] += 1.0
    assert len(await carrier.submit(items(10, task=2))) == 12
    # a batch alone above the limit goes through once the window is empty
    t[0] += 1.0
    assert len(await carrier.submit(items(100, task=3))) == 102
    assert carrier.describe()["throttled_batches"] == 1
    await h.close()


async def test_submit_outage_and_restart_keep_the_windows(tmp_path):
    h = Harness(tmp_path, "out")
    carrier = await h.start(P.merge(P.Profile(), {"outages": [{"start": 0, "end": 60, "kind": "submit"}]}))
    assert carrier.outages_anchor == START
    with pytest.raises(PlatformError) as exc:
        await carrier.submit(items(3))
    assert exc.value.retryable and not isinstance(exc.value, Throttled) and "2024-05-01T10:01:00" in str(exc.value)
    h.clock.advance(30)
    await carrier.set_profile(P.merge(carrier.profile, {"duplicate_rate": 0.5}))  # outages unchanged: same anchor
    assert carrier.outages_anchor == START
    await h.close()
    # a restarted service finds the same profile and the same windows
    restarted = await h.start()
    assert restarted.profile.duplicate_rate == 0.5 and restarted.outages_anchor == START
    with pytest.raises(PlatformError):
        await restarted.submit(items(3))
    h.clock.advance(30)
    assert len(await restarted.submit(items(3))) == 5
    # changing the outages list starts its relative windows anew
    await restarted.set_profile(P.merge(restarted.profile, {"outages": [{"start": 5, "end": 6, "kind": "submit"}]}))
    assert restarted.outages_anchor == START + 60
    await h.close()


async def test_emission_records_emit_times_and_skips_swallowed_receipts(tmp_path):
    h = Harness(tmp_path, "emit")
    profile = P.merge(P.Profile(), {"outcomes": {"delivered": 1, "failed": 0, "missing": 0},
                                    "receipt_delay": {"kind": "fixed", "seconds": 5},
                                    "outages": [{"start": 0, "end": 4, "kind": "receipts"}]})
    carrier = await h.start(profile)
    await carrier.submit(items(10, parts=1)[:10])  # due at +5 s: after the outage
    await carrier.set_profile(P.merge(profile, {"outages": [{"start": 0, "end": 10, "kind": "receipts"}]}))
    await carrier.submit(items(10, task=2, parts=1)[:10])  # due at +5 s: inside the new window
    h.clock.advance(7)
    await carrier.on_clock(h.clock.now())
    assert len(h.delivered) == 10 and {r.platform_id.split("-")[1] for r in h.delivered} == {"1"}
    truth, _ = await carrier.ground_truth(1, None, 100)
    assert all(r["emitted_at"] == "2024-05-01T10:00:07.000Z" and not r["swallowed"] for m in truth for r in m["receipts"])
    truth2, _ = await carrier.ground_truth(2, None, 100)
    assert all(r["swallowed"] and r["emitted_at"] is None for m in truth2 for r in m["receipts"])
    assert {m["expected_result"] for m in truth2} == {"receipt_timeout"}
    # paging
    page, cursor = await carrier.ground_truth(1, None, 4)
    assert len(page) == 4 and cursor
    rest, end = await carrier.ground_truth(1, cursor, 100)
    assert len(rest) == 6 and end is None
    # reset: a fresh carrier, same profile
    await carrier.reset()
    assert await carrier.ground_truth(1, None, 100) == ([], None)
    assert carrier.profile.outages[0].end == 10 and carrier.outages_anchor == h.clock.now()
    h.clock.advance(100)
    await carrier.on_clock(h.clock.now())
    assert len(h.delivered) == 10
    await h.close()


def test_the_carriers_own_file_when_the_gateway_has_none(tmp_path, monkeypatch):
    """Next to the gateway's SQLite file; a PostgreSQL gateway's carrier keeps its books in the
    gateway's database (None), whatever $SMSLAB_SIM_DB says, unless extras name a file; a
    database that is neither (a stand-in): extras, then $SMSLAB_SIM_DB, then the current
    directory. Older data is only adopted from a SQLite file."""
    from gateway.storage.postgres.db import Database as PostgresDatabase
    from simulator.carrier import sim_db_target
    from simulator.store import carrier_db_path

    class PostgresLike:
        url = "postgresql://me@db.example/smslab"

    def ctx(database, **extras):
        return PlatformContext(clock=VirtualClock(START), database=database, deliver_receipts=None, config=Config(),
                               extras=extras)

    monkeypatch.delenv("SMSLAB_SIM_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert sim_db_target(ctx(Database(tmp_path / "g.db"))) == carrier_db_path(str(tmp_path / "g.db"))
    assert sim_db_target(ctx(PostgresLike())) == "smslab-carrier.db"
    monkeypatch.setenv("SMSLAB_SIM_DB", str(tmp_path / "env.db"))
    assert sim_db_target(ctx(PostgresLike())) == str(tmp_path / "env.db")
    assert sim_db_target(ctx(PostgresLike(), sim_db=str(tmp_path / "given.db"))) == str(tmp_path / "given.db")
    pg = PostgresDatabase("postgresql://me@db.example/smslab")
    assert sim_db_target(ctx(pg)) is None
    assert sim_db_target(ctx(pg, sim_db=str(tmp_path / "given.db"))) == str(tmp_path / "given.db")


async def test_a_carrier_starts_beside_a_gateway_without_a_file(tmp_path, monkeypatch):
    class PostgresLike:
        url = "postgresql://me@db.example/smslab"

    monkeypatch.setenv("SMSLAB_SIM_DB", str(tmp_path / "carrier.db"))
    carrier = SimulatedCarrier()
    await carrier.start(PlatformContext(clock=VirtualClock(START), database=PostgresLike(), deliver_receipts=None,
                                        config=Config()))
    try:
        assert (tmp_path / "carrier.db").is_file()
    finally:
        await carrier.stop()
