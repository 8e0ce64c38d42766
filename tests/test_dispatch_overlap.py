"""A platform that takes several batches of a task at once (``Platform.batches_in_flight``):
the next batch goes out before this one has returned, and the task's counts still come out
exactly as if the batches had gone one by one. Through the real service (create_app with the
platform registered by a throwaway plugin, an aiohttp test client, the virtual clock)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.auth import create_token
from gateway.hookspecs import hookimpl
from gateway.platform import PlatformError, SubmitItem, SubmitResult
from gateway.plugins import build_plugin_manager
from gateway.web.app import create_app
from gateway.web.keys import storage_key
from tests.conftest import make_config
from tests.counts import assert_counters_match_rows_of
from tests.test_plugin_hooks import EchoPlatform  # its receipts: each delivered a second after submission

START = 1_700_000_000.0
BATCH = 4


class WindowedPlatform(EchoPlatform):
    """Like an SMPP bind's window: a batch is answered only once the batches the platform lets
    the gateway overlap with it have arrived too (or after a wait: a gateway that did not overlap
    them shows in ``most_open``). A number whose last digits are a multiple of three is
    refused by the "SMSC"; every accepted one is delivered a second later (EchoPlatform)."""

    name = "windowed"
    description = "answers a batch once the next one arrived (a test platform)"

    def __init__(self, batches_in_flight: int, batches: int, fail_batch: int | None = None):
        self.batches_in_flight = batches_in_flight
        self.batches = batches  # the task's batches: the last ones have no successors to wait for
        self.fail_batch = fail_batch  # this batch (0-based) is refused as a whole, for good
        self.calls = 0
        self.open = 0
        self.most_open = 0
        self.arrived: list[asyncio.Event] = []
        super().__init__()

    def _arrival(self, index: int) -> asyncio.Event:
        while len(self.arrived) <= index:
            self.arrived.append(asyncio.Event())
        return self.arrived[index]

    async def submit(self, batch: list[SubmitItem]) -> list[SubmitResult]:
        index = self.calls
        self.calls += 1
        self._arrival(index).set()
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            if index == self.fail_batch:
                raise PlatformError("the SMSC refused the whole batch", retryable=False)
            # answered once as many batches as the platform allows are in; a gateway that never
            # sends them is caught by ``most_open`` after the wait gives up
            awaited = min(index + self.batches_in_flight - 1, self.batches - 1)
            try:
                await asyncio.wait_for(self._arrival(awaited).wait(), 5)
            except TimeoutError:
                pass
            now = self.ctx.clock.now()
            results = []
            for item in batch:
                if int(item.number[-4:]) % 3 == 0:
                    results.append(SubmitResult(item.key, None, "REFUSED", "every third number"))
                    continue
                pid = self.ids.setdefault(item.key, f"w-{item.key}")
                self.due.setdefault(pid, now + 1)
                results.append(SubmitResult(item.key, pid))
            return results
        finally:
            self.open -= 1


class Registers:
    def __init__(self, platform: WindowedPlatform):
        self.platform = platform

    @hookimpl
    def smslab_register_platforms(self, config):
        return [self.platform]


async def _run(aiohttp_client, tmp_path, platform: WindowedPlatform, numbers: list[str]) -> tuple[dict, object]:
    pm = build_plugin_manager()
    pm.register(Registers(platform))
    app = create_app(make_config(tmp_path, "t.db", clock_start=START, dispatch_batch=BATCH), pm=pm)
    client = await aiohttp_client(app)
    headers = {"Authorization": f"Bearer {await create_token(app[storage_key], 'w', START, admin=True)}"}

    async def call(method, path, json=None, status=200):
        resp = await client.request(method, path, json=json, headers=headers)
        data = await resp.json()
        assert resp.status == status, (resp.status, data)
        return data

    audience = await call("POST", "/api/v1/audiences", {"name": "aud", "numbers": numbers}, 201)
    task = await call("POST", "/api/v1/tasks", {
        "name": "t", "platform": "windowed", "signature": "smslab", "content": {"text": "hi"},
        "audience_id": audience["id"], "send_type": "immediate"}, 201)
    for _ in range(200):  # the dispatch runs in real time (the platform's waits); receipts on the virtual clock
        await call("POST", "/api/v1/clock/advance", {"seconds": 2})
        detail = await call("GET", f"/api/v1/tasks/{task['id']}")
        if detail["status"] in ("completed", "failed") and not detail["pending"]:
            break
        await asyncio.sleep(0.05)
    await assert_counters_match_rows_of(app[storage_key], START + 1000)
    return detail, app


# 14 valid numbers, one of them twice, and an invalid one: audience seqs 1..16, in batches of 4
NUMBERS = [f"+861380013{i:04d}" for i in range(1, 8)] + ["+8613800130003", "not a number"] + \
          [f"+861380013{i:04d}" for i in range(8, 15)]


def _expected(numbers: list[str]) -> tuple[int, int]:
    """(sent, refused) of these audience entries as the platform sees them: valid, first-seen
    numbers, those whose last digits are a multiple of three refused."""
    seen, sent, refused = set(), 0, 0
    for number in numbers:
        if not number.startswith("+") or number in seen:
            continue
        seen.add(number)
        if int(number[-4:]) % 3 == 0:
            refused += 1
        else:
            sent += 1
    return sent, refused


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_batches_overlap_as_the_platform_allows_and_counts_stay_exact(aiohttp_client, tmp_path, in_flight):
    platform = WindowedPlatform(in_flight, -(-len(NUMBERS) // BATCH))
    detail, _app = await _run(aiohttp_client, tmp_path, platform, NUMBERS)
    sent, refused = _expected(NUMBERS)
    assert (sent, refused) == (10, 4)
    assert detail["status"] == "completed", detail
    assert detail["sent"] == detail["succeeded"] == sent, detail
    assert {k: n for k, n in detail["skipped"].items() if n} == {"duplicate": 1, "invalid": 1, "refused": refused}, detail
    assert detail["audience_size"] == detail["sent"] + sum(detail["skipped"].values()) == len(NUMBERS)
    assert platform.calls == -(-len(NUMBERS) // BATCH)  # one submission per batch: nothing resubmitted
    assert platform.most_open == min(in_flight, platform.calls)


async def test_a_failed_batch_fails_the_task_with_the_batches_before_it_counted_as_sent(aiohttp_client, tmp_path):
    """Batch 2 of 4 is refused for good while batch 1 is still waiting for its answers: batch 1
    is recorded (its numbers were sent), batches 3 and 4 never go out, the task fails."""
    platform = WindowedPlatform(2, -(-len(NUMBERS) // BATCH), fail_batch=1)
    detail, _app = await _run(aiohttp_client, tmp_path, platform, NUMBERS)
    assert detail["status"] == "failed", detail
    assert "refused the submission" in detail["status_reason"], detail
    sent, refused = _expected(NUMBERS[:BATCH])  # the first batch: numbers 1..4, 3 refused by the "SMSC"
    assert (sent, refused) == (3, 1)
    assert detail["sent"] == detail["succeeded"] == sent, detail
    assert {k: n for k, n in detail["skipped"].items() if n} == {"refused": 1}, detail
    assert platform.calls == 2
