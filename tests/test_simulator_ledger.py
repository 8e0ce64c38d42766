"""The carrier's books: key ranges for idempotent resubmission, the due-receipt queue, its
rebuild after a restart, and the move of per-message state into per-batch rows."""

from __future__ import annotations

import json
import random
import sqlite3

from gateway.clock import VirtualClock
from gateway.config import Config
from gateway.platform import PlatformContext, SubmitItem
from gateway.storage.sqlite.db import Database
from simulator import profile as P
from simulator.carrier import SimulatedCarrier
from simulator.ledger import DueQueue, KeyRanges
from simulator.store import carrier_db_path

START = 1_714_557_600.0


def test_key_ranges_find_exactly_the_overlapping_batches():
    rnd = random.Random(7)
    for _ in range(50):
        ranges, spans = KeyRanges(), []
        for batch_id in range(rnd.randrange(1, 40)):
            a, b = sorted(f"sim-{rnd.randrange(1000):04d}" for _ in range(2))
            ranges.add(a, b, batch_id)
            spans.append((a, b, batch_id))
        for _ in range(20):
            lo, hi = sorted(f"sim-{rnd.randrange(1000):04d}" for _ in range(2))
            expected = sorted(i for a, b, i in spans if a <= hi and b >= lo)
            assert sorted(ranges.overlapping(lo, hi)) == expected


def test_key_ranges_growing_keys_never_overlap():
    ranges = KeyRanges()
    for batch in range(100):
        ranges.add(f"sim-1-{batch * 10:010d}", f"sim-1-{batch * 10 + 9:010d}", batch)
    assert ranges.overlapping("sim-1-0000001000", "sim-1-0000001009") == []
    assert ranges.overlapping("sim-1-0000000995", "sim-1-0000001009") == [99]


def test_due_queue_pops_in_due_then_id_order_up_to_now_and_limit():
    q = DueQueue()
    q.push([(5.0, 3, "c", None, "delivered", "DELIVERED"), (1.0, 9, "a", None, "delivered", "DELIVERED")])
    q.push([(1.0, 2, "b", None, "failed", "UNDELIV"), (9.0, 1, "d", None, "delivered", "DELIVERED")])
    assert [r[1] for r in q.pop_due(5.0, 2)] == [2, 9]
    assert [r[1] for r in q.pop_due(5.0, 10)] == [3]
    assert q.next_due() == 9.0 and len(q) == 1
    assert q.pop_due(8.9, 10) == []
    # all of it due but more than the limit: taken in order, and what stays is still a heap
    q.push([(float(d), i, f"m{i}", None, "delivered", "DELIVERED") for i, d in enumerate([7, 3, 8, 3, 6, 2, 9], start=10)])
    assert [r[1] for r in q.pop_due(10.0, 3)] == [15, 11, 13]
    q.push([(0.5, 99, "early", None, "delivered", "DELIVERED")])
    assert [r[1] for r in q.pop_due(10.0, 100)] == [99, 14, 10, 12, 1, 16]
    assert len(q) == 0


async def _carrier(path, clock, profile=None, gateway_db=None):
    db = gateway_db or Database(path)
    if gateway_db is None:
        await db.open()
    delivered = []

    async def deliver(platform, receipts):
        delivered.extend(receipts)

    extras = {"sim_profile": profile} if profile is not None else {}
    carrier = SimulatedCarrier()
    await carrier.start(PlatformContext(clock=clock, database=db, deliver_receipts=deliver, config=Config(), extras=extras))
    return carrier, db, delivered


def _items(n, task=1, start=0):
    return [SubmitItem(key=f"{task}-{i:010d}", task_id=task, number=f"+86138{i:08d}", text="hi", parts=1)
            for i in range(start, start + n)]


async def test_a_restarted_carrier_emits_what_was_still_due_exactly_once(tmp_path):
    clock = VirtualClock(START)
    profile = P.merge(P.Profile(), {"outcomes": {"delivered": 1, "failed": 0, "missing": 0},
                                    "receipt_delay": {"kind": "uniform", "low": 10, "high": 100}, "duplicate_rate": 0.2})
    carrier, db, delivered = await _carrier(tmp_path / "g.db", clock, profile)
    await carrier.submit(_items(300))
    clock.advance(50)
    await carrier.on_clock(clock.now())
    first = list(delivered)
    assert 0 < len(first) < 300
    await carrier.stop()
    await db.close()

    again, db, delivered = await _carrier(tmp_path / "g.db", clock)
    assert again.describe()["receipts_queued"] > 0
    clock.advance(300)  # past every receipt: the last duplicates are due up to 200 s after submission
    await again.on_clock(clock.now())
    both = first + delivered
    ids = [(r.platform_id, r.at) for r in both]
    assert len(ids) == len(set(ids))  # nothing emitted twice, duplicates are their own receipts
    truth, _ = await again.ground_truth(1, None, 1000)
    planned = sum(len(m["receipts"]) for m in truth)
    assert len(both) == planned and all(r["emitted_at"] for m in truth for r in m["receipts"])
    # the emission order is exactly (due time, receipt id), across the restart
    assert [r.at for r in both] == sorted(r.at for r in both)
    # resubmitting the same keys after the restart sends nothing twice
    await again.submit(_items(300))
    assert len((await again.ground_truth(1, None, 1000))[0]) == 300
    await again.stop()
    await db.close()


async def test_resubmission_is_found_among_overlapping_batches(tmp_path):
    clock = VirtualClock(START)
    carrier, db, _ = await _carrier(tmp_path / "g.db", clock)
    items = _items(50)
    random.Random(3).shuffle(items)
    for k in range(0, 50, 7):  # shuffled keys: every batch's range overlaps the others
        await carrier.submit(items[k:k + 7])
    await carrier.submit(_items(60))  # 50 known, 10 new
    truth, _ = await carrier.ground_truth(1, None, 1000)
    assert len(truth) == 60 and len({m["platform_id"] for m in truth}) == 60
    page, cursor = await carrier.ground_truth(1, None, 25)
    rest, end = await carrier.ground_truth(1, cursor, 1000)
    assert [m["platform_id"] for m in page + rest] == sorted(m["platform_id"] for m in truth) and end is None
    await carrier.stop()
    await db.close()


def _old_layout(path):
    """A gateway file as versions before the carrier's own file left it: per-message rows."""
    conn = sqlite3.connect(path)
    plan_a = json.dumps([[1, None, "delivered", "DELIVERED", START + 5.123456789, 0, 0]])
    plan_b = json.dumps([[2, None, "failed", "UNDELIV", START + 99.5, 0, 0], [3, None, "failed", "UNDELIV", START + 120.25, 1, 0]])
    conn.executemany(
        "INSERT INTO sim_messages(task_ref, msg_id, number, parts, submitted_at, outcome, code, latency, rule, plan)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(7, "sim-7-a", "+8613800000001", 1, START, "delivered", "DELIVERED", 0.25, None, plan_a),
         (7, "sim-7-b", "+8613800000002", 1, START, "failed", "UNDELIV", 0.0, None, plan_b)],
    )
    conn.executemany("INSERT INTO sim_queue(due_at, id, msg_id, part, status, code) VALUES (?,?,?,?,?,?)",
                     [(START + 99.5, 2, "sim-7-b", None, "failed", "UNDELIV"), (START + 120.25, 3, "sim-7-b", None, "failed", "UNDELIV")])
    conn.execute("INSERT OR REPLACE INTO sim_state(key, value) VALUES ('next_receipt_id', '4')")
    conn.execute("INSERT OR REPLACE INTO sim_state(key, value) VALUES ('emitted_until', ?)", (json.dumps([START + 5.123456789, 1]),))
    conn.execute("INSERT INTO sim_emissions(up_to_due, up_to_id, emitted_at) VALUES (?, 1, ?)", (START + 5.123456789, START + 6))
    conn.commit()
    conn.close()


async def test_state_left_in_the_gateways_file_moves_to_the_carriers(tmp_path):
    path = tmp_path / "old.db"
    gateway = Database(path)
    await gateway.open()  # the gateway's migrations still create the old sim_* tables
    _old_layout(path)
    clock = VirtualClock(START + 10)
    carrier, db, delivered = await _carrier(path, clock, gateway_db=gateway)
    assert await gateway.fetchone("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'sim_%'") == (0,)
    truth, _ = await carrier.ground_truth(7, None, 10)
    assert [m["platform_id"] for m in truth] == ["sim-7-a", "sim-7-b"]
    assert truth[0]["submit_latency"] == 0.25 and truth[0]["receipts"][0]["due_at"] == START + 5.123456789
    assert truth[0]["receipts"][0]["emitted_at"] is not None and truth[1]["expected_result"] == "failed"
    clock.advance(200)
    await carrier.on_clock(clock.now())
    assert [(r.platform_id, r.at) for r in delivered] == [("sim-7-b", START + 99.5), ("sim-7-b", START + 120.25)]
    await carrier.submit([SubmitItem(key="7-b", task_id=7, number="+8613800000002", text="hi", parts=1)])
    assert len((await carrier.ground_truth(7, None, 10))[0]) == 2  # known from the adopted record
    await carrier.stop()
    await gateway.close()
    assert sqlite3.connect(carrier_db_path(str(path))).execute("SELECT COUNT(*) FROM sim_batches").fetchone() == (2,)
