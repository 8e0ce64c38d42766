"""The pipeline's storage areas (messages and receipts, lifecycle, service state), run the same on
both backends: every test takes ``storage``, once a SQLite file and once a fresh PostgreSQL
database, and asserts the same values on each. Plus, on PostgreSQL only, two instances applying
the same receipts at once.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway.domain import receipt_fold as F
from gateway.domain import results as R
from gateway.platform import Receipt
from gateway.storage import open_storage
from gateway.storage.errors import StaleBatch
from gateway.storage.lifecycle import TaskToSend, Upcoming
from gateway.storage.messages import BatchRecord, Member
from tests.pg_support import fresh_database
from tests.test_storage_areas import OTHER, WS, fields, sql, storage  # noqa: F401  (the fixture)

TIMEOUT = 100.0
SIM = "sim"


async def sending_task(storage, name: str = "spring", workspace: int = WS, started: float = 10.0) -> int:
    task_id = await storage.tasks.create(workspace, fields(name), 1.0)
    await sql(storage, "UPDATE tasks SET status='sending', dispatch_started_at=? WHERE id=?", (started, task_id))
    return task_id


def batch(task_id: int, pids: list[str], at: float, parts: int = 1, cursor: int = 0) -> BatchRecord:
    rows = [(task_id, f"+1555{i:07d}", parts, pid) for i, pid in enumerate(pids)]
    return BatchRecord(task_id, SIM, parts, rows, at, cursor or len(rows), len(rows), '{"invalid":1}', TIMEOUT)


def receipt(pid: str, at: float, status: str = "delivered", part: int | None = None, code: str | None = None,
            text: str | None = None) -> tuple[str, Receipt]:
    return SIM, Receipt(platform_id=pid, status=status, at=at, part=part, code=code, message=text)


async def message_rows(storage) -> list[tuple]:
    return await sql(storage, "SELECT platform_id, result, delivered_mask, failed_mask, reasons, late, receipt_at, parts"
                              " FROM messages ORDER BY id")


async def counters(storage, task_id: int) -> tuple:
    (row,) = await sql(storage, "SELECT sent, succeeded, failed, segments, late_receipts, duplicate_receipts,"
                                " last_result_at, cursor, accepted, skipped FROM tasks WHERE id=?", (task_id,))
    return row


async def group_by(storage) -> list[tuple]:
    """What the rows add up to per task: sent, succeeded, failed."""
    return await sql(storage, "SELECT task_id, COUNT(*), SUM(CASE WHEN result=1 THEN 1 ELSE 0 END),"
                              " SUM(CASE WHEN result=2 THEN 1 ELSE 0 END) FROM messages GROUP BY task_id ORDER BY task_id")


# -- messages ----------------------------------------------------------------------------------
async def test_members_and_record_batch(storage):
    aid = await storage.audiences.begin(WS, "list", "upload", None, 1.0)
    await storage.audiences.add_entries([(aid, 1, "a", "+15550000001", 0), (aid, 2, "", None, 1),
                                         (aid, 3, "c", "+15550000003", 0), (aid, 4, "d", "+15550000004", 0)])
    await storage.audiences.complete(aid, 4)
    assert await storage.messages.read_members(aid, 0, 2) == [Member(1, "+15550000001", 0), Member(2, None, 1)]
    assert await storage.messages.read_members(aid, 2, 10) == [Member(3, "+15550000003", 0), Member(4, "+15550000004", 0)]
    assert await storage.messages.read_members(aid, 4, 10) == []

    task_id = await sending_task(storage)
    await storage.messages.record_batch(batch(task_id, ["p1", "p2", "p3"], 20.5, parts=2), None)
    await storage.messages.record_batch(batch(task_id, [], 21.0, cursor=7), None)
    assert await counters(storage, task_id) == (3, 0, 0, 6, 0, 0, None, 7, 0, '{"invalid":1}')
    assert await message_rows(storage) == [(p, 0, 0, 0, None, 0, None, 2) for p in ("p1", "p2", "p3")]
    assert await sql(storage, "SELECT submitted_at, number FROM messages WHERE platform_id='p2'") == [(20.5, "+15550000001")]


async def test_a_batch_recorded_already_is_refused_whole(storage):
    """Two dispatchers of one task (a leader that lost its lease and the one that took over)
    record the same batch: the second record is refused with nothing written, so no number is
    counted twice."""
    task_id = await sending_task(storage)
    await storage.messages.record_batch(batch(task_id, ["p1", "p2"], 20.0, cursor=2), None)
    before = (await counters(storage, task_id), await message_rows(storage))
    for cursor in (2, 1):  # the same batch again, and one from before it
        with pytest.raises(StaleBatch) as refused:
            await storage.messages.record_batch(batch(task_id, ["p1", "p2"], 21.0, cursor=cursor), None)
        assert (refused.value.task_id, refused.value.cursor) == (task_id, cursor)
    assert (await counters(storage, task_id), await message_rows(storage)) == before
    await storage.messages.record_batch(batch(task_id, ["p3"], 22.0, cursor=3), None)
    assert (await counters(storage, task_id))[0] == 3 and await group_by(storage) == [(task_id, 3, 0, 0)]


async def test_receipts_fold_on_both_backends(storage):
    task_id = await sending_task(storage)
    await storage.messages.record_batch(batch(task_id, ["a", "b", "c", "d"], 100.0), None)
    await storage.messages.record_batch(batch(task_id, ["m"], 100.0, parts=2, cursor=5), None)
    deadline = F.receipt_deadline(100.0, TIMEOUT)
    items = [
        receipt("a", 150.0),  # delivered in time
        receipt("b", 151.0, "failed", code="E7", text="absent"),
        receipt("a", 152.0),  # again: a duplicate
        receipt("c", deadline),  # at the deadline itself: in time
        receipt("d", math.nextafter(deadline, math.inf)),  # just past it: timed out, late
        receipt("m", 160.0, part=0),
        receipt("m", 161.0, part=1),  # the second part makes it final
        receipt("zz", 162.0),  # unknown: kept as unmatched
        receipt("held", 163.0),  # being recorded: held back
    ]
    tally = await storage.messages.apply_receipts(items, TIMEOUT, 500.0, {SIM: {"held"}}, None, None)
    assert dict(tally.succeeded) == {task_id: 3} and dict(tally.failed) == {task_id: 2}
    assert dict(tally.late) == {task_id: 1} and dict(tally.duplicate) == {task_id: 1}
    assert tally.applied == 5 and tally.held == [8] and tally.unmatched_at == [7]
    assert [(p, r.platform_id) for p, r in tally.unmatched] == [(SIM, "zz")] and tally.unmatched_ws == [None]
    assert tally.last_final == {task_id: deadline}  # d failed at its deadline, after m
    timed_out = F.timed_out_state()[2]
    assert await message_rows(storage) == [
        ("a", 1, 1, 0, None, 0, 150.0, 1),
        ("b", 2, 0, 1, '[["E7","absent"]]', 0, 151.0, 1),
        ("c", 1, 1, 0, None, 0, deadline, 1),
        ("d", 2, 0, 0, timed_out, 1, None, 1),
        ("m", 1, 3, 0, None, 0, 161.0, 2),
    ]
    assert await counters(storage, task_id) == (5, 3, 2, 6, 1, 1, deadline, 5, 1, '{"invalid":1}')
    assert await sql(storage, "SELECT platform, platform_id, status, at, received_at, matched, workspace_id"
                              " FROM unmatched_receipts") == [(SIM, "zz", "delivered", 162.0, 500.0, 0, None)]

    # later receipts of a number that timed out are only counted late; the held one, once
    # recorded, is applied
    await storage.messages.apply_receipts([receipt("d", 170.0)], TIMEOUT, 501.0, {}, None, None)
    await storage.messages.record_batch(batch(task_id, ["held"], 120.0, cursor=6), None)
    assert (await counters(storage, task_id))[:6] == (6, 3, 2, 7, 2, 1)
    tally = await storage.messages.apply_receipts([receipt("held", 163.0)], TIMEOUT, 502.0, {}, None, None)
    assert dict(tally.succeeded) == {task_id: 1}
    assert await group_by(storage) == [(task_id, 6, 4, 2)]


async def test_scoped_receipts_reach_only_their_workspace(storage):
    mine = await sending_task(storage)
    theirs = await sending_task(storage, "other", workspace=OTHER)
    await storage.messages.record_batch(batch(mine, ["x1"], 100.0), None)
    await storage.messages.record_batch(batch(theirs, ["y1"], 100.0), None)
    scoped = {OTHER: [receipt("x1", 110.0), receipt("y1", 111.0)]}
    tally = await storage.messages.apply_receipts([receipt("y1", 109.0, "failed", code="E")], TIMEOUT, 200.0, {}, None, scoped)
    # the unscoped receipt failed y1; the scoped one for y1 is a duplicate; x1 is another workspace's
    assert dict(tally.failed) == {theirs: 1} and dict(tally.duplicate) == {theirs: 1}
    assert tally.unmatched_at == [1] and tally.unmatched_ws == [OTHER]
    assert await sql(storage, "SELECT platform_id, workspace_id FROM unmatched_receipts") == [("x1", OTHER)]
    assert [r[:2] for r in await message_rows(storage)] == [("x1", 0), ("y1", 2)]


async def test_receipts_that_overtook_their_acknowledgement(storage):
    task_id = await sending_task(storage)
    theirs = await sending_task(storage, "theirs", workspace=OTHER)
    items = [receipt("e1", 101.0), receipt("e2", 102.0, "failed", code="X"), receipt("e1", 103.0)]
    await storage.messages.apply_receipts(items, TIMEOUT, 104.0, {}, None, None)
    await storage.messages.apply_receipts([], TIMEOUT, 104.0, {}, None, {OTHER: [receipt("e3", 105.0)]})
    await storage.messages.record_batch(batch(task_id, ["e1", "e2", "e3", "e4"], 100.0), None)
    assert await counters(storage, task_id) == (4, 1, 1, 4, 0, 1, 102.0, 4, 4, '{"invalid":1}')
    assert await sql(storage, "SELECT platform_id, matched FROM unmatched_receipts ORDER BY id") == [
        ("e1", 1), ("e2", 1), ("e1", 1), ("e3", 0)]  # e3 was posted by another workspace
    assert [r[:2] for r in await message_rows(storage)] == [("e1", 1), ("e2", 2), ("e3", 0), ("e4", 0)]
    assert theirs


async def test_one_flush_reaching_a_message_twice_folds_it_once(storage):
    """A flush whose receipts reach one message both from its platform and with the workspace's
    token: the second receipt is folded on top of the first (a duplicate), not on the row as it
    stood before the flush (which would count the number succeeded twice)."""
    task_id = await sending_task(storage)
    await storage.messages.record_batch(batch(task_id, ["w1", "w2"], 100.0), None)
    tally = await storage.messages.apply_receipts(
        [receipt("w1", 101.0), receipt("w2", 101.5, "failed", code="X")], TIMEOUT, 102.0, {}, None,
        {WS: [receipt("w1", 103.0), receipt("w2", 104.0, "failed", code="X")]})
    assert (dict(tally.succeeded), dict(tally.failed), dict(tally.duplicate)) == ({task_id: 1}, {task_id: 1}, {task_id: 2})
    assert await counters(storage, task_id) == (2, 1, 1, 2, 0, 2, 101.5, 2, 2, '{"invalid":1}')
    assert await group_by(storage) == [(task_id, 2, 1, 1)]


async def test_sweep_at_the_deadline_and_purge(storage):
    task_id = await sending_task(storage, started=100.0)
    await storage.messages.record_batch(batch(task_id, ["s1", "s2"], 100.0), None)
    await storage.messages.record_batch(batch(task_id, ["s3"], 130.0, cursor=3), None)
    await storage.messages.apply_receipts([receipt("s1", 120.0)], TIMEOUT, 120.0, {}, None, None)
    deadline = F.receipt_deadline(100.0, TIMEOUT)
    reasons = F.timed_out_state()[2]
    before = F.submitted_before(deadline, TIMEOUT)  # the deadline itself: nothing has timed out
    assert await storage.messages.tasks_to_sweep(before) == []
    assert await storage.messages.sweep_timeouts(task_id, before, reasons, deadline, None) == 0
    now = math.nextafter(deadline, math.inf)
    before = F.submitted_before(now, TIMEOUT)
    assert await storage.messages.tasks_to_sweep(before) == [task_id]
    assert await storage.messages.sweep_timeouts(task_id, before, reasons, now, None) == 1
    assert await storage.messages.sweep_timeouts(task_id, before, reasons, now, None) == 0
    assert (await counters(storage, task_id))[:7] == (3, 1, 1, 3, 0, 0, now)
    assert [r[:6] for r in await message_rows(storage)] == [
        ("s1", 1, 1, 0, None, 0), ("s2", 2, 0, 0, reasons, 1), ("s3", 0, 0, 0, None, 0)]
    # a receipt for the swept number counts late
    tally = await storage.messages.apply_receipts([receipt("s2", 150.0)], TIMEOUT, now, {}, None, None)
    assert dict(tally.late) == {task_id: 1} and not tally.failed

    assert await storage.messages.tasks_to_purge(1000.0) == []
    await storage.lifecycle.dispatch_done(task_id, 140.0, 900.0)
    assert await storage.messages.tasks_to_purge(899.0) == []
    assert await storage.messages.tasks_to_purge(900.0) == [task_id]
    assert await storage.messages.purge(task_id, 2, None) is False
    assert await storage.messages.purge(task_id, 2, None) is True
    assert await message_rows(storage) == [] and await storage.messages.tasks_to_purge(1000.0) == []
    assert await storage.messages.tasks_to_sweep(1e12) == []  # details purged: nothing to sweep


# -- lifecycle ---------------------------------------------------------------------------------
async def test_lifecycle_transitions_and_due_work(storage):
    life = storage.lifecycle
    first = await storage.tasks.create(WS, fields("a"), 1.0)  # moderating, due at 100.5
    second = await storage.tasks.create(WS, fields("b", send_type="timed", send_at=300.0, moderation_due_at=50.0), 2.0)
    assert [t.id for t in await life.due_for_moderation(100.5)] == [second, first]
    due = (await life.due_for_moderation(60.0))[0]
    assert (due.id, due.name, due.send_at, due.updated_at, due.workspace_id) == (second, "b", 300.0, 2.0, WS)
    assert await life.upcoming(0.0, 0.0) == Upcoming(50.0, None, None)

    assert not await life.transition(second, "moderating", "scheduled", None, 60.0, unchanged_since=1.5)  # edited since
    assert await life.transition(second, "moderating", "scheduled", None, 60.0, unchanged_since=2.0)
    assert not await life.transition(second, "moderating", "scheduled", None, 61.0)  # no longer moderating
    assert await life.transition(first, "moderating", "scheduled", None, 101.0)
    await sql(storage, "UPDATE tasks SET send_type='immediate' WHERE id=?", (first,))
    assert await life.due_to_start(200.0) == [first] and await life.due_to_start(300.0) == [first, second]
    assert await life.upcoming(100.0, 0.0) == Upcoming(300.0, None, None)

    aid = await storage.audiences.begin(WS, "list", "upload", None, 1.0)
    await storage.audiences.add_entries([(aid, 1, "a", "+15550000001", 0), (aid, 2, "b", "+15550000002", 0)])
    await storage.audiences.complete(aid, 2)
    empty = await storage.audiences.begin(WS, "none", "upload", None, 1.0)
    await storage.audiences.complete(empty, 0)
    assert await life.transition(first, "scheduled", "sending", None, 200.0)
    assert await life.start_dispatch(first, 999, 200.0) == "deleted"
    assert await life.start_dispatch(first, empty, 200.0) == "empty"
    assert await life.start_dispatch(first, aid, 200.0) is None
    assert await life.sending_undispatched() == [first]
    sending = await life.task_to_send(first)
    assert isinstance(sending, TaskToSend) and (sending.platform, sending.dispatch_started_at, sending.cursor) == ("sim", 200.0, -1)
    assert await life.task_to_send(second) is None
    assert await life.upcoming(100.0, 150.0) == Upcoming(300.0, 200.0, None)

    await storage.messages.record_batch(batch(first, ["l1", "l2"], 200.0), None)
    assert await life.sent_and_skipped(first) == (2, '{"invalid":1}')
    await life.dispatch_done(first, 210.0, 5000.0)
    assert await life.sending_undispatched() == [] and await life.finished_sending() == []
    assert await life.upcoming(100.0, 205.0) == Upcoming(300.0, None, 210.0)
    await storage.messages.apply_receipts([receipt("l1", 220.0), receipt("l2", 230.0)], TIMEOUT, 240.0, {}, None, None)
    assert await life.finished_sending() == [first]
    # completed at its last result, not at the (later) step that saw it
    assert await life.transition(first, "sending", "completed", None, 400.0, finished=True)
    assert await sql(storage, "SELECT status, completed_at, updated_at FROM tasks WHERE id=?", (first,)) == [
        ("completed", 230.0, 400.0)]
    assert await life.transition(second, "scheduled", "failed", "no", 401.0, finished=True)
    assert await sql(storage, "SELECT status, status_reason, completed_at FROM tasks WHERE id=?", (second,)) == [
        ("failed", "no", 401.0)]
    assert await life.upcoming(500.0, 0.0) == Upcoming(5000.0, None, None)


async def test_virtual_now_saved_and_resumed(storage):
    assert await storage.state.virtual_now() is None
    await storage.state.save_virtual_now(1234.5)
    await storage.state.save_virtual_now(0.1 + 0.2)
    assert await storage.state.virtual_now() == 0.1 + 0.2


# -- several instances on one PostgreSQL database ----------------------------------------------
async def test_two_instances_apply_the_same_receipts_once():
    async with fresh_database() as url:
        one, two = open_storage(url), open_storage(url)
        await one.open()
        await two.open()
        try:
            tasks = [await sending_task(one, f"t{i}") for i in range(3)]
            pids = {t: [f"c-{t}-{i}" for i in range(600)] for t in tasks}
            for t in tasks:
                for start in range(0, 600, 200):
                    await one.messages.record_batch(batch(t, pids[t][start:start + 200], 100.0, cursor=start + 200), None)
            receipts = [receipt(pid, 150.0 + i % 7, "failed" if i % 5 == 0 else "delivered", code="E")
                        for t in tasks for i, pid in enumerate(pids[t])]
            # each instance flushes the same receipts in its own order, several flushes at once
            flushes_one = [receipts[i:i + 250] for i in range(0, len(receipts), 250)]
            flushes_two = [receipts[::-1][i:i + 300] for i in range(0, len(receipts), 300)]
            tallies = await asyncio.gather(
                *(one.messages.apply_receipts(f, TIMEOUT, 200.0, {}, None, None) for f in flushes_one),
                *(two.messages.apply_receipts(f, TIMEOUT, 200.0, {}, None, None) for f in flushes_two))
            assert sum(t.applied for t in tallies) == len(receipts)
            assert sum(sum(t.duplicate.values()) for t in tallies) == len(receipts)
            for t in tasks:
                sent, succeeded, failed, _, late, duplicates, *_ = await counters(one, t)
                assert (sent, succeeded, failed, late, duplicates) == (600, 480, 120, 0, 600)
            assert await group_by(one) == [(t, 600, 480, 120) for t in tasks]
            assert (await one.check.count_mismatches()).ok
        finally:
            await one.close()
            await two.close()


async def test_a_receipt_racing_the_record_of_its_batch_is_never_left_unmatched():
    """A flush and the record of the batch it names, on two instances at once: whichever commits
    first, the receipt ends applied (the flush finds the rows, or the record finds the receipt
    kept aside). Without the result locks, READ COMMITTED let both miss each other."""
    async with fresh_database() as url:
        one, two = open_storage(url), open_storage(url)
        await one.open()
        await two.open()
        try:
            task_id = await sending_task(one)
            rounds, size = 40, 50
            for r in range(rounds):
                pids = [f"r{r}-{i}" for i in range(size)]
                await asyncio.gather(
                    one.messages.record_batch(batch(task_id, pids, 100.0, cursor=(r + 1) * size), None),
                    two.messages.apply_receipts([receipt(p, 101.0) for p in pids], TIMEOUT, 102.0, {}, None, None))
            assert await sql(one, "SELECT COUNT(*) FROM unmatched_receipts WHERE matched=0") == [(0,)]
            assert await group_by(one) == [(task_id, rounds * size, rounds * size, 0)]
            assert (await one.check.count_mismatches()).ok
        finally:
            await one.close()
            await two.close()


async def test_a_flush_of_duplicates_keeps_the_last_result_time(storage):
    task_id = await sending_task(storage)
    await storage.messages.record_batch(batch(task_id, ["d1"], 100.0), None)
    await storage.messages.apply_receipts([receipt("d1", 110.0)], TIMEOUT, 111.0, {}, None, None)
    tally = await storage.messages.apply_receipts([receipt("d1", 120.0)], TIMEOUT, 121.0, {}, None, None)
    assert dict(tally.duplicate) == {task_id: 1} and tally.last_final == {}
    assert (await counters(storage, task_id))[5:7] == (1, 110.0)
