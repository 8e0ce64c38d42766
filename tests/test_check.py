"""``smslab check``: a real service sends through the simulated carrier (failures, duplicate
receipts, missing receipts that time out, multi-part messages) and the check finds every
counter equal to what the message rows say, while the service runs; a counter changed behind
the service's back is reported, alone, with exit status 1."""

from __future__ import annotations

import json
import sqlite3

from gateway.storage.check import NO_TASK, CounterMismatch, ResultRows, TaskCounters, compare
from tests.counts import assert_counters_match_rows, run_check
from tests.pg_support import db_target, on_postgres, run_postgres
from tests.procs import Server, create_token

HOUR = 3600.0
LONG_TEXT = "Spring sale! " * 15  # UCS-2 with the signature: a 3-part message
PROFILE = {"seed": 11, "outcomes": {"delivered": 0.6, "failed": 0.2, "missing": 0.2}, "duplicate_rate": 0.3,
           "receipt_delay": {"kind": "uniform", "low": 1, "high": 60}, "moderation": {"review_seconds": 0}}


def _task(server: Server, token: str, name: str, numbers: list[str], text: str) -> int:
    status, aud = server.request("POST", "/api/v1/audiences", token, {"name": f"aud {name}", "numbers": numbers})
    assert status == 201, aud
    status, task = server.request("POST", "/api/v1/tasks", token, {
        "name": name, "platform": "sim", "sms_type": "marketing", "signature": "Shop", "content": {"text": text},
        "audience_id": aud["id"], "send_type": "immediate", "sub_activities": []})
    assert status == 201, task
    return task["id"]


def _advance(server: Server, token: str, seconds: float) -> None:
    status, body = server.request("POST", "/api/v1/clock/advance", token, {"seconds": seconds})
    assert status == 200, body


def _one_more_succeeded(db: str, task_id: int) -> int:
    """Corrupt a counter behind the service's back; the value it now holds."""
    if on_postgres():
        return run_postgres(db, "UPDATE tasks SET succeeded = succeeded + 1 WHERE id = $1 RETURNING succeeded", task_id)[0][0]
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("UPDATE tasks SET succeeded = succeeded + 1 WHERE id = ?", (task_id,))
        (stored,) = conn.execute("SELECT succeeded FROM tasks WHERE id = ?", (task_id,)).fetchone()
    conn.close()
    return stored


def test_check_finds_the_counters_equal_to_the_rows_then_reports_a_corrupted_one(tmp_path):
    db = db_target(tmp_path, "check.db")
    token = create_token(db)
    server = Server(db, "--clock", "virtual", log_path=tmp_path / "serve.log")
    try:
        status, body = server.request("PATCH", "/api/v1/simulator/profile", token, PROFILE)
        assert status == 200, body
        short = _task(server, token, "short", [f"+86138{i:08d}" for i in range(300)], "Hello")
        long = _task(server, token, "long", [f"+86139{i:08d}" for i in range(100)], LONG_TEXT)
        _advance(server, token, HOUR)
        for task_id in (short, long):  # what makes the check worth running: failures and numbers still pending
            _, detail = server.request("GET", f"/api/v1/tasks/{task_id}", token)
            assert detail["failed"] > 0 and detail["pending"] > 0 and detail["duplicate_receipts"] > 0, detail
        _, detail = server.request("GET", f"/api/v1/tasks/{long}", token)
        assert detail["segments"] == 3 * detail["sent"], detail
        assert_counters_match_rows(db, min_checked=2)  # mid-flight, next to the running service

        _advance(server, token, 72 * HOUR + 120)  # the missing receipts time out
        for task_id in (short, long):
            _, detail = server.request("GET", f"/api/v1/tasks/{task_id}", token)
            assert detail["status"] == "completed" and detail["pending"] == 0, detail
        proc = run_check(db)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert proc.stdout.strip() == "2 tasks checked, all counters match their rows"

        stored = _one_more_succeeded(db, long)
        proc = run_check(db)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout.splitlines() == [
            f"task {long}: succeeded is {stored}, its message rows say {stored - 1}",
            "2 tasks checked: 1 mismatch in 1 task",
        ]
        proc = run_check(db, "--json")
        assert proc.returncode == 1
        assert json.loads(proc.stdout) == {
            "ok": False, "checked": 2, "skipped": {"purged": 0, "expired": 0},
            "mismatches": [{"task_id": long, "counter": "succeeded", "stored": stored, "from_rows": stored - 1}]}
    finally:
        server.stop()


def test_tasks_whose_details_are_purged_are_skipped_and_said_so(tmp_path):
    db = db_target(tmp_path, "purged.db")
    token = create_token(db)
    server = Server(db, "--clock", "virtual", "--profile", "perfect", log_path=tmp_path / "serve.log")
    try:
        task_id = _task(server, token, "old", [f"+86138{i:08d}" for i in range(20)], "Hello")
        _advance(server, token, HOUR)
        _, detail = server.request("GET", f"/api/v1/tasks/{task_id}", token)
        assert detail["status"] == "completed", detail
        _advance(server, token, 200 * HOUR)  # past the retention (168 h): only the counters stay
        _, detail = server.request("GET", f"/api/v1/tasks/{task_id}", token)
        assert detail["details_expired"] is True, detail
        proc = run_check(db)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert proc.stdout.splitlines() == ["0 tasks checked, all counters match their rows",
                                            "skipped (only counters left to compare): 1 with details purged"]
    finally:
        server.stop()


def test_a_missing_database_is_no_pass(tmp_path):
    proc = run_check(tmp_path / "nothing.db")
    assert proc.returncode == 2 and "no database" in proc.stderr
    assert not (tmp_path / "nothing.db").exists()  # the check created nothing


def test_compare_counts_each_counter_from_the_rows():
    tasks = [TaskCounters(1, 5, 3, 1, 10, "checked"), TaskCounters(2, 0, 0, 0, 0, "checked"),
             TaskCounters(3, 9, 9, 0, 9, "purged"), TaskCounters(4, 9, 9, 0, 9, "expired")]
    groups = [ResultRows(1, 0, 1, 2), ResultRows(1, 1, 3, 6), ResultRows(1, 2, 1, 2),  # task 1: all match
              ResultRows(4, 1, 3, 3),  # rows going away under a purge: not compared
              ResultRows(7, 2, 2, 2)]  # rows of a task that is not there
    result = compare(tasks, groups)
    assert (result.checked, result.purged, result.expired) == (2, 1, 1)
    assert result.mismatches == [CounterMismatch(7, NO_TASK, 0, 2)]
    off = compare([TaskCounters(1, 5, 4, 0, 11, "checked")], groups[:3])
    assert off.mismatches == [CounterMismatch(1, "succeeded", 4, 3), CounterMismatch(1, "failed", 0, 1),
                              CounterMismatch(1, "segments", 11, 10)]
