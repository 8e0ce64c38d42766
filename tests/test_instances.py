"""Several `smslab serve` processes on one PostgreSQL database act as one gateway (SPEC §11).

Three instances share a database; a 100,000-number task is created at one, watched at another,
and the leader (the instance sending) is killed with SIGKILL mid-send, then the next leader too.
The last instance finishes the task. Evidence, each independent of the gateway's counters:
- the carrier's ground truth (its own record of every submission) holds each number once, and
  names exactly the platform ids the gateway's rows hold;
- the gateway's rows hold each number once, and the task's counters equal a GROUP BY over them.
"""

from __future__ import annotations

import time

import pytest

from tests.counts import assert_counters_match_rows
from tests.pg_support import db_target, on_postgres, query
from tests.procs import Server, create_token, wait_for

pytestmark = pytest.mark.skipif(not on_postgres(), reason="several instances share a PostgreSQL database")

N = 100_000
LEASE = "2"  # SMSLAB_LEASE_SECONDS: a dead leader's work is taken over within 2 s


def _health(server: Server) -> dict:
    return server.request("GET", "/healthz")[1]


def _leader(servers: list[Server]) -> Server | None:
    leading = [s for s in servers if _health(s)["instance"]["leading"]]
    assert len(leading) <= 1, "two instances lead at once"
    return leading[0] if leading else None


def _detail(server: Server, token: str, task_id: int) -> dict:
    status, detail = server.request("GET", f"/api/v1/tasks/{task_id}", token)
    assert status == 200, detail
    return detail


def test_three_instances_lose_or_double_nothing_when_killed_one_by_one(tmp_path):
    db = db_target(tmp_path, "shared.db")
    token = create_token(db)
    env = {"SMSLAB_LEASE_SECONDS": LEASE, "SMSLAB_DISPATCH_BATCH": "500"}
    servers = [Server(db, "--profile", "perfect", env=env, log_path=tmp_path / f"serve{i}.log") for i in range(3)]
    try:
        leader = wait_for(lambda: _leader(servers), what="a leader")
        others = [s for s in servers if s is not leader]
        # any instance answers any call: the audience goes to one that does not lead, the task to another
        csv_body = ("phone\n" + "".join(f"+86138{i:08d}\n" for i in range(N))).encode()
        status, aud = others[0].request("POST", "/api/v1/audiences?name=big", token, csv_body, content_type="text/csv")
        assert status == 201 and aud["size"] == N
        status, task = others[1].request("POST", "/api/v1/tasks", token, {
            "name": "shared send", "platform": "sim", "signature": "Shop", "content": {"text": "Hello"},
            "audience_id": aud["id"], "send_type": "immediate", "sub_activities": []})
        assert status == 201, task
        task_id = task["id"]

        killed = []
        for threshold in (N // 5, N // 2):
            watcher = next(s for s in servers if s is not leader and s not in killed)
            sent = wait_for(lambda: (d := _detail(watcher, token, task_id))["sent"] >= threshold and d["sent"],
                            timeout=120, what=lambda: _detail(watcher, token, task_id))
            assert sent < N, "the kill did not land in the middle of the send"
            leader.kill()
            killed.append(leader)
            alive = [s for s in servers if s not in killed]
            # another instance takes the work over within the lease
            started = time.monotonic()
            leader = wait_for(lambda: _leader(alive), timeout=15, what="a new leader")
            assert time.monotonic() - started < 2 * float(LEASE) + 1
            assert_counters_match_rows(db)  # what the kill left: counters and rows committed together

        last = leader
        detail = wait_for(lambda: (d := _detail(last, token, task_id))["status"] == "completed" and d,
                          timeout=240, what=lambda: _detail(last, token, task_id))
        assert detail["sent"] == N and detail["succeeded"] == N and detail["failed"] == 0
        assert sum(detail["skipped"].values()) == 0
        assert_counters_match_rows(db)

        # the gateway's rows: every number once
        assert query(db, "SELECT COUNT(*), COUNT(DISTINCT number), COUNT(DISTINCT platform_id) FROM messages"
                         " WHERE task_id=?", task_id) == [(N, N, N)]
        gateway_ids = {pid for (pid,) in query(db, "SELECT platform_id FROM messages WHERE task_id=?", task_id)}

        # the carrier's ground truth: every number submitted once, under the ids the gateway holds
        carrier_ids, numbers, cursor = [], set(), None
        while True:
            path = f"/api/v1/simulator/ground-truth?task_id={task_id}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, page = last.request("GET", path, token)
            assert status == 200, page
            for item in page["items"]:
                carrier_ids.append(item["platform_id"])
                numbers.add(item["number"])
                assert item["outcome"] == "delivered" and item["expected_result"] == "succeeded"
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(carrier_ids) == len(set(carrier_ids)) == len(numbers) == N
        assert set(carrier_ids) == gateway_ids
    finally:
        for server in servers:
            server.stop()


def test_any_instance_answers_and_the_virtual_clock_is_shared(tmp_path):
    db = db_target(tmp_path, "clock.db")
    token = create_token(db)
    env = {"SMSLAB_LEASE_SECONDS": LEASE}
    servers = [Server(db, "--clock", "virtual", env=env, log_path=tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        leader = wait_for(lambda: _leader(servers), what="a leader")
        follower = next(s for s in servers if s is not leader)
        _, before = leader.request("GET", "/api/v1/clock", token)
        # an advance sent to the instance that does not lead is done by the leader
        assert follower.request("POST", "/api/v1/clock/advance", None, {"seconds": 60})[0] == 401
        status, moved = follower.request("POST", "/api/v1/clock/advance", token, {"seconds": 72 * 3600})
        assert status == 200, moved
        assert leader.request("GET", "/api/v1/clock", token)[1]["now"] == moved["now"] != before["now"]
        assert follower.request("GET", "/api/v1/clock", token)[1]["now"] == moved["now"]
        # the carrier's profile, changed through either instance, is the one the leader's carrier uses
        status, profile = follower.request("PATCH", "/api/v1/simulator/profile", token, {"duplicate_rate": 0.25})
        assert status == 200 and profile["duplicate_rate"] == 0.25
        assert leader.request("GET", "/api/v1/simulator/profile", token)[1]["duplicate_rate"] == 0.25
        # bad input forwarded is refused by the leader, naming the field, and changes nothing
        status, error = follower.request("PATCH", "/api/v1/simulator/profile", token, {"duplicate_rate": 7})
        assert status == 400 and error["error"]["field"] == "duplicate_rate"
        assert leader.request("GET", "/api/v1/simulator/profile", token)[1]["duplicate_rate"] == 0.25
        # what the follower creates carries the shared time
        status, aud = follower.request("POST", "/api/v1/audiences?name=few", token, b"phone\n+8613800000001\n",
                                       content_type="text/csv")
        assert status == 201 and aud["created_at"] == moved["now"]
    finally:
        for server in servers:
            server.stop()
