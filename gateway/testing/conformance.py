"""The platform conformance suite: proves that a Platform honours the contract the gateway
relies on (see docs/plugins.md, "Running the conformance suite").

Use it from a platform plugin's own tests by subclassing :class:`PlatformConformance` and
providing a ``platform_factory`` fixture that returns a callable making a *fresh* Platform::

    import pytest
    from gateway.testing.conformance import PlatformConformance
    from smslab_acme.platform import AcmePlatform

    class TestAcmeConformance(PlatformConformance):
        @pytest.fixture
        def platform_factory(self):
            return AcmePlatform

Every test runs its scenario in its own event loop (``asyncio.run``), so the suite needs no
asyncio pytest plugin and works whatever ``asyncio_mode`` the plugin's project uses. The
platform is started with a :class:`Harness`: a PlatformContext lent by a fake gateway with a
real storage (a fresh SQLite file, migrations applied; or, when ``SMSLAB_TEST_DB`` or
``--smslab-db`` names a ``postgresql://`` server, a fresh database there, dropped afterwards), a
:class:`gateway.clock.VirtualClock` and a ``deliver_receipts`` that records what it is given.
Time only moves when a test advances the virtual clock; the harness then calls
``await platform.on_clock(now)``, exactly like the gateway's engine. Nothing sleeps.

The module is also a pytest plugin: ``pytest_plugins = ["gateway.testing.conformance"]`` in a
``conftest.py`` gives the ``smslab_harness`` fixture, for a plugin's own scenario tests.

Class attributes tune the suite for platforms that legitimately differ (see
:class:`PlatformConformance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import msgspec
import pytest

from gateway.clock import VirtualClock
from gateway.config import Config
from gateway.platform import Platform, PlatformContext, PlatformError, Receipt, SubmitItem, SubmitResult, WebhookRejected
from gateway.storage import is_postgres, open_storage

__all__ = [
    "START",
    "DeliveryFailed",
    "Harness",
    "PlatformConformance",
    "make_batch",
    "open_harness",
]

START = 1_700_000_000.0  # the virtual clock's first instant: 2023-11-14T22:13:20Z
_batch_ids = itertools.count(1)


class DeliveryFailed(RuntimeError):
    """Raised by the harness's ``deliver_receipts`` when a test asked it to fail: the gateway
    could not commit the receipts, so the platform must offer them again later."""


def make_batch(count: int, *, task_id: int | None = None, parts: int = 1, text: str = "Your code is 1234 【smslab】",
               first_number: int = 13800000001) -> list[SubmitItem]:
    """``count`` SubmitItems with distinct keys and numbers, as the dispatcher makes them."""
    task = next(_batch_ids) if task_id is None else task_id
    return [
        SubmitItem(key=f"{task}-{i + 1}", task_id=task, number=f"+86{first_number + i}", text=text, parts=parts)
        for i in range(count)
    ]


class Harness:
    """A fake gateway for one platform: clock, database, receipt recorder.

    ``received`` lists ``(platform_name, receipt, clock_now)`` for every receipt accepted by
    ``deliver_receipts``; ``fail_deliveries`` makes the next N calls raise DeliveryFailed."""

    def __init__(self, directory: str | Path, *, start: float = START, config: Config | None = None,
                 extras: dict[str, Any] | None = None):
        self.directory = Path(directory)
        self.clock = VirtualClock(start)
        self.config = config or Config(db_path=_harness_db(self.directory), clock="virtual", clock_start=start)
        self.storage: Any = None
        self.database: Any = None  # the storage's own database object (PlatformContext.database), once open
        self._server: Any = None  # a PostgreSQL server the harness made a database on, dropped at close
        self.extras = dict(extras or {})
        self.received: list[tuple[str, Receipt, float]] = []
        self.inbound: list[tuple[str, Any, int | None]] = []  # (platform, InboundMessage, workspace)
        self.refused: list[tuple[str, Receipt]] = []
        self.fail_deliveries = 0
        self.platforms: list[Platform] = []
        # moved along with the virtual clock, before the platforms hear of it: other clocks the
        # platform depends on (a carrier's, over its control API), each ``await f(seconds)``
        self.on_advance: list[Callable[[float], Awaitable[None]]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        target = self.config.db_path
        if is_postgres(target) and target == os.environ.get(_DB_VARIABLE):
            # the server the run names, not a database to share: a fresh one for this harness
            from gateway.testing.pytest_plugin import PostgresDatabase

            self._server = PostgresDatabase(target)
            await asyncio.to_thread(self._server.create)
            self.config = dataclasses.replace(self.config, db_path=self._server.url)
        self.storage = open_storage(self.config.db_path)
        await self.storage.open()
        self.database = self.storage.db

    async def close(self) -> None:
        try:
            for platform in reversed(self.platforms):
                await platform.stop()
            self.platforms.clear()
            if self.storage is not None:
                await self.storage.close()
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.drop)

    def context(self, name: str = "platform") -> PlatformContext:
        return PlatformContext(clock=self.clock, database=self.database, deliver_receipts=self.deliver_receipts,
                               config=self.config, extras=self.extras, deliver_inbound=self.deliver_inbound,
                               store=self.storage.platform_store(name))

    async def start(self, platform: Platform) -> Platform:
        await platform.start(self.context(platform.name))
        self.platforms.append(platform)
        return platform

    async def stop(self, platform: Platform) -> None:
        await platform.stop()
        self.platforms.remove(platform)

    # -- the gateway side of the contract --------------------------------------------------------
    async def deliver_receipts(self, platform_name: str, receipts: list[Receipt]) -> None:
        if self.fail_deliveries > 0:
            self.fail_deliveries -= 1
            self.refused += [(platform_name, r) for r in receipts]
            raise DeliveryFailed("the gateway could not commit these receipts (simulated by the conformance suite)")
        if not isinstance(receipts, list):
            raise TypeError(f"deliver_receipts takes a list of Receipt, not {type(receipts).__name__}")
        now = self.clock.now()
        for receipt in receipts:
            if not isinstance(receipt, Receipt):
                raise TypeError(f"deliver_receipts takes gateway.platform.Receipt objects, not {type(receipt).__name__}")
            self.received.append((platform_name, receipt, now))

    async def deliver_inbound(self, platform_name: str, messages: list, workspace_id: int | None) -> None:
        self.inbound += [(platform_name, m, workspace_id) for m in messages]

    async def advance(self, seconds: float) -> float:
        """Move the virtual clock and let every started platform emit what fell due."""
        now = self.clock.advance(seconds)
        for follow in self.on_advance:
            await follow(seconds)
        for platform in list(self.platforms):
            await platform.on_clock(now)
        return now

    async def advance_through(self, schedule: list[float]) -> float:
        now = self.clock.now()
        for step in schedule:
            now = await self.advance(step)
        return now

    # -- looking at what arrived ------------------------------------------------------------------
    def receipts(self, platform_name: str | None = None) -> list[Receipt]:
        return [r for name, r, _ in self.received if platform_name is None or name == platform_name]

    def receipts_by_id(self) -> dict[str, list[Receipt]]:
        out: dict[str, list[Receipt]] = {}
        for _, receipt, _ in self.received:
            out.setdefault(receipt.platform_id, []).append(receipt)
        return out


_DB_VARIABLE = "SMSLAB_TEST_DB"


def _harness_db(directory: Path) -> str:
    """A ``postgresql://`` server named by ``SMSLAB_TEST_DB`` (set from ``--smslab-db`` too), else
    a SQLite file in the harness's folder."""
    named = os.environ.get(_DB_VARIABLE, "")
    return named if is_postgres(named) else str(directory / "conformance.db")


@contextlib.asynccontextmanager
async def open_harness(directory: str | Path, **kwargs: Any) -> AsyncIterator[Harness]:
    """``async with open_harness(tmp_path) as h: platform = await h.start(MyPlatform())``."""
    harness = Harness(directory, **kwargs)
    try:
        await harness.open()
        yield harness
    finally:
        await harness.close()


@pytest.fixture
def smslab_harness(tmp_path):
    """For async tests of a plugin's own: ``async with smslab_harness() as h: ...``."""
    counter = itertools.count()

    def factory(**kwargs: Any):
        return open_harness(tmp_path / f"harness-{next(counter)}", **kwargs)

    return factory


async def _make(factory: Callable[[], Platform | Awaitable[Platform]]) -> Platform:
    platform = factory()
    if inspect.isawaitable(platform):
        platform = await platform
    assert isinstance(platform, Platform), (
        f"platform_factory must return a gateway.platform.Platform instance, got {type(platform).__name__}"
    )
    return platform


def _check_results(batch: list[SubmitItem], results: Any) -> list[SubmitResult]:
    assert isinstance(results, list), f"submit must return a list of SubmitResult, got {type(results).__name__}"
    assert len(results) == len(batch), f"submit returned {len(results)} results for {len(batch)} items"
    for r in results:
        assert isinstance(r, SubmitResult), f"submit must return SubmitResult objects, got {type(r).__name__}"
        if r.platform_id is None:
            assert r.error_code, f"result for {r.key!r} has neither a platform_id nor an error_code"
        else:
            assert isinstance(r.platform_id, str) and r.platform_id, f"result for {r.key!r}: platform_id must be a non-empty str"
    assert sorted(r.key for r in results) == sorted(i.key for i in batch), "submit must answer every key of the batch exactly once"
    return results


class PlatformConformance:
    """Subclass as ``TestSomething(PlatformConformance)`` and provide ``platform_factory``.

    Tunables (class attributes):

    - ``batch_size``: numbers per test batch.
    - ``receipt_schedule``: virtual seconds to advance, step by step, for receipts to come in
      (the default walks to 73 hours, past the gateway's 72-hour receipt timeout).
    - ``advance_peers`` (a method): moves a carrier's own clock with the harness's.
    - ``receipts_via_context``: False for platforms whose receipts only arrive over HTTP
      webhooks (``parse_webhook``); the receipt tests are then skipped unless ``collect`` is
      overridden to bring webhook receipts into the harness.
    - ``min_receipt_share``: the share of accepted messages that must get a final receipt
      within the schedule (the simulated carrier's default profile loses 3 %).
    - ``max_receipts_per_part``: receipts per message part a platform may send (above 1 for a
      platform that deliberately duplicates receipts).
    - ``state_survives_restart``: the idempotency key is honoured by a new instance started
      on the same database (after a crash the gateway resubmits the batch it had not recorded, with the same keys).
    - ``redelivers_after_failed_handoff``: receipts whose ``deliver_receipts`` call raised are
      offered again later, so none is lost.
    """

    batch_size = 50
    receipt_schedule: list[float] = [1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600, 42 * 3600 + 1]
    receipts_via_context = True
    min_receipt_share = 0.5
    max_receipts_per_part = 1
    state_survives_restart = True
    redelivers_after_failed_handoff = True
    harness_extras: dict[str, Any] = {}

    @pytest.fixture
    def platform_factory(self):
        pytest.fail(
            "define a `platform_factory` fixture in your PlatformConformance subclass that returns a callable "
            "making a fresh Platform, e.g. `return MyPlatform`"
        )

    # -- plumbing --------------------------------------------------------------------------------
    def run(self, scenario: Callable[..., Awaitable[None]], platform_factory, tmp_path: Path) -> None:
        async def main() -> None:
            async with open_harness(tmp_path / "harness", extras=self.harness_extras) as h:
                h.on_advance.append(lambda seconds: self.advance_peers(h, seconds))
                platform = await h.start(await _make(platform_factory))
                await scenario(h, platform, platform_factory)

        asyncio.run(main())

    async def advance_peers(self, h: Harness, seconds: float) -> None:
        """Called whenever the harness's clock moves, before the platforms' ``on_clock``. Override
        for a platform whose receipts come from a system with a clock of its own (a carrier
        process with a virtual clock): move that clock too, and return once what fell due has
        arrived, so that every test sees receipts exactly when the harness's clock says."""

    async def collect(self, h: Harness, platform: Platform) -> None:
        """Advance the clock through ``receipt_schedule``. Override to also gather receipts a
        platform receives by other routes (webhooks: feed them through ``h.deliver_receipts``)."""
        await h.advance_through(self.receipt_schedule)

    def _need_receipts(self) -> None:
        if not self.receipts_via_context and type(self).collect is PlatformConformance.collect:
            pytest.skip("this platform's receipts arrive over HTTP webhooks (receipts_via_context = False)")

    # -- describe and limits ----------------------------------------------------------------------
    def test_describe(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            assert isinstance(platform.name, str) and platform.name, "a platform needs a non-empty `name`"
            assert platform.name == platform.name.strip() and "/" not in platform.name, "the name is used in URLs"
            info = platform.describe()
            assert isinstance(info, dict), "describe() must return a dict"
            assert info.get("name") == platform.name, "describe()['name'] must be the platform's name"
            assert isinstance(info.get("description"), str) and info["description"].strip(), (
                "describe()['description'] must be a non-empty string"
            )
            msgspec.json.encode(info)  # GET /api/v1/platforms serves it as JSON

        self.run(scenario, platform_factory, tmp_path)

    def test_limits_and_moderation(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            limit = platform.max_recipients()
            assert limit is None or (isinstance(limit, int) and limit >= 0), "max_recipients() is None or an int >= 0"
            delay = platform.moderation_delay()
            assert isinstance(delay, (int, float)) and delay >= 0, "moderation_delay() is seconds >= 0"
            reasons = await platform.moderate("Your code is 1234 【smslab】", {"id": 1, "name": "t", "platform": platform.name})
            assert isinstance(reasons, list) and all(isinstance(r, str) for r in reasons), "moderate() returns a list of str"

        self.run(scenario, platform_factory, tmp_path)

    # -- submit ----------------------------------------------------------------------------------
    def test_empty_batch(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            assert await platform.submit([]) == [], "an empty batch gives an empty list of results"

        self.run(scenario, platform_factory, tmp_path)

    def test_submit_one_result_per_item(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            batch = make_batch(self.batch_size)
            results = _check_results(batch, await platform.submit(batch))
            ids = [r.platform_id for r in results if r.platform_id is not None]
            assert ids, "the platform accepted none of a batch of valid numbers"
            assert len(set(ids)) == len(ids), "two different keys got the same platform_id"

        self.run(scenario, platform_factory, tmp_path)

    def test_submit_multipart(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            batch = make_batch(5, parts=3, text="x" * 400)
            _check_results(batch, await platform.submit(batch))

        self.run(scenario, platform_factory, tmp_path)

    def test_bad_input_is_refused_cleanly(self, platform_factory, tmp_path):
        """Odd numbers and text are refused per number (error_code) or per batch (PlatformError),
        never with an arbitrary exception, which the gateway would treat as an internal error."""

        async def scenario(h, platform, _):
            batch = [
                SubmitItem(key="bad-1", task_id=999, number="", text="hello", parts=1),
                SubmitItem(key="bad-2", task_id=999, number="not-a-number", text="hello", parts=1),
                SubmitItem(key="bad-3", task_id=999, number="+8613800000001", text="", parts=1),
            ]
            try:
                results = await platform.submit(batch)
            except PlatformError:
                return
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"submit raised {type(exc).__name__}: {exc}; raise PlatformError or set error_code instead")
            _check_results(batch, results)

        self.run(scenario, platform_factory, tmp_path)

    def test_idempotent_resubmission(self, platform_factory, tmp_path):
        """The same key submitted again gets the same platform_id and is not sent twice."""

        async def scenario(h, platform, _):
            batch = make_batch(self.batch_size)
            first = {r.key: r.platform_id for r in _check_results(batch, await platform.submit(batch))}
            # a resubmission after a crash: part of the old batch, in another order, with new numbers
            again = list(reversed(batch[: len(batch) // 2])) + make_batch(3, task_id=batch[0].task_id + 10_000)
            second = {r.key: r.platform_id for r in _check_results(again, await platform.submit(again))}
            for item in batch[: len(batch) // 2]:
                if first[item.key] is not None:
                    assert second[item.key] == first[item.key], f"key {item.key!r} got a new platform_id on resubmission"
            if not self.receipts_via_context and type(self).collect is PlatformConformance.collect:
                return
            await self.collect(h, platform)
            self._assert_no_extra_receipts(h, batch)

        self.run(scenario, platform_factory, tmp_path)

    def test_idempotent_after_restart(self, platform_factory, tmp_path):
        if not self.state_survives_restart:
            pytest.skip("state_survives_restart = False")

        async def scenario(h, platform, factory):
            batch = make_batch(self.batch_size)
            first = {r.key: r.platform_id for r in _check_results(batch, await platform.submit(batch))}
            await h.stop(platform)
            fresh = await h.start(await _make(factory))
            second = {r.key: r.platform_id for r in _check_results(batch, await fresh.submit(batch))}
            for key, pid in first.items():
                if pid is not None:
                    assert second[key] == pid, f"a restarted platform gave key {key!r} a new platform_id"
            if not self.receipts_via_context and type(self).collect is PlatformConformance.collect:
                return
            await self.collect(h, fresh)
            self._assert_no_extra_receipts(h, batch)

        self.run(scenario, platform_factory, tmp_path)

    def _assert_no_extra_receipts(self, h: Harness, batch: list[SubmitItem]) -> None:
        per_part: dict[tuple[str, int | None], int] = {}
        for receipt in h.receipts():
            slot = (receipt.platform_id, receipt.part)
            per_part[slot] = per_part.get(slot, 0) + 1
        too_many = {k: n for k, n in per_part.items() if n > self.max_receipts_per_part}
        assert not too_many, f"messages were delivered more than once (receipts per (platform_id, part)): {too_many}"

    # -- receipts --------------------------------------------------------------------------------
    def test_receipts_refer_to_submitted_messages(self, platform_factory, tmp_path):
        self._need_receipts()

        async def scenario(h, platform, _):
            batch = make_batch(self.batch_size, parts=2, text="y" * 200)
            submitted_at = h.clock.now()
            results = _check_results(batch, await platform.submit(batch))
            ids = {r.platform_id for r in results if r.platform_id is not None}
            await self.collect(h, platform)
            received = h.received
            assert received, "no receipt was delivered through ctx.deliver_receipts"
            for name, receipt, delivered_at in received:
                assert name == platform.name, f"receipts were delivered under {name!r}, not the platform's name"
                assert receipt.platform_id in ids, f"a receipt names {receipt.platform_id!r}, which submit never returned"
                assert receipt.status in ("delivered", "failed"), f"receipt status {receipt.status!r}"
                assert receipt.part is None or 0 <= receipt.part < 2, f"receipt part {receipt.part!r} of a 2-part message"
                assert isinstance(receipt.at, (int, float)), "Receipt.at is epoch seconds"
                assert submitted_at <= receipt.at <= delivered_at, (
                    "a receipt's time must be on the service clock: after submission, not after it was delivered"
                )
                if receipt.status == "failed":
                    assert receipt.code, "a failed receipt carries an error code"
            answered = {r.platform_id for r in h.receipts()}
            share = len(answered) / max(1, len(ids))
            assert share >= self.min_receipt_share, f"only {share:.0%} of the accepted messages got a receipt"

        self.run(scenario, platform_factory, tmp_path)

    def test_nothing_before_time(self, platform_factory, tmp_path):
        """An on_clock with no work delivers nothing; no receipt is dated after its hand-off."""
        self._need_receipts()

        async def scenario(h, platform, _):
            await platform.on_clock(h.clock.now())
            assert h.received == [], "a platform with no messages delivered receipts"
            batch = make_batch(5)
            await platform.submit(batch)
            for _name, receipt, delivered_at in h.received:
                assert receipt.at <= delivered_at

        self.run(scenario, platform_factory, tmp_path)

    def test_receipts_not_lost_when_handoff_fails(self, platform_factory, tmp_path):
        """``deliver_receipts`` raising means the gateway did not commit them: offer them again."""
        self._need_receipts()
        if not self.redelivers_after_failed_handoff:
            pytest.skip("redelivers_after_failed_handoff = False")

        async def scenario(h, platform, _):
            control_batch = make_batch(self.batch_size)
            await platform.submit(control_batch)
            h.fail_deliveries = 1  # the first hand-off that carries receipts fails
            for step in [*self.receipt_schedule, 1.0]:
                try:
                    await h.advance(step)
                except DeliveryFailed:
                    pass  # letting the error through is fine; the receipts must come back later
            if not h.refused:
                pytest.skip("the receipt schedule gave the platform nothing to deliver in its first step")
            later = {(r.platform_id, r.part, r.status) for r in h.receipts()}
            lost = [r for _, r in h.refused if (r.platform_id, r.part, r.status) not in later]
            assert not lost, f"{len(lost)} receipt(s) refused by the gateway were never offered again, e.g. {lost[0]}"

        self.run(scenario, platform_factory, tmp_path)

    # -- webhooks ------------------------------------------------------------------------------------
    def test_parse_webhook_refuses_garbage(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            for body in (b"", b"not json", b'{"receipts": 5}', b"\xff\xfe"):
                try:
                    out = platform.parse_webhook({}, body, h.clock.now())
                except WebhookRejected as exc:
                    assert 400 <= exc.status < 500, "WebhookRejected.status is a 4xx"
                    continue
                except Exception as exc:  # noqa: BLE001
                    pytest.fail(f"parse_webhook raised {type(exc).__name__} for {body!r}; raise WebhookRejected")
                assert isinstance(out, list) and not out, f"parse_webhook accepted {body!r}"

        self.run(scenario, platform_factory, tmp_path)

    # -- lifecycle ----------------------------------------------------------------------------------
    def test_stop_is_clean(self, platform_factory, tmp_path):
        async def scenario(h, platform, _):
            await platform.submit(make_batch(3))
            await h.stop(platform)
            again = await h.start(await _make(platform_factory))
            await h.stop(again)

        self.run(scenario, platform_factory, tmp_path)
