"""Leadership among instances sharing a PostgreSQL database (gateway/pipeline/leadership.py), with
real leases in a real database: one leader at a time, a dead leader's lease taken over within
the lease time, a leader that cannot renew steps down before its lease can run out."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.pipeline.leadership import LEASE_NAME, Leadership
from gateway.storage import open_storage
from tests.pg_support import enabled, fresh_database

pytestmark = pytest.mark.skipif(not enabled(), reason="leases live in PostgreSQL")

SECONDS = 0.5


class Instance:
    def __init__(self, storage, name: str):
        self.events: list[str] = []

        async def gain() -> None:
            self.events.append("gain")

        async def loss() -> None:
            self.events.append("loss")

        self.leadership = Leadership(storage.leases, storage.state, f"http://{name}", SECONDS, gain, loss, holder=name)


async def _until(check, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_one_leader_and_a_dead_leaders_work_taken_over_within_the_lease():
    async with fresh_database() as url:
        stores = [open_storage(url) for _ in range(3)]
        for s in stores:
            await s.open()
        instances = [Instance(s, f"i{n}") for n, s in enumerate(stores)]
        try:
            for i in instances:
                await i.leadership.start()
            await asyncio.sleep(SECONDS)  # several rounds: still exactly one leader
            leading = [i for i in instances if i.leadership.leading]
            assert len(leading) == 1 and leading[0].events == ["gain"]
            first = leading[0]
            assert await instances[2].leadership.leader_url() == first.leadership.url
            assert (await stores[0].leases.get(LEASE_NAME)).holder == first.leadership.holder

            # the leader dies: its loop stops, nothing is released
            first.leadership._task.cancel()
            took = await _until(lambda: any(i.leadership.leading for i in instances if i is not first))
            assert took < SECONDS  # SMSLAB_LEASE_SECONDS bounds the takeover
            assert len([i for i in instances if i is not first and i.leadership.leading]) == 1
        finally:
            for i in instances:
                await i.leadership.stop()
            for s in stores:
                await s.close()


async def test_a_leader_that_cannot_renew_steps_down_before_its_lease_runs_out():
    async with fresh_database() as url:
        storage = open_storage(url)
        await storage.open()
        one = Instance(storage, "one")
        try:
            await one.leadership.start()
            assert one.leadership.leading
            expires = (await storage.leases.get(LEASE_NAME)).expires_at

            async def unreachable(*args):
                raise OSError("the database is unreachable")

            storage.leases.renew = unreachable
            await _until(lambda: not one.leadership.leading)
            assert one.events == ["gain", "loss"]
            assert time.time() < expires  # stepped down while its lease still held: never two leaders
        finally:
            await one.leadership.stop()
            await storage.close()


async def test_a_stopped_leader_hands_over_at_once():
    async with fresh_database() as url:
        one_store, two_store = open_storage(url), open_storage(url)
        await one_store.open()
        await two_store.open()
        one, two = Instance(one_store, "one"), Instance(two_store, "two")
        try:
            await one.leadership.start()
            await two.leadership.start()
            assert one.leadership.leading and not two.leadership.leading
            await one.leadership.stop()  # released, not left to run out
            took = await _until(lambda: two.leadership.leading)
            assert took < SECONDS * 0.5
            assert await one.leadership.leader_url() == "http://two"
        finally:
            await two.leadership.stop()
            await one_store.close()
            await two_store.close()
