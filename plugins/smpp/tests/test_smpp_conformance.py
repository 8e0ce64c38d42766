"""The ``smpp`` platform passes smslab's platform conformance suite against smslab's own SMSC:
``smslab carrier --smpp-port`` as a process on 127.0.0.1, with a virtual clock that the harness
moves along with its own (``advance_peers``), and every receipt arriving over the socket as
``deliver_sm``, acknowledged only after the harness took it."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest

from gateway.testing.conformance import PlatformConformance
from gateway.wire.smpp.receipts import normalise_id
from smslab_smpp.platform import SmppPlatform
from smslab_smpp.settings import Settings
from tests.smsc_support import TOKEN, Carrier

PROFILE = {
    "seed": 11,
    "outcomes": {"delivered": 0.8, "failed": 0.15, "missing": 0.05},
    "receipt_delay": {"kind": "uniform", "low": 0.5, "high": 300},
    "moderation": {"banned_words": ["lottery"], "review_seconds": 0},
    "duplicate_rate": 0,
}
_accounts = itertools.count(1)


@pytest.fixture(scope="module")
def smsc(tmp_path_factory):
    carrier = Carrier(tmp_path_factory.mktemp("smsc"), accounts=())
    carrier.profile(**PROFILE)
    yield carrier
    carrier.stop()


async def settle(base: str, account: str, deadline: float) -> None:
    """Until the carrier has nothing due for the account that is not yet acknowledged (its
    ``/clock/advance`` returns once what fell due is in its outbox), or the deadline passed: a
    receipt the platform refused waits for a later time, which is one test's point."""
    end = time.monotonic() + deadline
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        while time.monotonic() < end:
            async with s.get(f"{base}/accounts/{account}") as resp:
                busy = (await resp.json())["outbox"]["busy"]
            if busy == 0:
                return
            await asyncio.sleep(0.02)


class TestSmppConformance(PlatformConformance):
    min_receipt_share = 0.8  # the profile loses 5 %: 40 messages may lose 5 (collect checks each against the carrier)
    batch_size = 40

    @pytest.fixture
    def platform_factory(self, smsc):
        account = f"conf{next(_accounts)}"
        smsc.account(account, "pw")
        self.smsc, self.account = smsc, account
        url = f"smpp://{account}:pw@127.0.0.1:{smsc.smpp_port}?binds=2&window=10&timeout=10&connect_wait=10"
        return lambda: SmppPlatform(Settings.from_url(url))

    async def advance_peers(self, h, seconds: float) -> None:
        async with aiohttp.ClientSession() as s:
            async with s.post(self.smsc.base + "/clock/advance", json={"seconds": seconds},
                              headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200, await resp.text()
        await settle(self.smsc.base, self.account, deadline=5.0)

    async def collect(self, h, platform):
        """The suite's schedule, then the carrier's word: every receipt it says it delivered
        (acknowledged) reached the harness, under the id submit returned, for its part."""
        await super().collect(h, platform)
        delivered = set()
        for item in self.smsc.ground_truth(self.account):
            for receipt in item["receipts"]:
                if receipt["delivery"] == "sent":
                    part = receipt["part"] if item["parts"] > 1 else None
                    delivered.add((normalise_id(item["platform_id"], "auto", from_receipt=False), part))
        assert delivered, "the carrier says it delivered no receipt"
        received = {(r.platform_id, r.part) for r in h.receipts()}
        assert delivered <= received, f"receipts the carrier delivered never reached the harness: {delivered - received}"
