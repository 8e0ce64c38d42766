"""kill -9 in the middle of a large send, restart, and nothing is lost or sent twice."""

from __future__ import annotations

import sqlite3
import time

from simulator.store import carrier_db_path
from tests.counts import assert_counters_match_rows
from tests.pg_support import db_target, query
from tests.procs import Server, create_token

N = 60_000


def test_kill_during_sending_then_resume(tmp_path):
    db = db_target(tmp_path, "crash.db")
    token = create_token(db)
    env = {"SMSLAB_DISPATCH_BATCH": "500"}
    server = Server(db, "--profile", "perfect", env=env, log_path=tmp_path / "serve1.log")
    try:
        csv_body = ("phone\n" + "".join(f"+86138{i:08d}\n" for i in range(N))).encode()
        status, aud = server.request("POST", "/api/v1/audiences?name=big", token, csv_body, content_type="text/csv")
        assert status == 201 and aud["size"] == N
        status, task = server.request("POST", "/api/v1/tasks", token, {
            "name": "big send", "platform": "sim", "signature": "Shop", "content": {"text": "Hello"},
            "audience_id": aud["id"], "send_type": "immediate", "sub_activities": []})
        assert status == 201
        deadline = time.monotonic() + 60
        sent_at_kill = 0
        while time.monotonic() < deadline:
            _, detail = server.request("GET", f"/api/v1/tasks/{task['id']}", token)
            assert detail["sent"] == detail["succeeded"] + detail["failed"] + detail["pending"]
            if detail["sent"] >= 5000:
                sent_at_kill = detail["sent"]
                break
            time.sleep(0.01)
        server.kill()
    finally:
        server.stop()
    assert 0 < sent_at_kill < N, "the kill did not land in the middle of the send"
    assert_counters_match_rows(db)  # what the kill left: counters and rows committed together

    server = Server(db, "--profile", "perfect", env=env, log_path=tmp_path / "serve2.log")
    try:
        assert_counters_match_rows(db)  # while the resumed send writes
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, detail = server.request("GET", f"/api/v1/tasks/{task['id']}", token)
            assert detail["sent"] == detail["succeeded"] + detail["failed"] + detail["pending"]
            if detail["status"] == "completed":
                break
            time.sleep(0.1)
        assert detail["status"] == "completed", detail
        assert detail["sent"] == N and detail["succeeded"] == N and sum(detail["skipped"].values()) == 0
        assert_counters_match_rows(db)
    finally:
        server.stop()

    if db.startswith("postgresql://"):  # the carrier's books are in the gateway's database
        (carrier_saw, distinct), = query(
            db, "SELECT COUNT(*), COUNT(DISTINCT m->>1) FROM sim_batches b, json_array_elements(b.messages::json) m"
                " WHERE b.task_ref=?", task["id"])
    else:
        with sqlite3.connect(carrier_db_path(db)) as conn:
            carrier_saw, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT m.value->>1) FROM sim_batches b, json_each(b.messages) m WHERE b.task_ref=?",
                (task["id"],),
            ).fetchone()
    assert carrier_saw == distinct == N  # the carrier never saw a number of the task twice
    # and every row of the gateway succeeded: its counters match its rows (above) and say so
