"""The receipt sink's fresh messages (gateway/storage/fresh.py): receipts for messages the
dispatcher just recorded are folded from memory instead of a SELECT, and must end exactly as the
SELECT path ends them; anything else that changes message rows makes the sink read them again."""

from __future__ import annotations

import pytest

from gateway.auth import create_token
from gateway.domain import results as R
from gateway.pipeline.dispatcher import _message_rows
from gateway.storage.fresh import FreshMessages
from gateway.storage.sqlite.messages import record_batch as _record_batch
from gateway.storage.sqlite.receipts import apply_receipts
from gateway.platform import Receipt, SubmitItem, SubmitResult
from gateway.storage.sqlite.db import Database
from gateway.web.app import create_app
from gateway.web.keys import clock_key, db_key, storage_key

from tests.conftest import Api, make_config
from tests.test_pipeline import _add_task

TIMEOUT = 72 * 3600.0


async def _recorded(path, fresh: FreshMessages | None) -> Database:
    """Two tasks (one part, two parts) on sim and one on another platform, each with a batch
    recorded by the dispatcher's own transaction; ``fresh`` hears of them as the sink would."""
    db = Database(path)
    await db.open()
    for task_id, platform, parts in ((1, "sim", 1), (2, "sim", 2), (3, "other", 1)):
        await _add_task(db, task_id, f"t{task_id}", platform, parts)
        batch = [SubmitItem(f"{task_id}-{i:010d}", task_id, f"+86138001380{i:02d}", "x", parts) for i in range(6)]
        # the other platform gives two ids that sim gave too: each receipt must reach its own platform's message
        ids = ["P1-0", "P1-1", "O2", "O3", "O4", "O5"] if task_id == 3 else [f"P{task_id}-{i}" for i in range(6)]
        rows, _ = _message_rows(task_id, parts, batch, [SubmitResult(b.key, pid) for b, pid in zip(batch, ids)])

        def remember(first_id, platform=platform, ids=ids, task_id=task_id, parts=parts):
            if fresh is not None and first_id is not None:
                fresh.add(platform, ids, first_id, task_id, 100.0, parts)

        await db.write(_record_batch, task_id, platform, parts, rows, 100.0, 5, 6, "{}", TIMEOUT, on_commit=remember)
    return db


RECEIPTS = [
    ("sim", Receipt("P1-0", "delivered", 101.0)),
    ("sim", Receipt("P1-0", "delivered", 101.5)),  # a duplicate in the same flush
    ("sim", Receipt("P1-1", "failed", 102.0, code="UNDELIV", message="no")),
    ("sim", Receipt("P1-2", "delivered", 100.0 + TIMEOUT + 1)),  # after the deadline: late
    ("sim", Receipt("P1-4", "delivered", 101.0)),
    ("sim", Receipt("P1-4", "failed", 101.1, code="X", message="after it was delivered")),
    ("other", Receipt("P1-0", "failed", 103.0, code="X", message="other's own")),  # same id, other platform
    ("sim", Receipt("P2-0", "delivered", 101.0, part=0)),
    ("sim", Receipt("P2-0", "delivered", 101.2, part=1)),
    ("sim", Receipt("P2-1", "failed", 101.0, part=1, code="EXPIRED", message="expired")),
    ("sim", Receipt("P2-2", "delivered", 101.0, part=0)),
    ("sim", Receipt("NOBODY", "delivered", 101.0)),
]
LATER = [  # a second flush: the messages touched above are read from SQLite, the rest still fresh
    ("sim", Receipt("P1-0", "delivered", 104.0)),
    ("sim", Receipt("P1-3", "delivered", 104.0)),
    ("sim", Receipt("P2-2", "delivered", 104.0, part=1)),
    ("other", Receipt("O2", "delivered", 104.0)),
    ("other", Receipt("P1-0", "failed", 104.0, code="X", message="other's own")),  # a duplicate on the other platform
    ("other", Receipt("P1-1", "delivered", 104.0)),  # sim's P1-1 was taken above; the other's is still fresh
    ("sim", Receipt("P1-1", "delivered", 104.5)),
]


async def _state(db: Database):
    messages = await db.fetchall(
        "SELECT id, task_id, platform_id, result, receipt_at, delivered_mask, failed_mask, reasons, late FROM messages ORDER BY id"
    )
    tasks = await db.fetchall(
        "SELECT id, sent, succeeded, failed, late_receipts, duplicate_receipts, last_result_at FROM tasks ORDER BY id"
    )
    return messages, tasks


async def test_receipts_for_fresh_messages_end_as_the_select_path_ends_them(tmp_path):
    fresh = FreshMessages()
    with_fresh = await _recorded(tmp_path / "fresh.db", fresh)
    without = await _recorded(tmp_path / "select.db", None)
    try:
        assert len(fresh) == 18
        # the ids the record reported are the ids SQLite gave
        stored = await with_fresh.fetchall("SELECT platform_id, id, task_id FROM messages")
        platforms = {1: "sim", 2: "sim", 3: "other"}
        for pid, mid, task_id in stored:
            assert fresh.rows[platforms[task_id]][pid][:2] == (mid, task_id)
        tallies = []
        for db, cache in ((with_fresh, fresh), (without, None)):
            first = await db.write(apply_receipts, RECEIPTS, TIMEOUT, cache)
            second = await db.write(apply_receipts, LATER, TIMEOUT, cache)
            tallies.append([(dict(t.succeeded), dict(t.failed), dict(t.late), dict(t.duplicate), len(t.unmatched))
                            for t in (first, second)])
        assert tallies[0] == tallies[1]
        assert await _state(with_fresh) == await _state(without)
        # every message a receipt named was taken; the untouched ones wait for theirs
        named = {(p, r.platform_id) for p, r in RECEIPTS + LATER}
        assert len(fresh) == 18 - len([k for k in named if k[1] != "NOBODY"])
        # and the results are the rules' results, not merely the same on both paths
        messages, tasks = await _state(with_fresh)
        by_pid = {(m[1], m[2]): m for m in messages}
        assert by_pid[(1, "P1-0")][3:6] == (R.SUCCEEDED, 101.0, 1)
        assert by_pid[(1, "P1-1")][3] == R.FAILED and "UNDELIV" in by_pid[(1, "P1-1")][7]
        assert by_pid[(1, "P1-2")][3] == R.FAILED and by_pid[(1, "P1-2")][8] == 1
        assert by_pid[(3, "P1-0")][3] == R.FAILED and "other's own" in by_pid[(3, "P1-0")][7]
        assert by_pid[(2, "P2-0")][3:6] == (R.SUCCEEDED, 101.2, 0b11)
        assert by_pid[(2, "P2-2")][3:6] == (R.SUCCEEDED, 104.0, 0b11)
        # sent, succeeded (P1-0, P1-3, P1-4), failed (P1-1, P1-2 late), late, duplicates (P1-0 twice,
        # and a second receipt for the one part of P1-1 and of P1-4, each final already)
        assert tasks[0][1:6] == (6, 3, 2, 1, 4)
        assert by_pid[(1, "P1-4")][3:8] == (R.SUCCEEDED, 101.0, 1, 0, None)
    finally:
        await with_fresh.close()
        await without.close()


@pytest.mark.parametrize("first", ["sim", "other"])
async def test_one_id_fresh_on_two_platforms_each_receipt_reaches_its_own(tmp_path, first):
    """Two SMSCs can give the same id (smslab's SMSC numbers messages across its accounts). The
    first receipt naming it is the usual one (taken from memory, no message object); the other
    platform's receipt for its own fresh message with that id used to find nothing and was kept
    aside as unmatched, its number left pending (seen from outside with 13 dialect accounts on one
    SMSC, 1,000 numbers each)."""
    fresh = FreshMessages()
    with_fresh = await _recorded(tmp_path / "fresh.db", fresh)
    without = await _recorded(tmp_path / "select.db", None)
    try:
        # P1-0 and P1-1 are fresh on both platforms: one receipt each, in both orders
        second = "other" if first == "sim" else "sim"
        flush = [(first, Receipt("P1-0", "delivered", 101.0)), (second, Receipt("P1-0", "delivered", 101.0)),
                 (second, Receipt("P1-1", "failed", 102.0, code="X", message="no")), (first, Receipt("P1-1", "delivered", 102.0))]
        tallies = []
        for db, cache in ((with_fresh, fresh), (without, None)):
            tally = await db.write(apply_receipts, flush, TIMEOUT, cache)
            tallies.append((dict(tally.succeeded), dict(tally.failed), len(tally.unmatched)))
        assert tallies[0] == tallies[1]
        assert tallies[0][2] == 0
        assert await _state(with_fresh) == await _state(without)
        messages, _tasks = await _state(with_fresh)
        by_pid = {(m[1], m[2]): m[3] for m in messages}
        other_task, sim_task = 3, 1
        task_of = {"sim": sim_task, "other": other_task}
        assert by_pid[(task_of[first], "P1-0")] == R.SUCCEEDED and by_pid[(task_of[second], "P1-0")] == R.SUCCEEDED
        assert by_pid[(task_of[second], "P1-1")] == R.FAILED and by_pid[(task_of[first], "P1-1")] == R.SUCCEEDED
    finally:
        await with_fresh.close()
        await without.close()


async def test_a_record_that_applied_overtaking_receipts_is_not_fresh(tmp_path):
    db = Database(tmp_path / "p.db")
    await db.open()
    try:
        await _add_task(db, 1, "t", "sim", 1)
        await db.execute(
            "INSERT INTO unmatched_receipts(platform, platform_id, part, status, at, received_at) VALUES ('sim', 'E0', NULL, 'delivered', 5, 5)"
        )
        batch = [SubmitItem(f"1-{i:010d}", 1, f"+86138001380{i:02d}", "x", 1) for i in range(2)]
        rows, _ = _message_rows(1, 1, batch, [SubmitResult(b.key, f"E{i}") for i, b in enumerate(batch)])
        assert await db.write(_record_batch, 1, "sim", 1, rows, 4.0, 1, 2, "{}", TIMEOUT) is None
        rows, _ = _message_rows(1, 1, batch, [SubmitResult(b.key, f"F{i}") for i, b in enumerate(batch)])
        first = await db.write(_record_batch, 1, "sim", 1, rows, 4.0, 2, 2, "{}", TIMEOUT)
        assert await db.fetchall("SELECT id FROM messages WHERE platform_id IN ('F0', 'F1') ORDER BY id") == [(first,), (first + 1,)]
    finally:
        await db.close()


@pytest.fixture
def config(tmp_path):
    # receipts wait longer than details are kept: a number can still be pending when its row is purged
    return make_config(tmp_path, receipt_timeout=400 * 3600.0)


async def test_a_receipt_for_a_purged_message_is_kept_aside_not_counted(aiohttp_client, config):
    client = await aiohttp_client(create_app(config))
    app = client.server.app
    api = Api(client, await create_token(app[storage_key], "acme", app[clock_key].now(), admin=True))
    await api.profile(outcomes={"delivered": 0, "failed": 0, "missing": 1}, moderation={"review_seconds": 0})
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    await api.advance(1)
    truth = (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"][0]
    await api.advance(170 * 3600)  # past the 168 hours of retention, before the receipt timeout
    status, _ = await api.call("GET", f"/api/v1/tasks/{task['id']}/messages")
    assert status == 410
    await api.post("/api/v1/platforms/sim/receipts", {"receipts": [{"platform_id": truth["platform_id"], "status": "delivered"}]},
                   expect=200)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (detail["sent"], detail["succeeded"], detail["failed"], detail["pending"]) == (1, 0, 0, 1)
    unmatched = await api.get("/api/v1/receipts/unmatched")
    assert [r["platform_id"] for r in unmatched["items"]] == [truth["platform_id"]]
