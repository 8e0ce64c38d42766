"""The ``twilio`` platform passes smslab's platform conformance suite against smslab's own
Twilio API: ``smslab carrier --twilio SID:TOKEN`` as a process on 127.0.0.1 with a virtual
clock that moves with the harness's (``advance_peers``). Status callbacks go to a small server
on 127.0.0.1 that answers 204 at once; ``collect`` hands what it took to ``parse_webhook`` (the
gateway's role) and then to the harness."""

from __future__ import annotations

import asyncio
import itertools
from urllib.parse import urlencode

import pytest

from gateway.testing.conformance import PlatformConformance
from smslab_twilio.platform import TwilioPlatform
from smslab_twilio.settings import Settings
from tests.twilio_support import CallbackServer, TwilioCarrier, account_sid

PROFILE = {
    "seed": 11,
    "outcomes": {"delivered": 0.8, "failed": 0.15, "missing": 0.05},
    "receipt_delay": {"kind": "uniform", "low": 0.5, "high": 300},
    "moderation": {"banned_words": ["lottery"], "review_seconds": 0},
    "duplicate_rate": 0,
}
_accounts = itertools.count(1)


@pytest.fixture(scope="module")
def carrier(tmp_path_factory):
    c = TwilioCarrier(tmp_path_factory.mktemp("twilio-conformance"), {})
    c.profile(**PROFILE)
    yield c
    c.stop()


@pytest.fixture
def hook():
    server = CallbackServer()
    yield server
    server.close()


class TestTwilioConformance(PlatformConformance):
    min_receipt_share = 0.8  # the profile loses 5 %
    batch_size = 40
    # a refused status callback is sent again 60/300/600 s later by the carrier; that path is
    # covered in tests/test_twilio_api.py, since the suite's hand-off test drives only on_clock
    redelivers_after_failed_handoff = False

    @pytest.fixture
    def platform_factory(self, carrier, hook):
        sid, token = account_sid(5000 + next(_accounts)), "conformance-token"
        carrier.twilio_account(sid, token)
        self.carrier, self.sid, self.hook = carrier, sid, hook
        settings = Settings(account_sid=sid, auth_token=token, sender="+15005550006", base_url=carrier.base,
                            callback_url=hook.url, timeout=10)
        return lambda: TwilioPlatform(settings)

    async def advance_peers(self, h, seconds: float) -> None:
        await asyncio.to_thread(self.carrier.advance, seconds)
        await asyncio.to_thread(self.carrier.settle, self.sid)

    async def collect(self, h, platform):
        """The suite's schedule, each step's callbacks through ``parse_webhook``; then the
        carrier's word: every final callback it says it delivered reached the harness."""
        taken = 0
        for step in self.receipt_schedule:
            await h.advance(step)
            calls = self.hook.calls[taken:]
            taken += len(calls)
            for url, params, headers in calls:
                receipts = platform.parse_webhook(headers, urlencode(params).encode(), h.clock.now())
                if receipts:
                    await h.deliver_receipts(platform.name, receipts)
        delivered = {item["sid"] for item in self.carrier.ground_truth(self.sid)
                     if any(r["delivery"] == "sent" for r in item["receipts"])}
        assert delivered, "the carrier says it delivered no receipt"
        received = {r.platform_id for r in h.receipts()}
        assert delivered <= received, f"callbacks the carrier delivered never reached the harness: {delivered - received}"
