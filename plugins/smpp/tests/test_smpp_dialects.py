"""End to end, for every receipt dialect preset of smslab's SMSC: a task sent by ``smslab serve``
through the ``smpp`` platform to ``smslab carrier --smpp-port`` (two processes on 127.0.0.1)
ends with exactly the counts the carrier's ground truth gives, every receipt matched (none kept
aside as unmatched), duplicates counted as such, and each number's segments equal to the parts
the SMSC counted.

One carrier and one gateway serve every preset: an SMSC account per preset with that dialect,
and per account a platform ``smpp-<preset>`` (``SMSLAB_SMPP_URL_<PRESET>``). The connections
differ in how long texts travel (UDH, SAR TLVs, ``message_payload``), in the bind (one
transceiver, or a transmitter and a receiver), in the alphabet (GSM 03.38, UCS-2) and one runs
over TLS, so that every combination the platform offers meets some dialect. The carrier runs on
the wall clock with receipts due at once, so that they race their ``submit_sm_resp``."""

from __future__ import annotations

import pytest

from gateway.wire.smpp.receipts import PRESETS
from smpp_gateway import FINAL, Gateway, expected_counts, sent_duplicates, truth_by_id, wait_for
from tests.smsc_support import Carrier

DIALECTS = list(PRESETS)
LONG_MODES = ["udh", "sar", "payload"]
TEXTS = [
    "Spring sale: 20% off everything in store and online this weekend only. Bring a friend, "
    "share the news, and enjoy free delivery on orders above 30 euros. Reply STOP to opt out",  # GSM, 2 parts with the signature
    "春季大促：全场八折，仅限本周末。欢迎带上朋友一起来，满三十欧元免运费。回复TD退订",  # UCS-2, 2 parts
]
NUMBERS = 40


def account_of(index: int) -> str:
    return f"d{index}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dialects")
    # the wall clock: receipts due at once go at once, before or after their submit_sm_resp as
    # the dialect says, while the gateway runs on its own virtual clock
    carrier = Carrier(tmp / "carrier", "--clock", "wall", accounts=())
    carrier.profile(seed=5, outcomes={"delivered": 0.75, "failed": 0.2, "missing": 0.05},
                    receipt_delay={"kind": "fixed", "seconds": 0}, moderation={"review_seconds": 0}, duplicate_rate=0.1)
    urls = {}
    for index, dialect in enumerate(DIALECTS):
        carrier.account(account_of(index), "pw", dialect=dialect)
        tls = index == 3
        port = carrier.tls_port if tls else carrier.smpp_port
        params = f"binds=1&window=10&long={LONG_MODES[index % 3]}" + ("&bind=tx%2Brx" if index % 4 == 1 else "")
        if tls:
            params += "&tls_verify=false"
        urls[dialect] = f"{'smpps' if tls else 'smpp'}://{account_of(index)}:pw@127.0.0.1:{port}?{params}"
    gateway = Gateway(tmp / "gateway", urls)
    yield carrier, gateway
    gateway.stop()
    carrier.stop()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_counts_equal_ground_truth(setup, dialect):
    carrier, gateway = setup
    index = DIALECTS.index(dialect)
    account = account_of(index)
    numbers = [f"+861391{index:02d}{i:05d}" for i in range(NUMBERS)]
    task_id = gateway.send(f"smpp-{dialect}", numbers, TEXTS[index % 2], name=dialect)
    gateway.sent(task_id)

    truth = carrier.ground_truth(account)
    assert sorted(item["destination"].lstrip("+") for item in truth) == sorted(n.lstrip("+") for n in numbers), \
        "the carrier got each number exactly once"
    want = expected_counts(truth)
    assert want["succeeded"] and want["failed"], f"the profile should give both outcomes: {want}"

    seen = {}

    def settled():
        task = seen["task"] = gateway.task(task_id)
        got = (task["succeeded"], task["failed"], task["pending"])
        # every receipt the carrier planned went out and was acknowledged (duplicates included)
        seen["truth"] = carrier.ground_truth(account)
        waiting = [r for item in seen["truth"] for r in item["receipts"]
                   if r["delivery"] not in ("sent", "swallowed") or r["acked_at"] is None and r["delivery"] == "sent"]
        if got == (want["succeeded"], want["failed"], want["receipt_timeout"]) and not waiting:
            return task
        return None

    task = wait_for(settled, 30, what=lambda: f"{dialect}: the counts to reach the ground truth {dict(want)}; {seen.get('task')}")
    assert task["duplicate_receipts"] == sent_duplicates(seen["truth"])
    unmatched = gateway.ok("GET", "/api/v1/receipts/unmatched")
    assert unmatched["total"] == 0, unmatched["items"][:3]

    # each number, from the gateway's own rows: the id the carrier gave, its result, its segments
    by_id = truth_by_id(truth)
    for number, result, parts, platform_id in gateway.rows(task_id):
        item = by_id[platform_id]
        assert item["destination"].lstrip("+") == number.lstrip("+")
        assert parts == item["parts"], f"{dialect}: smslab counts {parts} segments, the SMSC {item['parts']}"
        expected = item["expected_result"]
        assert result == ("pending" if expected == "receipt_timeout" else expected), (dialect, number, item)

    # past the 72-hour receipt timeout, the numbers without a receipt fail (SPEC §4)
    gateway.advance(73 * 3600)
    task = wait_for(lambda: (t := gateway.task(task_id))["pending"] == 0 and t, 30, what="the receipt timeout")
    assert (task["succeeded"], task["failed"]) == (want["succeeded"], want["failed"] + want["receipt_timeout"])
    for number, result, _parts, platform_id in gateway.rows(task_id):
        assert result == FINAL[by_id[platform_id]["expected_result"]]
