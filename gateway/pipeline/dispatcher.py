"""Sends one task: streams its audience in batches and submits them through its platform.

Crash safety comes from the idempotency key, not from a second write per number. An audience
never changes once stored, so the key of a number in a task, ``{task id}-{audience seq}``, is the
same before and after a crash. For each batch:
1. the numbers after the task's audience cursor are read and sorted into sendable and skipped
   (empty, invalid, duplicate, on the workspace's opt-out list, over the platform's limit, and
   what the ``smslab_filter_numbers`` hook refuses);
2. the sendable ones are submitted, each with its key;
3. one transaction inserts their message rows (``pending``, with the platform's ids), moves the
   cursor past the batch, adds to ``sent`` and to the skip counts, and applies any receipt that
   overtook this acknowledgement.
A crash between 2 and 3 leaves the cursor before the batch: the restarted dispatcher submits the
same keys again, and the platform answers with the ids it gave the first time without sending
anything twice. Only a batch's worth of numbers is ever in memory, or as many batches as the
platform takes at once (``Platform.batches_in_flight``: step 2 of the next batches may start
before this one's step 3; step 3 still runs batch by batch, in audience order).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections import Counter

from gateway.domain import numbers as N
from gateway.domain.content import render
from gateway.domain.segments import signed_text
from gateway.platform import PlatformError, SubmitItem, SubmitResult, Throttled
from gateway.plugins import call_async
from gateway.storage.errors import StorageUnavailable
from gateway.storage.messages import BatchRecord

from .results import MessageResults

log = logging.getLogger(__name__)

KIND_NAMES = {1: N.EMPTY, 2: N.INVALID, 3: N.DUPLICATE}
_SKIP_WORDS = {"empty": "empty", "invalid": "invalid", "duplicate": "duplicate", "over_limit": "over the recipient limit",
               "opted_out": "opted out"}


class _Submission:
    """One batch of a task from its submission until its record starts."""

    __slots__ = ("batch", "cursor", "accepted", "passed", "future")

    def __init__(self, batch: list[SubmitItem], cursor: int, accepted: int, passed: Counter,
                 future: asyncio.Future | None):
        self.batch = batch
        self.cursor = cursor  # the audience seq of the batch's last member
        self.accepted = accepted  # the task's accepted numbers up to and including this batch
        self.passed = passed  # the batch's own skips by reason
        self.future = future  # its submission (None: nothing of the batch to submit)

    def cancel(self) -> None:
        """Given up: cancelled if still running, its outcome taken if not (so a failure that
        is no longer anyone's concern is not logged as never retrieved)."""
        future = self.future
        if future is None:
            return
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()


class TaskFailure(Exception):
    """The whole task cannot be sent; the message becomes the task's status_reason."""


class Dispatcher:
    def __init__(self, storage, clock, platforms: dict, pm, config, metrics, results: MessageResults, sink=None,
                 optouts=None):
        self.lifecycle = storage.lifecycle
        self.messages = storage.messages
        self.results = results
        # the opt-out lists (gateway.inbound.InboundService): numbers on the task's workspace's
        # list are skipped as ``opted_out``
        self.optouts = optouts
        self.sink = sink  # told which ids are being recorded: receipts overtaking them wait (ReceiptSink)
        self.clock = clock
        self.platforms = platforms
        self.pm = pm
        self.config = config
        self.metrics = metrics
        # submissions waiting to retry (each submission its own key: a task can have several at
        # once), with their task's id; ``backing_off`` is the set of those tasks
        self._backing_off: dict[object, int] = {}
        # service-clock times those retries are worth making (the platform's outage ends, or the
        # dispatcher gives up): an advance of the virtual clock stops at each
        self.retry_due: dict[object, float] = {}  # by submission, as ``_backing_off``
        self.stalled: set[int] = set()  # tasks whose dispatcher waits for the storage to take a record
        self._clock_moved = asyncio.Event()

    async def run(self, task_id: int) -> None:
        task = await self.lifecycle.task_to_send(task_id)
        if task is None:
            return
        platform_name, audience_id, content, signature, parts, cursor, accepted, skipped, started, sms_type, name, ws = task
        platform = self.platforms.get(platform_name)
        if platform is None:
            raise TaskFailure(f"the platform {platform_name!r} is not installed")
        platform = platform.for_workspace(ws)
        text = signed_text(signature, render(json.loads(content)))
        task_info = {"id": task_id, "name": name, "platform": platform_name, "sms_type": sms_type, "workspace_id": ws}
        skipped = Counter(json.loads(skipped))
        if started is None:
            refused = await self.lifecycle.start_dispatch(task_id, audience_id, self.clock.now())
            if refused == "deleted":
                raise TaskFailure("the audience was deleted before the task could be sent")
            if refused == "empty":
                raise TaskFailure("the audience is empty")
        limit = platform.max_recipients()
        key_prefix = f"{task_id}-"
        batch_size = self.config.dispatch_batch

        # The stages overlap: the next page of the audience is read while this one is submitted,
        # and a batch is submitted while the one before it is being recorded. A batch's record
        # starts only once the previous one committed, so records commit in audience order, each
        # with its own snapshot of the counters: the stored cursor never runs ahead of what was
        # recorded. (Recording more batches at once was measured slower: docs/benchmarks.md.)
        # A platform that keeps a window of requests open (``Platform.batches_in_flight`` > 1)
        # gets the next batches before this one has returned, so its window does not drain at
        # each batch's end; they are still settled and recorded one by one, in order.
        overlap = max(1, int(getattr(platform, "batches_in_flight", 1) or 1))
        next_page = asyncio.ensure_future(self.messages.read_members(audience_id, cursor, batch_size))
        recording: asyncio.Future | None = None
        in_flight: collections.deque[_Submission] = collections.deque()
        try:
            while True:
                members = await next_page
                if not members:
                    break
                cursor = members[-1].seq
                next_page = asyncio.ensure_future(self.messages.read_members(audience_id, cursor, batch_size))
                # numbers the workspace's opt-out list holds: no query when the list is empty
                # (the usual case), else one look-up of this batch's numbers
                opted: set[str] | tuple = ()
                if self.optouts is not None and self.optouts.may_have_opt_outs(ws):
                    opted = await self.optouts.opted_out(ws, [m.e164 for m in members if not m.kind])
                passed: Counter = Counter()  # this batch's skips, added to the task's when it is settled
                candidates: list[tuple[int, str]] = []
                for member in members:
                    seq, e164, kind = member.seq, member.e164, member.kind
                    if kind:
                        passed[KIND_NAMES[kind]] += 1
                    elif opted and e164 in opted:  # before the limit: an opted-out number takes no place in it
                        passed["opted_out"] += 1
                    elif limit is not None and accepted + len(candidates) >= limit:
                        passed["over_limit"] += 1
                    else:
                        candidates.append((seq, e164))
                if candidates:
                    numbers = [n for _, n in candidates]
                    for verdict in await call_async(self.pm.hook.smslab_filter_numbers, task=task_info, numbers=numbers):
                        if verdict:
                            candidates = [c for c in candidates if c[1] not in verdict]
                            for reason in verdict.values():
                                passed[str(reason)] += 1
                accepted += len(candidates)
                # positional: key ("{task_id}-{seq:010d}", spelt out: half the cost), task_id, number, text, parts
                batch = [SubmitItem(key_prefix + str(seq).zfill(10), task_id, number, text, parts) for seq, number in candidates]
                in_flight.append(_Submission(
                    batch, cursor, accepted, passed,
                    asyncio.ensure_future(self._submit_with_retry(platform, batch)) if batch else None))
                if len(in_flight) >= overlap:
                    recording = await self._settle(platform, task_id, parts, in_flight.popleft(), skipped, recording)
            while in_flight:
                recording = await self._settle(platform, task_id, parts, in_flight.popleft(), skipped, recording)
            if recording is not None:
                await recording
        except asyncio.CancelledError:
            for submission in in_flight:  # shutting down: a restart resubmits what is not recorded
                submission.cancel()
            if recording is not None:
                recording.cancel()
            raise
        except BaseException:
            # the task fails, but what was submitted and settled is recorded first, so it counts
            # as sent; batches still in submission are given up (a rerun submits them again)
            for submission in in_flight:
                submission.cancel()
            if recording is not None:
                with contextlib.suppress(Exception):
                    await recording
            raise
        finally:
            if not next_page.done():
                next_page.cancel()
            with contextlib.suppress(BaseException):
                await next_page
        await self._finish(task_id)

    async def _settle(self, platform, task_id: int, parts: int, submission: "_Submission", skipped: Counter,
                      recording: asyncio.Future | None) -> asyncio.Future:
        """Wait for one batch's submission, then start its record once the previous record has
        committed; return the new record. ``skipped`` is the task's running count: this batch's
        skips and refusals join it here, in audience order, so each record's snapshot counts
        exactly the batches recorded up to it."""
        rows: list[tuple] = []
        platform_ids: list[str] = []
        if submission.future is not None:
            results = await submission.future
            rows, refused = _message_rows(task_id, parts, submission.batch, results)
            if refused:
                submission.passed["refused"] += refused
            platform_ids = [row[3] for row in rows]
            if self.sink is not None:
                self.sink.expect(platform.name, platform_ids)
        skipped.update(submission.passed)
        try:
            if recording is not None:
                await recording
        except BaseException:
            # this batch was submitted but this run will not record it: receipts waiting
            # for it must not wait for ever (a rerun submits it again with the same keys)
            if self.sink is not None:
                self.sink.recorded(platform.name, platform_ids)
            raise
        return asyncio.ensure_future(self._record(platform_ids, BatchRecord(
            task_id, platform.name, parts, rows, self.clock.now(), submission.cursor, submission.accepted,
            json.dumps(dict(skipped)), self.config.receipt_timeout,
        )))

    async def _record(self, platform_ids: list[str], batch: BatchRecord) -> None:
        try:
            delay = 0.05
            while True:
                try:
                    await self.results.record_batch(batch)
                    return
                except StorageUnavailable as exc:
                    # the storage refused (a full disk, a locked or failing file): what the
                    # platform accepted must still be recorded, or it would not count as sent.
                    # Nothing was written (the transaction rolled back), so the same record is
                    # tried again until the storage takes it; ``advance`` does not wait meanwhile.
                    log.warning("recording a batch of task %s failed (%s); retrying in %.2f s", batch.task_id, exc, delay)
                    self.stalled.add(batch.task_id)
                    try:
                        await asyncio.sleep(delay)
                    finally:
                        self.stalled.discard(batch.task_id)
                    delay = min(delay * 2, 2.0)
        finally:
            if self.sink is not None:
                self.sink.recorded(batch.platform, platform_ids)

    @property
    def backing_off(self) -> set[int]:
        """The tasks with a submission waiting to retry: ``advance`` does not wait for them."""
        return set(self._backing_off.values())

    async def _submit_with_retry(self, platform, batch: list[SubmitItem]) -> list[SubmitResult]:
        token = object()
        try:
            return await self._submit_until_taken(platform, batch, token)
        finally:  # taken, failed or cancelled: no longer an event for the clock to stop at
            self.retry_due.pop(token, None)

    async def _submit_until_taken(self, platform, batch: list[SubmitItem], token: object) -> list[SubmitResult]:
        """Submit one batch until the platform takes it.

        Throttling is retried for as long as it lasts (the carrier is up, only slower). Errors
        are retried with backoff until the platform has been unreachable for
        ``submit_give_up_seconds`` of service time; then the task fails. Service time, not real
        time: a submit outage on a virtual clock ends when the clock is advanced past it, and
        while this dispatcher waits it is marked ``backing_off`` so that ``advance`` does not
        wait for it (it could not finish before the clock moves)."""
        task_id = batch[0].task_id
        delay = 0.05
        first_failure: float | None = None
        while True:
            try:
                results = await platform.submit(batch)
                self.metrics.submissions.labels(platform.name).inc(len(batch))
                return results
            except PlatformError as exc:
                if not exc.retryable:
                    raise TaskFailure(f"the platform refused the submission: {exc}") from None
                throttled = isinstance(exc, Throttled)
                self.metrics.submit_retries.labels(platform.name, "throttled" if throttled else "error").inc()
                error: Exception = exc
                pause = exc.retry_after if exc.retry_after is not None else delay
            except (OSError, asyncio.TimeoutError) as exc:
                self.metrics.submit_retries.labels(platform.name, "error").inc()
                throttled, error, pause = False, exc, delay
            if not throttled:
                now = self.clock.now()
                first_failure = now if first_failure is None else first_failure
                if now - first_failure >= self.config.submit_give_up_seconds:
                    raise TaskFailure(f"the platform was unreachable: {error}") from None
                delay = min(delay * 2, 2.0)
                give_up = first_failure + self.config.submit_give_up_seconds
                retry_at = getattr(error, "retry_at", None)
                self.retry_due[token] = min(retry_at, give_up) if retry_at is not None and retry_at > now else give_up
            if throttled:  # throttling clears in real time: advance waits for it
                await asyncio.sleep(pause)
                continue
            self._backing_off[token] = task_id
            try:
                async with asyncio.timeout(pause):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self._clock_moved.wait()
            except asyncio.TimeoutError:
                pass
            finally:
                self._backing_off.pop(token, None)

    def clock_moved(self) -> None:
        """The virtual clock jumped: retry now, the platform's outage may be over."""
        self._backing_off.clear()
        self._clock_moved.set()
        self._clock_moved = asyncio.Event()

    async def _finish(self, task_id: int) -> None:
        now = self.clock.now()
        sent, skipped = await self.lifecycle.sent_and_skipped(task_id)
        skipped = json.loads(skipped)
        if sent == 0:
            if skipped.get("refused"):
                raise TaskFailure("every submission was refused by the platform")
            detail = ", ".join(f"{n:,} {_SKIP_WORDS.get(reason, reason)}" for reason, n in sorted(skipped.items()) if n)
            raise TaskFailure(f"no number could be sent ({detail})" if detail else "no number could be sent")
        await self.lifecycle.dispatch_done(task_id, now, now + self.config.retention)


def _message_rows(task_id: int, parts: int, batch: list[SubmitItem],
                  results: list[SubmitResult]) -> tuple[list[tuple], int]:
    """The acknowledged numbers as message rows (without their submission time), and how many
    the platform refused. Results usually come back in the batch's order; any order is matched
    by key."""
    if len(results) == len(batch) and all(r.key == item.key for r, item in zip(results, batch)):
        answered = zip(batch, [r.platform_id for r in results])
    else:
        by_key = {r.key: r.platform_id for r in results}
        answered = zip(batch, [by_key.get(item.key) for item in batch])
    rows, refused = [], 0
    for item, platform_id in answered:
        if platform_id is None:
            refused += 1
        else:
            rows.append((task_id, item.number, parts, platform_id))
    return rows, refused
