"""Replies over SMPP, end to end: a handset answers a campaign (the carrier's ``POST /mo`` makes
the SMSC send a mobile-originated ``deliver_sm``), the ``smpp`` platform files it under the
workspace that sent to that number, the gateway stores it (``GET /api/v1/inbound``), a ``STOP``
puts the number on the workspace's opt-out list, and the next task skips it as ``opted_out``:
the carrier never sees that number again."""

from __future__ import annotations

import pytest

from smpp_gateway import Gateway, wait_for
from tests.smsc_support import Carrier

NUMBERS = [f"+8613655{i:06d}" for i in range(6)]


@pytest.fixture
def pair(tmp_path):
    carrier = Carrier(tmp_path / "carrier", accounts=())
    carrier.profile(seed=2, outcomes={"delivered": 1, "failed": 0, "missing": 0},
                    receipt_delay={"kind": "fixed", "seconds": 0}, moderation={"review_seconds": 0})
    carrier.account("shop", "pw")
    gateway = Gateway(tmp_path / "gateway", {"smpp": f"smpp://shop:pw@127.0.0.1:{carrier.smpp_port}?binds=1&window=10"})
    yield carrier, gateway
    gateway.stop()
    carrier.stop()


def reply(carrier: Carrier, sender: str, text: str) -> None:
    status, body = carrier.api("POST", "/mo", {"account": "shop", "from": sender, "to": "smslab", "text": text})
    assert status == 201, body


def test_stop_reply_keeps_the_number_out_of_the_next_task(pair):
    carrier, gateway = pair
    first = gateway.send("smpp", NUMBERS, "Spring sale: 20% off", name="first")
    gateway.sent(first)

    reply(carrier, NUMBERS[2], "STOP")
    reply(carrier, NUMBERS[3], "When does the sale end?")
    reply(carrier, "+8613999999999", "who is this?")  # nobody sent to it: no workspace's reply

    inbound = wait_for(lambda: (page := gateway.ok("GET", "/api/v1/inbound"))["total"] == 3 and page, 20,
                       what="three replies stored")
    by_sender = {item["sender"]: item for item in inbound["items"]}
    assert by_sender[NUMBERS[2]]["opted_out"] is True and by_sender[NUMBERS[2]]["text"] == "STOP"
    assert by_sender[NUMBERS[3]]["opted_out"] is False and by_sender[NUMBERS[3]]["text"] == "When does the sale end?"
    assert by_sender[NUMBERS[2]]["platform"] == "smpp"
    assert by_sender[NUMBERS[2]]["workspace_id"] == by_sender[NUMBERS[3]]["workspace_id"] is not None
    assert by_sender["+8613999999999"]["workspace_id"] is None and by_sender["+8613999999999"]["opted_out"] is False
    # every reply was acknowledged: the carrier has nothing left to send
    assert carrier.api("GET", "/accounts/shop")[1]["outbox"]["open"] == 0

    opt_outs = gateway.ok("GET", "/api/v1/opt-outs")
    assert [o["number"] for o in opt_outs["items"]] == [NUMBERS[2]]

    second = gateway.send("smpp", NUMBERS, "Last day of the sale", name="second")
    task = gateway.sent(second)
    assert task["skipped"]["opted_out"] == 1
    assert task["sent"] == len(NUMBERS) - 1
    assert task["audience_size"] == task["sent"] + sum(task["skipped"].values())
    truth = carrier.ground_truth("shop")
    per_number = {}
    for item in truth:
        per_number[item["destination"].lstrip("+")] = per_number.get(item["destination"].lstrip("+"), 0) + 1
    assert per_number[NUMBERS[2].lstrip("+")] == 1, "the opted-out number was sent the second campaign"
    assert all(per_number[n.lstrip("+")] == 2 for n in NUMBERS if n != NUMBERS[2])
