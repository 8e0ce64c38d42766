"""The dispatcher and receipt sink against a real SQLite file, without HTTP."""

from __future__ import annotations


from gateway.config import Config
from gateway.domain import results as R
from gateway.pipeline.dispatcher import _message_rows, _record_batch
from gateway.pipeline.receipts import apply_receipts
from gateway.platform import Receipt, SubmitItem, SubmitResult
from gateway.storage.db import Database


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


async def _db(tmp_path):
    db = Database(tmp_path / "p.db")
    await db.open()
    await db.execute(
        "INSERT INTO tasks(id, workspace_id, name, platform, sms_type, signature, content, content_summary, audience_id,"
        " audience_name, send_type, sub_activities, status, created_at, updated_at, parts, encoding)"
        " VALUES (1, 1, 't', 'sim', 'marketing', '', '{\"text\": \"x\"}', 'x', 1, 'a', 'immediate', '[]', 'sending', 0, 0, 2, 'GSM-7')"
    )
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


async def test_receipts_overtaking_a_batch_being_recorded_wait_for_it_in_memory(tmp_path):
    """The sink's waiting room: a receipt naming an id the dispatcher is recording is applied
    once the batch is recorded, its deliver call answered only then; nothing goes to
    unmatched_receipts. A receipt for an id nobody expects is kept aside at once."""
    import asyncio

    from gateway.clock import VirtualClock
    from gateway.pipeline.receipts import ReceiptSink

    db = await _db(tmp_path)
    committed = []

    async def on_committed(by_platform, tally):
        committed.append(sum(len(r) for r in by_platform.values()))

    config = Config(db_path=str(tmp_path / "p.db"))
    sink = ReceiptSink(db, VirtualClock(10.0), config, on_committed)
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
