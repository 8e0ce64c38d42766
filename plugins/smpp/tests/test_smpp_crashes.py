"""``kill -9`` of either side, mid-send, end to end (``smslab serve`` and ``smslab carrier
--smpp-port`` as processes on 127.0.0.1), checked against the carrier's ground truth.

SMPP has no idempotency key, so the platform promises a bound instead (its module docstring):
a number whose ``submit_sm_resp`` was written to the platform's store is never sent again; the
numbers in flight at a kill, or answered but not yet written, are sent again, at most
``2 × binds × window`` of them. Their first copies' receipts name ids the gateway never
recorded and are kept aside as unmatched: exactly those, and nothing else."""

from __future__ import annotations

from collections import Counter

import pytest

from smpp_gateway import Gateway, truth_by_id, wait_for
from tests.smsc_support import Carrier

BINDS, WINDOW = 2, 20
NUMBERS = 3000
PROFILE = dict(seed=9, outcomes={"delivered": 0.8, "failed": 0.15, "missing": 0.05},
               receipt_delay={"kind": "fixed", "seconds": 0}, moderation={"review_seconds": 0}, duplicate_rate=0)


@pytest.fixture
def carrier(tmp_path):
    # the wall clock: receipts go as soon as they are due, while the gateway is still sending;
    # the account's throughput limit keeps the send going for seconds (and throttles the platform)
    c = Carrier(tmp_path / "carrier", "--clock", "wall", accounts=())
    c.profile(**PROFILE)
    c.account("crash", "pw", throughput_limit=700)
    yield c
    c.stop()


@pytest.fixture
def gateway(tmp_path, carrier):
    url = (f"smpp://crash:pw@127.0.0.1:{carrier.smpp_port}?binds={BINDS}&window={WINDOW}"
           "&hold_receipts=2&reconnect_min=0.2&reconnect_max=1")
    # batches of 200: the task's sent count moves as each is recorded, so a kill lands mid-task
    # and the wall clock: the task sends while the test watches, and kills
    g = Gateway(tmp_path / "gateway", {"smpp": url}, env={"SMSLAB_DISPATCH_BATCH": "200"}, clock="wall")
    yield g
    g.stop()


def _numbers() -> list[str]:
    return [f"+8613700{i:06d}" for i in range(NUMBERS)]


def _settle_and_check(carrier: Carrier, gateway: Gateway, task_id: int, carrier_restarted: bool = False) -> dict:
    """Wait until the carrier delivered every receipt and the gateway shows what the ground truth
    says for the copy of each number it recorded; then check every number, and that the
    unmatched receipts are exactly those of the copies it did not record."""
    numbers = _numbers()
    truth = carrier.ground_truth("crash")
    copies = Counter(item["destination"].lstrip("+") for item in truth)
    assert set(copies) == {n.lstrip("+") for n in numbers}, "a number never reached the carrier"
    resent = len(truth) - NUMBERS
    assert resent <= 2 * BINDS * WINDOW, f"{resent} numbers were sent twice; the bound is {2 * BINDS * WINDOW}"

    by_id = truth_by_id(truth)
    rows = gateway.rows(task_id)
    assert len(rows) == NUMBERS and len({r[0] for r in rows}) == NUMBERS
    recorded = {platform_id for *_, platform_id in rows}
    assert recorded <= set(by_id), "the gateway recorded an id the carrier never gave"
    want = Counter(by_id[pid]["expected_result"] for pid in recorded)
    orphans = [item for pid, item in by_id.items() if pid not in recorded]
    assert len(orphans) == resent

    seen = {}

    def settled():
        task = seen["task"] = gateway.task(task_id)
        now_truth = carrier.ground_truth("crash")
        waiting = [r for item in now_truth for r in item["receipts"] if r["delivery"] not in ("sent", "swallowed")
                   or r["delivery"] == "sent" and r["acked_at"] is None]
        unmatched = gateway.ok("GET", "/api/v1/receipts/unmatched?limit=1")["total"]
        orphan_receipts = sum(1 for item in now_truth if normalised(item) not in recorded
                              for r in item["receipts"] if r["delivery"] == "sent")
        seen["state"] = (task["succeeded"], task["failed"], task["pending"], len(waiting), unmatched, orphan_receipts)
        seen["carrier"] = (carrier.api("GET", "/healthz")[1], carrier.api("GET", "/accounts/crash")[1],
                           Counter(r["delivery"] for item in now_truth for r in item["receipts"]))
        if (task["succeeded"], task["failed"], task["pending"]) == (want["succeeded"], want["failed"], want["receipt_timeout"]) \
                and not waiting and unmatched == orphan_receipts:
            return task
        return None

    task = wait_for(settled, 60, what=lambda: f"counts {dict(want)} and unmatched; (succeeded, failed, pending, "
                                             f"receipts not acknowledged, unmatched, orphans' receipts) = {seen.get('state')}; "
                                             f"the carrier: {seen.get('carrier')}")
    for number, result, _parts, platform_id in gateway.rows(task_id):
        expected = by_id[platform_id]["expected_result"]
        assert result == ("pending" if expected == "receipt_timeout" else expected), (number, by_id[platform_id])
    # a receipt counts twice only when the carrier sent it twice: committed by the gateway, and
    # the kill came before the acknowledgement reached the carrier
    final_truth = carrier.ground_truth("crash")
    sent_again = sum(max(0, r["attempts"] - 1) for item in final_truth if normalised(item) in recorded
                     for r in item["receipts"])
    if not carrier_restarted:  # a restarted carrier sends again what it had not written down as acknowledged
        assert task["duplicate_receipts"] <= sent_again, (task["duplicate_receipts"], sent_again)
    return {"resent": resent, "counts": dict(want), "duplicate_receipts": task["duplicate_receipts"],
            "receipts_sent_again": sent_again}


def normalised(item: dict) -> str:
    from gateway.wire.smpp.receipts import normalise_id

    return normalise_id(item["platform_id"], "auto", from_receipt=False)


def test_gateway_killed_mid_send(carrier, gateway):
    task_id = gateway.send("smpp", _numbers(), "Your code is 1234", name="crash")
    at_kill = wait_for(lambda: (t := gateway.task(task_id))["sent"] >= 600 and t, 60, interval=0.01,
                       what="the task to be under way")
    gateway.kill()
    assert at_kill["sent"] < NUMBERS, "the task ended before the kill: the test proved nothing"
    gateway.start()
    gateway.sent(task_id, timeout=120)
    outcome = _settle_and_check(carrier, gateway, task_id)
    print(f"gateway killed at {at_kill['sent']} sent: {outcome}")


def test_throttled_send_loses_and_repeats_nothing(carrier, gateway):
    """The account's throughput limit answers ESME_RTHROTTLED; the platform slows down and sends
    the same message again: every number reaches the carrier exactly once."""
    task_id = gateway.send("smpp", _numbers(), "Your code is 1234", name="throttled")
    gateway.sent(task_id, timeout=120)
    outcome = _settle_and_check(carrier, gateway, task_id)
    assert outcome["resent"] == 0 and outcome["receipts_sent_again"] == 0 and outcome["duplicate_receipts"] == 0
    smpp = next(p for p in gateway.ok("GET", "/api/v1/platforms")["items"] if p["name"] == "smpp")
    assert smpp["counters"]["throttled"] > 0, "the carrier never throttled: the test proved nothing"


def test_smsc_killed_mid_send(carrier, gateway):
    task_id = gateway.send("smpp", _numbers(), "Your code is 1234", name="crash")
    wait_for(lambda: gateway.task(task_id)["sent"] >= 600, 60, interval=0.01, what="the task to be under way")
    carrier.kill()
    before = gateway.task(task_id)
    assert before["sent"] < NUMBERS, "the task ended before the kill: the test proved nothing"
    carrier.start()
    gateway.sent(task_id, timeout=120)
    outcome = _settle_and_check(carrier, gateway, task_id, carrier_restarted=True)
    print(f"SMSC killed at {before['sent']} sent: {outcome}")
    smpp = next(p for p in gateway.ok("GET", "/api/v1/platforms")["items"] if p["name"] == "smpp")
    assert all(s["state"] == "bound" for s in smpp["sessions"]), smpp["sessions"]
