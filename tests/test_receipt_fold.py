"""The receipt rules in one place (gateway/domain/receipt_fold.py): the fold itself, and every path
that judges a receipt's time (the receipt sink, the timeout sweep, the engine's next event, the
simulator's expected result) agreeing with ``is_late``, at the deadline itself and after the rule
is changed."""

from __future__ import annotations

import math
import random

import pytest

from gateway.config import Config
from gateway.domain import receipt_fold as F
from gateway.domain import results as R
from gateway.pipeline.engine import Engine
from gateway.pipeline.results import MessageResults
from gateway.platform import Receipt
from gateway.storage.sqlite import SqliteStorage
from simulator.model import expected_result

from tests.test_pipeline import _add_task

TIMEOUT = 72 * 3600.0
SUBMITTED = 1764318835.1234567  # 17 significant digits: the SELECT's 15 would move the deadline


def test_the_usual_receipt_makes_a_one_part_number_succeed():
    folded = F.fold(0.0, 1, R.PENDING, 0, 0, 0, None, "delivered", None, None, None, 5.0, TIMEOUT)
    assert folded == F.Fold(F.APPLIED, R.SUCCEEDED, 1, 0, 0, None, 5.0)


def test_parts_fold_into_masks_and_a_failed_part_fails_the_number_with_its_reason():
    state = F.fold(0.0, 3, R.PENDING, 0, 0, 0, None, "delivered", 0, None, None, 1.0, TIMEOUT)
    assert (state.did, state.result, state.delivered, state.final_at) == (F.APPLIED, R.PENDING, 0b001, None)
    again = F.fold(0.0, 3, state.result, state.delivered, state.failed, 0, None, "delivered", 0, None, None, 2.0, TIMEOUT)
    assert again.did == F.DUPLICATE
    failed = F.fold(0.0, 3, state.result, state.delivered, state.failed, 0, None, "failed", 2, "UNDELIV", "no", 3.0, TIMEOUT)
    assert (failed.result, failed.failed, failed.reasons, failed.final_at) == (R.FAILED, 0b100, '[["UNDELIV","no",2]]', 3.0)
    # final: a later part still changes the masks, never the result
    later = F.fold(0.0, 3, failed.result, failed.delivered, failed.failed, 0, failed.reasons, "failed", 1, "X", "y", 4.0, TIMEOUT)
    assert (later.result, later.failed, later.final_at) == (R.FAILED, 0b110, None)
    assert later.reasons == '[["UNDELIV","no",2],["X","y",1]]'


def test_a_receipt_after_the_deadline_fails_the_number_at_the_deadline_and_later_ones_only_count():
    deadline = F.receipt_deadline(SUBMITTED, TIMEOUT)
    late = F.fold(SUBMITTED, 1, R.PENDING, 0, 0, 0, None, "delivered", None, None, None, math.nextafter(deadline, math.inf), TIMEOUT)
    assert late == F.Fold(F.TIMED_OUT, R.FAILED, 0, 0, 1, '[["RECEIPT_TIMEOUT","no delivery receipt within the receipt timeout"]]',
                          deadline)
    on_time = F.fold(SUBMITTED, 1, R.PENDING, 0, 0, 0, None, "delivered", None, None, None, deadline, TIMEOUT)
    assert on_time.result == R.SUCCEEDED
    again = F.fold(SUBMITTED, 1, late.result, 0, 0, late.late, late.reasons, "delivered", None, None, None, deadline + 9, TIMEOUT)
    assert again.did == F.LATE and again.result == R.FAILED


def test_the_inverses_agree_with_is_late_to_the_last_bit():
    rng = random.Random(7)
    for _ in range(5000):
        timeout = rng.choice([TIMEOUT, 400 * 3600.0, 1.0, 0.1])
        now, sub = rng.uniform(0, 2e9), rng.uniform(0, 2e9)
        bound = F.submitted_before(now, timeout)
        assert not F.is_late(bound, now, timeout) and F.is_late(math.nextafter(bound, -math.inf), now, timeout)
        first = F.late_from(sub, timeout)
        assert F.is_late(sub, first, timeout) and not F.is_late(sub, math.nextafter(first, -math.inf), timeout)


class _Dispatcher:
    retry_due: dict = {}


async def _storage(tmp_path):
    storage = SqliteStorage(str(tmp_path / "f.db"))
    await storage.open()
    await _add_task(storage.db, 1, "t", "sim", 1)
    await storage.db.execute("UPDATE tasks SET sent=4, dispatch_started_at=? WHERE id=1", (SUBMITTED,))
    for i in range(1, 5):
        await storage.db.execute(
            "INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at) VALUES (?, 1, 'n', 1, 0, ?, ?)",
            (i, f"P{i}", SUBMITTED))
    return storage


async def _results(storage) -> dict[str, int]:
    return dict(await storage.db.fetchall("SELECT platform_id, result FROM messages"))


async def _agree_at_the_boundary(tmp_path):
    """The receipt path, the sweep and the engine's next event draw the line at the same instant:
    the first one ``is_late`` calls late."""
    storage = await _storage(tmp_path)
    try:
        config = Config(db_path=str(tmp_path / "f.db"), receipt_timeout=TIMEOUT)
        results = MessageResults(storage.messages, config)
        engine = Engine(storage, None, {}, None, config, None, _Dispatcher(), results)
        first_late = await engine._next_event_after(SUBMITTED)
        assert first_late == F.late_from(SUBMITTED, TIMEOUT)
        last_in_time = math.nextafter(first_late, -math.inf)
        # receipts timed either side of the line
        await results.apply_receipts([("sim", Receipt("P1", "delivered", last_in_time)),
                                      ("sim", Receipt("P2", "delivered", first_late))], last_in_time, {})
        # the sweep at the last instant in time leaves the others pending; at the first late one it fails them
        assert await results.sweep_timeouts(last_in_time) == 0
        assert await results.sweep_timeouts(first_late) == 2
        assert await _results(storage) == {"P1": R.SUCCEEDED, "P2": R.FAILED, "P3": R.FAILED, "P4": R.FAILED}
        late = await storage.db.fetchall("SELECT platform_id FROM messages WHERE late=1 ORDER BY id")
        assert late == [("P2",), ("P3",), ("P4",)]
        # the simulator expects the same of receipts planned at those instants
        assert expected_result(1, SUBMITTED, [(last_in_time, None, "delivered", False)], TIMEOUT) == "succeeded"
        assert expected_result(1, SUBMITTED, [(first_late, None, "delivered", False)], TIMEOUT) == "receipt_timeout"
        return first_late
    finally:
        await storage.close()


async def test_the_sweep_the_receipts_the_next_event_and_the_simulator_agree_at_the_deadline(tmp_path):
    assert await _agree_at_the_boundary(tmp_path) == math.nextafter(SUBMITTED + TIMEOUT, math.inf)


@pytest.mark.parametrize("rule", ["grace", "inclusive"])
async def test_changing_the_rule_in_one_function_moves_every_path(tmp_path, monkeypatch, rule):
    """A newcomer edits ``receipt_deadline`` (ten seconds of grace) or ``is_late`` (a receipt at the
    deadline itself is late): the receipt path, the sweep, the next event and the simulator follow."""
    if rule == "grace":
        monkeypatch.setattr(F, "receipt_deadline", lambda submitted_at, timeout: submitted_at + timeout + 10.0)
        expected = math.nextafter(SUBMITTED + TIMEOUT + 10.0, math.inf)
    else:
        monkeypatch.setattr(F, "is_late", lambda submitted_at, at, timeout: at >= F.receipt_deadline(submitted_at, timeout))
        expected = SUBMITTED + TIMEOUT
    assert await _agree_at_the_boundary(tmp_path) == expected


def test_the_fast_paths_bound_is_the_clearly_in_time_test():
    rng = random.Random(11)
    for _ in range(2000):
        sub = rng.uniform(0, 2e9)
        bound = F.in_time_before(sub, TIMEOUT)
        assert F.clearly_in_time(sub, math.nextafter(bound, -math.inf), TIMEOUT)
        assert not F.clearly_in_time(sub, bound, TIMEOUT)
        assert bound < F.late_from(sub, TIMEOUT)  # the rounding margin errs on the side of an exact read
