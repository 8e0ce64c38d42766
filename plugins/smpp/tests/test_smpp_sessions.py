"""Sessions and submission, the platform on its own (the conformance harness as its gateway)
against ``smslab carrier --smpp-port`` on 127.0.0.1, read back from the carrier's PDU journal:
what went over the wire, not what the platform says it did."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from gateway.domain.segments import segment
from gateway.testing.conformance import make_batch, open_harness
from gateway.wire.smpp.text import pdu_text
from smslab_smpp.platform import SmppPlatform
from smslab_smpp.settings import Settings
from tests.smsc_support import Carrier

_accounts = itertools.count(1)


@pytest.fixture(scope="module")
def smsc(tmp_path_factory):
    carrier = Carrier(tmp_path_factory.mktemp("smsc"), "--clock", "wall", accounts=())
    carrier.profile(seed=4, outcomes={"delivered": 1, "failed": 0, "missing": 0},
                    receipt_delay={"kind": "fixed", "seconds": 0}, moderation={"review_seconds": 0},
                    session={"enquire_link_interval": 0.3, "enquire_link_timeout": 2})
    yield carrier
    carrier.stop()


@pytest.fixture
def account(smsc):
    name = f"s{next(_accounts)}"
    smsc.account(name, "pw")
    return name


def journal(smsc: Carrier, account: str, command: str | None = None) -> list[dict]:
    query = f"/journal?account={account}&limit=1000" + (f"&command={command}" if command else "")
    status, page = smsc.api("GET", query)
    assert status == 200, page
    return page["items"]


def platform(smsc: Carrier, account: str, **params) -> SmppPlatform:
    query = "&".join(f"{k}={v}" for k, v in {"binds": 1, "window": 10, **params}.items())
    return SmppPlatform(Settings.from_url(f"smpp://{account}:pw@127.0.0.1:{smsc.smpp_port}?{query}"))


def run(tmp_path, scenario):
    async def main():
        async with open_harness(tmp_path / "harness") as h:
            await scenario(h)

    asyncio.run(main())


def test_enquire_link_both_ways_and_a_clean_unbind(smsc, account, tmp_path):
    async def scenario(h):
        p = await h.start(platform(smsc, account, enquire_link=0.3))
        await asyncio.sleep(1.2)  # real seconds: the sessions' keep-alive runs on real time
        assert p.sessions[0].state == "bound"
        await h.stop(p)

    run(tmp_path, scenario)
    entries = journal(smsc, account)
    ours = [e for e in entries if e["direction"] == "in" and e["command"] == "enquire_link"]
    theirs = [e for e in entries if e["direction"] == "out" and e["command"] == "enquire_link"]
    answered = [e for e in entries if e["direction"] == "in" and e["command"] == "enquire_link_resp"]
    assert ours, "the platform never sent an enquire_link"
    assert theirs and len(answered) >= len(theirs) - 1, "the platform did not answer the SMSC's enquire_link"
    assert not [e for e in entries if e["command"] == "drop"]
    assert any(e["command"] == "unbind" and e["direction"] == "in" for e in entries), "no unbind at shutdown"
    assert any(e["command"] == "unbind_resp" and e["direction"] == "out" for e in entries)


def test_tx_rx_binds(smsc, account, tmp_path):
    async def scenario(h):
        p = await h.start(platform(smsc, account, binds=2, bind="tx%2Brx"))
        for _ in range(200):  # each bind's password check takes the SMSC ~60 ms
            if all(s.state == "bound" for s in p.sessions):
                break
            await asyncio.sleep(0.02)
        await p.submit(make_batch(4))
        assert sorted(s.mode for s in p.sessions) == ["rx", "rx", "tx", "tx"]
        await h.stop(p)

    run(tmp_path, scenario)
    # (a bind request is journaled before it names its account; the SMSC's answers name it)
    binds = [e["command"] for e in journal(smsc, account) if e["direction"] == "out" and e["command"].startswith("bind_")]
    assert sorted(binds) == ["bind_receiver_resp", "bind_receiver_resp", "bind_transmitter_resp", "bind_transmitter_resp"]


@pytest.mark.parametrize("long", ["udh", "sar", "payload"])
@pytest.mark.parametrize("text", ["Hello " * 40, "春季大促，全场八折。" * 12, "Short and GSM: €10"])
def test_what_goes_over_the_wire(smsc, account, tmp_path, long, text):
    """data_coding, registered_delivery, the long-message method, and as many parts as smslab bills."""
    async def scenario(h):
        p = await h.start(platform(smsc, account, long=long, registered_delivery=1))
        results = await p.submit(make_batch(2, text=text))
        assert all(r.platform_id for r in results)
        await h.stop(p)

    run(tmp_path, scenario)
    submits = [e for e in journal(smsc, account, "submit_sm") if e["direction"] == "in"]
    billed = segment(text)
    per_number = billed.parts if long != "payload" else 1
    assert len(submits) == 2 * per_number
    for entry in submits:
        fields, tlvs = entry["fields"], entry["tlvs"]
        assert fields["registered_delivery"] == 1
        assert fields["data_coding"] == (8 if billed.encoding == "UCS-2" else 0)
        if billed.parts > 1 and long == "udh":
            assert fields["esm_class"] & 0x40
        if billed.parts > 1 and long == "sar":
            assert tlvs["sar_total_segments"] == billed.parts
        if long == "payload":
            assert "message_payload" in tlvs and not fields.get("short_message")
    truth = smsc.ground_truth(account)
    assert [item["parts"] for item in truth] == [billed.parts] * 2, "the SMSC counts other parts than smslab bills"


class _StalledStore:
    """The platform's real store, with its writes held until ``release`` is set: a slow disk,
    or a writer busy with a large record."""

    def __init__(self, store):
        self.store = store
        self.release = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def put_many(self, items):
        await self.release.wait()
        await self.store.put_many(items)


def test_answers_the_store_has_not_taken_hold_back_the_window(smsc, account, tmp_path):
    """The crash bound (a kill sends at most 2 × binds × window numbers again: those in flight
    and those answered but not written) holds when the store falls behind: with its writes
    stalled, no more than that goes over the wire, and all of it once the store catches up."""
    binds, window = 2, 5

    async def scenario(h):
        p = await h.start(platform(smsc, account, binds=binds, window=window))
        stalled = _StalledStore(p.ctx.store)
        p.ctx.store = stalled
        job = asyncio.ensure_future(p.submit(make_batch(60)))
        await asyncio.sleep(1.0)  # the SMSC answers a window in milliseconds: without the bound all 60 go
        sent_while_stalled = len([e for e in journal(smsc, account, "submit_sm") if e["direction"] == "in"])
        stalled.release.set()
        results = await asyncio.wait_for(job, 30)
        assert all(r.platform_id for r in results)
        await h.stop(p)
        return sent_while_stalled

    sent = []

    async def recording(h):
        sent.append(await scenario(h))

    run(tmp_path, recording)
    assert binds * window <= sent[0] <= 2 * binds * window, sent
    submits = [e for e in journal(smsc, account, "submit_sm") if e["direction"] == "in"]
    assert len(submits) == 60 and len(smsc.ground_truth(account)) == 60


def test_receipts_that_overtake_submit_wait_until_it_returned(smsc, account, tmp_path):
    """The gateway records a batch only once ``submit`` returned; a receipt handed to it before
    finds no message and takes the long way (kept aside, taken back at the record). So the
    receipts of a batch still being submitted wait in the platform: with the store's writes
    held (``submit`` cannot return), the SMSC has sent the receipts, yet none reached the
    gateway and none was answered; once ``submit`` returns, all of them, each then answered."""

    async def scenario(h):
        p = await h.start(platform(smsc, account, binds=1, window=5))
        stalled = _StalledStore(p.ctx.store)
        p.ctx.store = stalled
        job = asyncio.ensure_future(p.submit(make_batch(5)))
        try:
            deadline = time.monotonic() + 10
            while len([e for e in journal(smsc, account, "deliver_sm") if e["direction"] == "out"]) < 5:
                assert time.monotonic() < deadline, "the SMSC sent no receipts"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert not job.done()
            assert h.received == []
            assert [e for e in journal(smsc, account, "deliver_sm_resp") if e["direction"] == "in"] == []
        finally:
            stalled.release.set()
        results = await asyncio.wait_for(job, 30)
        deadline = time.monotonic() + 10
        while len(h.received) < 5:
            assert time.monotonic() < deadline, h.received
            await asyncio.sleep(0.05)
        assert sorted(r.platform_id for _, r, _ in h.received) == sorted(r.platform_id for r in results)
        while len([e for e in journal(smsc, account, "deliver_sm_resp") if e["direction"] == "in"]) < 5:
            assert time.monotonic() < deadline, "the receipts were not answered"
            await asyncio.sleep(0.05)
        await h.stop(p)

    run(tmp_path, scenario)


def test_reconnects_with_growing_jittered_backoff(tmp_path):
    """An SMSC that accepts and drops every connection: the attempts come further and further
    apart, up to reconnect_max, never in lockstep."""
    attempts: list[float] = []

    async def main():
        async def refuse(reader, writer):
            attempts.append(time.monotonic())
            writer.close()

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings.from_url(f"smpp://x:pw@127.0.0.1:{port}?reconnect_min=0.05&reconnect_max=0.4&connect_wait=0.1")
        async with open_harness(tmp_path / "harness") as h:
            p = await h.start(SmppPlatform(settings))
            await asyncio.sleep(2.5)
            await h.stop(p)
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(gaps) >= 5, attempts
    assert gaps[0] < 0.1 and max(gaps) <= 0.4 + 0.05, gaps  # starts at reconnect_min, capped at reconnect_max
    assert gaps[3] > gaps[0], gaps  # it grows
    assert len({round(g, 3) for g in gaps[-3:]}) > 1, gaps  # jitter: the capped waits differ
