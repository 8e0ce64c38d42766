"""End to end: ``smslab serve`` with the aliyun platform and ``smslab carrier --aliyun`` as two
processes on 127.0.0.1. A task is sent through SendSms (numbers batched per request), the
carrier pushes SmsReport arrays to the plugin's secret path, and the task's counts end up what
the carrier's ground truth says; a reply comes in as SmsUp."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from smpp_gateway import Gateway, wait_for
from tests.smsc_support import Carrier

KEY, SECRET, TOKEN = "LTAIend2end00001", "e2e-secret", "e2e-push-token"
NUMBERS = [f"+86137{i:08d}" for i in range(300)] + ["+85291234567", "+12025550123"]
PROFILE = dict(seed=4, outcomes={"delivered": 0.8, "failed": 0.15, "missing": 0.05},
               receipt_delay={"kind": "uniform", "low": 1, "high": 600}, moderation={"review_seconds": 0}, duplicate_rate=0)


@pytest.fixture
def pair(tmp_path):
    carrier = Carrier(tmp_path / "carrier", "--aliyun", f"{KEY}:{SECRET}", "--clock-start", str(int(time.time())),
                      accounts=())
    carrier.profile(**PROFILE)
    gateway = Gateway(tmp_path / "gateway", {}, env={
        "SMSLAB_ALIYUN_ACCESS_KEY_ID": KEY, "SMSLAB_ALIYUN_ACCESS_KEY_SECRET": SECRET,
        "SMSLAB_ALIYUN_ENDPOINT": carrier.base, "SMSLAB_ALIYUN_REPORT_TOKEN": TOKEN,
        "SMSLAB_ALIYUN_BATCH": "120", "SMSLAB_DISPATCH_BATCH": "200"})
    report_url = f"{gateway.server.base}/api/v1/platforms/aliyun/{TOKEN}/receipts"
    carrier.account(KEY, SECRET, protocol="aliyun", extra={"report_url": report_url})
    yield carrier, gateway
    gateway.stop()
    carrier.stop()


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_task_counts_equal_ground_truth(pair):
    carrier, gateway = pair
    task_id = gateway.send("aliyun", NUMBERS, "Your code is 1234")
    gateway.sent(task_id)
    status, truth = carrier.api("GET", f"/ground-truth?account={KEY}&limit=1000")
    items = truth["items"]
    assert len(items) == len(NUMBERS), "every number reached the carrier once"
    assert len({i["biz_id"] for i in items}) == 3, "numbers were batched: 120 + 120 + 62 per SendSms"
    assert {i["content"] for i in items} == {"【Shop】Your code is 1234"}
    by_id = {i["platform_id"]: i for i in items}
    rows = gateway.rows(task_id)
    assert {pid for *_, pid in rows} == set(by_id), "the gateway's platform ids are the carrier's"
    assert {i["destination"] for i in items} == set(NUMBERS)

    carrier.advance(700)  # every report falls due and is pushed to the gateway
    want = {"succeeded": 0, "failed": 0, "receipt_timeout": 0}
    for item in items:
        want[item["expected_result"]] += 1
    assert want["succeeded"] and want["failed"] and want["receipt_timeout"], want

    def settled():
        task = gateway.task(task_id)
        counts = (task["succeeded"], task["failed"], task["pending"])
        return task if counts == (want["succeeded"], want["failed"], want["receipt_timeout"]) else None

    wait_for(settled, 30, what=lambda: f"counts {want}; the task: {gateway.task(task_id)}")
    for number, result, _parts, pid in gateway.rows(task_id):
        expected = by_id[pid]["expected_result"]
        assert result == ("pending" if expected == "receipt_timeout" else expected), (number, by_id[pid])

    def all_acknowledged():  # polled: the carrier's outbox writes final receipts in the background
        truth = carrier.api("GET", f"/ground-truth?account={KEY}&limit=1000")[1]["items"]
        return all(r["delivery"] == "sent" and r["attempts"] == 1 for i in truth for r in i["receipts"])

    wait_for(all_acknowledged, 20, what="every report acknowledged by the gateway at the first push")


def test_push_path_token_and_replies(pair):
    carrier, gateway = pair
    base = gateway.server.base
    report = b'[{"phone_number": "13700000001", "success": true, "biz_id": "1^0", "report_time": "2024-05-01 18:00:00"}]'
    assert _post(f"{base}/api/v1/platforms/aliyun/wrong-token/receipts", report) == 401
    assert _post(f"{base}/api/v1/platforms/nosuch/{TOKEN}/receipts", report) == 401
    assert _post(f"{base}/api/v1/platforms/aliyun/receipts", report) == 401  # the plain route needs the token
    assert _post(f"{base}/api/v1/platforms/aliyun/receipts?token=wrong-token", report) == 401
    assert _post(f"{base}/api/v1/platforms/aliyun/receipts?token={TOKEN}", b"not json") == 400
    # the token in the query works as well as in the path: a report for an id the gateway never sent
    # is committed (kept aside as unmatched) and acknowledged as Alibaba expects
    assert _post(f"{base}/api/v1/platforms/aliyun/receipts?token={TOKEN}", report) == 200
    assert _post(f"{base}/api/v1/platforms/aliyun/{TOKEN}/receipts", b"not json") == 400
    status, body = carrier.api("POST", "/mo", {"account": KEY, "from": "+8613700000042", "to": "106", "text": "TD"})
    assert status == 201, body

    def arrived():
        items = gateway.ok("GET", "/api/v1/inbound")["items"]
        return [m for m in items if m["text"] == "TD"]

    got = wait_for(arrived, 30, what="the reply")
    assert got[0]["sender"] == "+8613700000042"
    journal = carrier.api("GET", f"/journal?account={KEY}&command=SmsUp")[1]["items"]
    assert journal and journal[-1]["error"] is None
