"""The dispatcher and receipt sink against a real SQLite file, without HTTP."""

from __future__ import annotations


from gateway.config import Config
from gateway.domain import results as R
from gateway.pipeline.dispatcher import _message_rows
from gateway.storage.sqlite.messages import record_batch as _record_batch
from gateway.storage.sqlite.receipts import apply_receipts
from gateway.platform import Receipt, SubmitItem, SubmitResult
from gateway.storage.sqlite.db import Database
from tests.counts import assert_counters_match_rows_of


def _item(seq: int, number: str) -> SubmitItem:
    return SubmitItem(f"1-{seq:010d}", 1, number, "x", 2)


def test_acknowledgements_match_their_numbers_in_any_order():
    batch = [_item(i, f"+86138001380{i:02d}") for i in range(4)]
    in_order = [SubmitResult(b.key, f"P{i}") for i, b in enumerate(batch)]
    shuffled = [in_order[2], in_order[0], SubmitResult(batch[3].key, None, "X", "no"), in_order[1]]
    expected = [(1, b.number, 2, f"P{i}") for i, b in enumerate(batch[:3])]
    assert _message_rows(1, 2, batch, in_order[:3] + [SubmitResult(batch[3].key, None, "X", "no")]) == (expected, 1)
    assert _message_rows(1, 2, batch, shuffled) == (expected, 1)
    assert _message_rows(1, 2, batch, in_order[:2]) == (expected[:2], 2)  # an answer missing counts as refused


async def _add_task(db, task_id: int, name: str, platform: str, parts: int) -> None:
    await db.execute(
        "INSERT INTO tasks(id, workspace_id, name, platform, sms_type, signature, content, content_summary, audience_id,"
        " audience_name, send_type, sub_activities, status, created_at, updated_at, parts, encoding)"
        " VALUES (?, 1, ?, ?, 'marketing', '', '{\"text\": \"x\"}', 'x', 1, 'a', 'immediate', '[]', 'sending', 0, 0, ?, 'GSM-7')",
        (task_id, name, platform, parts),
    )


async def _db(tmp_path):
    db = Database(tmp_path / "p.db")
    await db.open()
    await _add_task(db, 1, "t", "sim", 2)
    return db


async def test_receipt_before_acknowledgement_is_applied_at_ack(tmp_path):
    db = await _db(tmp_path)
    try:
        config = Config(db_path=str(tmp_path / "p.db"))
        # both parts' receipts overtake the acknowledgement
        early = [("sim", Receipt(platform_id="P10", status="delivered", at=5.0, part=p)) for p in (0, 1)]
        def record(conn):
            tally = apply_receipts(conn, early, config.receipt_timeout)
            conn.executemany(
                "INSERT INTO unmatched_receipts(platform, platform_id, part, status, at, received_at) VALUES (?,?,?,?,?,?)",
                [(p, r.platform_id, r.part, r.status, r.at, 5.0) for p, r in tally.unmatched],
            )
            return tally

        tally = await db.write(record)
        assert len(tally.unmatched) == 2

        rows, refused = _message_rows(1, 2, [_item(0, "+8613800138000")], [SubmitResult("1-0000000000", "P10")])
        assert refused == 0
        await db.write(_record_batch, 1, "sim", 2, rows, 4.0, 0, 1, "{}", config.receipt_timeout)
        row = await db.fetchone("SELECT result, delivered_mask FROM messages WHERE platform_id='P10'")
        assert row == (R.SUCCEEDED, 0b11)
        task = await db.fetchone("SELECT sent, succeeded, failed, segments FROM tasks WHERE id=1")
        assert task == (1, 1, 0, 2)
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts WHERE matched=0") == (0,)
        await assert_counters_match_rows_of(db, 0.0)
    finally:
        await db.close()


async def test_a_batch_is_recorded_row_for_row_even_when_a_platform_repeats_an_id(tmp_path):
    db = await _db(tmp_path)
    try:
        config = Config(db_path=str(tmp_path / "p.db"))
        batch = [_item(i, f"+86138001380{i:02d}") for i in range(3)]
        for cursor, ids in enumerate((["A", "B", "C"], ["D", "D", "E"])):  # the second platform reuses an id
            rows, _ = _message_rows(1, 2, batch, [SubmitResult(b.key, pid) for b, pid in zip(batch, ids)])
            await db.write(_record_batch, 1, "sim", 2, rows, 4.0, cursor, 3, "{}", config.receipt_timeout)
        stored = await db.fetchall("SELECT task_id, number, parts, result, platform_id, submitted_at FROM messages ORDER BY id")
        numbers = [b.number for b in batch]
        assert stored == [(1, n, 2, R.PENDING, pid, 4.0) for n, pid in zip(numbers + numbers, ["A", "B", "C", "D", "D", "E"])]
        assert await db.fetchone("SELECT sent, segments FROM tasks WHERE id=1") == (6, 12)
        await assert_counters_match_rows_of(db, 0.0)
    finally:
        await db.close()


async def test_out_of_order_duplicate_and_late_receipts_fold_idempotently(tmp_path):
    db = await _db(tmp_path)
    try:
        await db.execute(
            "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (1, 1, 'a', 2, 0, 'A', 0)"
        )
        await db.execute(
            "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (2, 1, 'b', 2, 0, 'B', 0)"
        )
        await db.execute("UPDATE tasks SET sent=2 WHERE id=1")
        batch = [
            ("sim", Receipt("A", "delivered", 3.0, part=1)),
            ("sim", Receipt("A", "failed", 2.0, part=0, code="UNDELIV", message="no")),
            ("sim", Receipt("A", "failed", 2.0, part=0, code="UNDELIV", message="no")),  # duplicate
            ("sim", Receipt("B", "delivered", 10.0 + 72 * 3600, part=None)),  # after the deadline
            ("other", Receipt("B", "delivered", 1.0)),  # right id, wrong platform
        ]
        tally = await db.write(apply_receipts, batch, 72 * 3600)
        assert len(tally.unmatched) == 1
        a = await db.fetchone("SELECT result, reasons FROM messages WHERE id=1")
        b = await db.fetchone("SELECT result, reasons, late FROM messages WHERE id=2")
        assert a[0] == R.FAILED and "UNDELIV" in a[1]
        assert b[0] == R.FAILED and "RECEIPT_TIMEOUT" in b[1] and b[2] == 1
        task = await db.fetchone("SELECT sent, succeeded, failed, duplicate_receipts, late_receipts FROM tasks WHERE id=1")
        assert task == (2, 0, 2, 1, 1)
        # the same batch again changes no result and no count but the duplicate/late tallies
        await db.write(apply_receipts, batch[:4], 72 * 3600)
        task = await db.fetchone("SELECT sent, succeeded, failed FROM tasks WHERE id=1")
        assert task == (2, 0, 2)
    finally:
        await db.close()


async def test_a_receipt_timed_to_the_deadline_is_judged_against_the_exact_submission_time(tmp_path):
    """The SELECT reads ``submitted_at`` rounded to 15 digits; at the deadline itself, and one
    unit of the last place either side of it, the fold must decide as the exact value does."""
    import math

    timeout = 72 * 3600.0
    submitted = 1764318835.1234567  # 17 significant digits: JSON's 15 would move the deadline
    deadline = submitted + timeout
    db = await _db(tmp_path)
    try:
        cases = {"on": deadline, "before": math.nextafter(deadline, 0), "after": math.nextafter(deadline, math.inf)}
        for i, name in enumerate(cases, start=1):
            await db.execute(
                "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (?, 1, 'n', 1, 0, ?, ?)",
                (i, name, submitted),
            )
        await db.execute("UPDATE tasks SET sent=3 WHERE id=1")
        tally = await db.write(apply_receipts, [("sim", Receipt(name, "delivered", at)) for name, at in cases.items()], timeout)
        rows = dict(await db.fetchall("SELECT platform_id, result FROM messages"))
        assert rows == {"on": R.SUCCEEDED, "before": R.SUCCEEDED, "after": R.FAILED}
        assert tally.late == {1: 1}
        # the latest final time is the deadline itself, to the last bit: the late number failed
        # then, and "on" was delivered then
        assert await db.fetchone("SELECT last_result_at FROM tasks WHERE id=1") == (deadline,)
    finally:
        await db.close()


async def test_the_same_platform_id_on_two_platforms_reaches_each_its_own_message(tmp_path):
    db = await _db(tmp_path)
    try:
        await _add_task(db, 2, "t2", "other", 1)
        for mid, task in ((1, 1), (2, 2)):
            await db.execute(
                "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (?, ?, 'n', 1, 0, 'SAME', 0)",
                (mid, task),
            )
        batch = [("other", Receipt("SAME", "failed", 1.0, code="X", message="no")), ("sim", Receipt("SAME", "delivered", 2.0))]
        tally = await db.write(apply_receipts, batch, 72 * 3600)
        assert not tally.unmatched
        assert await db.fetchall("SELECT id, result FROM messages ORDER BY id") == [(1, R.SUCCEEDED), (2, R.FAILED)]
    finally:
        await db.close()


async def test_a_part_delivered_after_its_number_failed_keeps_the_time_it_failed(tmp_path):
    """A number is final at its first failed part; a later delivered part changes its mask only.
    Its receipt time (when it became final) and reasons stay as they were."""
    db = await _db(tmp_path)
    try:
        await db.execute(
            "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at, receipt_at, failed_mask, reasons)"
            " VALUES (1, 1, 'n', 2, ?, 'F', 0, 7.0, 1, '[[\"X\",\"no\"]]')", (R.FAILED,)
        )
        await db.execute("INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (2, 1, 'm', 1, 0, 'D', 0)")
        batch = [("sim", Receipt("F", "delivered", 9.0, part=1)), ("sim", Receipt("D", "delivered", 8.0)),
                 ("sim", Receipt("D", "failed", 8.5, code="X", message="late dup"))]
        await db.write(apply_receipts, batch, 72 * 3600)
        rows = await db.fetchall("SELECT id, result, receipt_at, delivered_mask, failed_mask, reasons FROM messages ORDER BY id")
        assert rows == [(1, R.FAILED, 7.0, 0b10, 0b01, '[["X","no"]]'), (2, R.SUCCEEDED, 8.0, 1, 0, None)]
    finally:
        await db.close()


async def test_many_kinds_of_delivered_update_keep_every_other_column(tmp_path):
    """Delivered parts are written per (result, mask) pair; past a handful of pairs they go
    through the general UPDATE, which must carry the failed mask and reasons a row already has."""
    db = await _db(tmp_path)
    try:
        await db.execute("UPDATE tasks SET parts=8 WHERE id=1")
        for i in range(12):
            # half of them already failed on their last part (result failed, reasons kept)
            failed = 1 << 7 if i % 2 else 0
            await db.execute(
                "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at, failed_mask, reasons)"
                " VALUES (?, 1, 'n', 8, ?, ?, 0, ?, ?)",
                (i + 1, R.FAILED if failed else R.PENDING, f"M{i}", failed, '[["X","no"]]' if failed else None),
            )
        # message i gets parts 0..(i % 7), so masks differ: more than eight (result, mask) pairs
        batch = [("sim", Receipt(f"M{i}", "delivered", 1.0, part=p)) for i in range(12) for p in range(i % 7 + 1)]
        await db.write(apply_receipts, batch, 72 * 3600)
        rows = await db.fetchall("SELECT id, result, delivered_mask, failed_mask, reasons FROM messages ORDER BY id")
        for (mid, result, delivered, failed, reasons), i in zip(rows, range(12)):
            assert delivered == (1 << (i % 7 + 1)) - 1
            assert (result, failed, reasons) == ((R.FAILED, 1 << 7, '[["X","no"]]') if i % 2 else (R.PENDING, 0, None))
    finally:
        await db.close()


async def test_a_receipt_held_while_its_batch_is_recorded_mid_flush_is_not_left_waiting(tmp_path):
    """The store holds a receipt for an id the dispatcher is recording (its ``expect`` came while
    the flush was on its way to the database, so the sink could not set it aside itself); the
    record commits, and ``recorded`` runs, while that flush is still on its way back
    (PostgreSQL: the flush took no lock the record needed). The receipt must go again at once,
    not wait for a ``recorded`` that has already come and gone (its deliver call then never
    returned)."""
    import asyncio

    from gateway.clock import VirtualClock
    from gateway.pipeline.receipts import ReceiptSink
    from gateway.pipeline.results import MessageResults
    from gateway.storage.sqlite.messages import SqliteMessageStore

    db = await _db(tmp_path)
    config = Config(db_path=str(tmp_path / "p.db"))
    store = SqliteMessageStore(db)

    class RecordedMidFlush(SqliteMessageStore):
        """The real store, except that the record lands between its decision to hold and its return."""

        def __init__(self):
            super().__init__(db)
            self.once = True

        async def apply_receipts(self, items, timeout, now, expected, fresh, scoped):
            if self.once:
                sink.expect("sim", ["P9"])
            tally = await store.apply_receipts(items, timeout, now, expected, fresh, scoped)
            if self.once and tally.held:
                self.once = False
                rows, _ = _message_rows(1, 1, [_item(0, "+8613800138000")], [SubmitResult("1-0000000000", "P9")])
                await db.write(_record_batch, 1, "sim", 1, rows, 4.0, 0, 1, "{}", config.receipt_timeout)
                sink.recorded("sim", ["P9"])
            return tally

    async def on_committed(by_platform, tally):
        pass

    sink = ReceiptSink(MessageResults(RecordedMidFlush(), config), VirtualClock(10.0), config, on_committed)
    sink.start()
    try:
        await asyncio.wait_for(sink.deliver("sim", [Receipt(platform_id="P9", status="delivered", at=5.0)]), 5)
        assert await db.fetchone("SELECT result FROM messages WHERE platform_id='P9'") == (R.SUCCEEDED,)
        assert await db.fetchone("SELECT sent, succeeded FROM tasks WHERE id=1") == (1, 1)
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts") == (0,)
    finally:
        await sink.stop()
        await db.close()


async def test_receipts_for_an_id_being_recorded_wait_without_a_trip_to_the_database(tmp_path):
    """A receipt naming an id the dispatcher announced (``expect``) is set aside by the sink
    itself: the database is not asked about it until the batch is recorded, and then once. In
    the same flush, a receipt for a recorded message is applied at once."""
    import asyncio

    from gateway.clock import VirtualClock
    from gateway.pipeline.receipts import ReceiptSink
    from gateway.pipeline.results import MessageResults
    from gateway.storage.sqlite.messages import SqliteMessageStore

    db = await _db(tmp_path)
    config = Config(db_path=str(tmp_path / "p.db"))
    asked: list[list[str]] = []

    class Counting(SqliteMessageStore):
        async def apply_receipts(self, items, timeout, now, expected, fresh, scoped):
            asked.append([receipt.platform_id for _, receipt in items])
            return await super().apply_receipts(items, timeout, now, expected, fresh, scoped)

    async def on_committed(by_platform, tally):
        pass

    sink = ReceiptSink(MessageResults(Counting(db), config), VirtualClock(10.0), config, on_committed)
    sink.start()
    try:
        rows, _ = _message_rows(1, 1, [_item(0, "+8613800138000")], [SubmitResult("1-0000000000", "P1")])
        await db.write(_record_batch, 1, "sim", 1, rows, 4.0, 0, 1, "{}", config.receipt_timeout)
        sink.expect("sim", ["P2"])
        both = asyncio.create_task(sink.deliver("sim", [Receipt(platform_id="P2", status="delivered", at=5.0),
                                                        Receipt(platform_id="P1", status="delivered", at=5.0)]))
        alone = asyncio.create_task(sink.deliver("sim", [Receipt(platform_id="P2", status="delivered", at=5.0)]))
        for _ in range(100):
            if await db.fetchone("SELECT succeeded FROM tasks WHERE id=1") == (1,):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert asked == [["P1"]]  # P2 never went to the database
        assert not both.done() and not alone.done()
        rows, _ = _message_rows(1, 1, [_item(1, "+8613800138001")], [SubmitResult("1-0000000001", "P2")])
        await db.write(_record_batch, 1, "sim", 1, rows, 5.0, 1, 2, "{}", config.receipt_timeout)
        sink.recorded("sim", ["P2"])
        await asyncio.wait_for(asyncio.gather(both, alone), 5)
        assert sorted(id for ids in asked[1:] for id in ids) == ["P2", "P2"]
        assert await db.fetchone("SELECT result FROM messages WHERE platform_id='P2'") == (R.SUCCEEDED,)
        assert await db.fetchone("SELECT sent, succeeded, duplicate_receipts FROM tasks WHERE id=1") == (2, 2, 1)
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts") == (0,)
    finally:
        await sink.stop()
        await db.close()


async def test_receipts_overtaking_a_batch_being_recorded_wait_for_it_in_memory(tmp_path):
    """The sink's waiting room: a receipt naming an id the dispatcher is recording is applied
    once the batch is recorded, its deliver call answered only then; nothing goes to
    unmatched_receipts. A receipt for an id nobody expects is kept aside at once."""
    import asyncio

    from gateway.clock import VirtualClock
    from gateway.pipeline.receipts import ReceiptSink
    from gateway.pipeline.results import MessageResults
    from gateway.storage.sqlite.messages import SqliteMessageStore

    db = await _db(tmp_path)
    committed = []

    async def on_committed(by_platform, tally):
        committed.append(sum(len(r) for r in by_platform.values()))

    config = Config(db_path=str(tmp_path / "p.db"))
    sink = ReceiptSink(MessageResults(SqliteMessageStore(db), config), VirtualClock(10.0), config, on_committed)
    sink.start()
    try:
        sink.expect("sim", ["P1"])
        early = asyncio.create_task(sink.deliver("sim", [Receipt(platform_id="P1", status="delivered", at=5.0, part=0),
                                                         Receipt(platform_id="P1", status="delivered", at=5.0, part=1)]))
        await sink.deliver("sim", [Receipt(platform_id="NOBODY", status="delivered", at=5.0)])  # answered at once
        await asyncio.sleep(0.05)
        assert not early.done()
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts") == (1,)
        rows, _ = _message_rows(1, 2, [_item(0, "+8613800138000")], [SubmitResult("1-0000000000", "P1")])
        await db.write(_record_batch, 1, "sim", 2, rows, 4.0, 0, 1, "{}", config.receipt_timeout)
        sink.recorded("sim", ["P1"])
        await asyncio.wait_for(early, 5)
        assert await db.fetchone("SELECT result, delivered_mask FROM messages WHERE platform_id='P1'") == (R.SUCCEEDED, 0b11)
        assert await db.fetchone("SELECT sent, succeeded FROM tasks WHERE id=1") == (1, 1)
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts") == (1,)
        assert committed == [1, 2]  # observers hear of receipts only once they are committed
        assert (await db.fetchone("SELECT duplicate_receipts FROM tasks WHERE id=1")) == (0,)
        # one call, one receipt applied at once and one waiting: answered when both are committed
        sink.expect("sim", ["P3"])
        mixed = asyncio.create_task(sink.deliver("sim", [Receipt(platform_id="P3", status="delivered", at=6.0, part=0),
                                                         Receipt(platform_id="P1", status="delivered", at=6.0, part=0)]))
        await asyncio.sleep(0.05)
        assert not mixed.done()
        assert await db.fetchone("SELECT duplicate_receipts FROM tasks WHERE id=1") == (1,)  # P1's part 0 again
        rows, _ = _message_rows(1, 2, [_item(1, "+8613800138001")], [SubmitResult("1-0000000001", "P3")])
        await db.write(_record_batch, 1, "sim", 2, rows, 5.0, 1, 2, "{}", config.receipt_timeout)
        sink.recorded("sim", ["P3"])
        await asyncio.wait_for(mixed, 5)
        assert await db.fetchone("SELECT delivered_mask FROM messages WHERE platform_id='P3'") == (0b01,)
        # a batch whose recording fails releases its waiting receipts to unmatched_receipts
        sink.expect("sim", ["P2"])
        late = asyncio.create_task(sink.deliver("sim", [Receipt(platform_id="P2", status="failed", at=6.0, code="X")]))
        await asyncio.sleep(0.05)
        assert not late.done()
        sink.recorded("sim", ["P2"])
        await asyncio.wait_for(late, 5)
        assert await db.fetchone("SELECT COUNT(*) FROM unmatched_receipts WHERE platform_id='P2'") == (1,)
    finally:
        await sink.stop()
        await db.close()
