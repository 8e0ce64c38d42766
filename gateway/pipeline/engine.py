"""The engine: everything that happens because time passed.

One step at service time ``now``: platforms emit receipts that fell due, moderation reviews that
fell due are decided, scheduled tasks whose send time came start sending, numbers pending past
the receipt timeout fail with RECEIPT_TIMEOUT, finished tasks complete, and per-number details
past retention are deleted. On the wall clock a loop steps every ``tick_interval``.

On the virtual clock ``advance`` walks from event to event (a moderation decision, a send time,
a timeout, a retention deadline) up to the target, stepping at each, and waits for the sends
each step starts. So "72 hours later" in one call ends exactly where 72 hours of real time would
have, and the call returns once everything that fell due was processed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from gateway.domain import receipt_fold as F
from gateway.domain.lifecycle import Status, after_moderation, check_transition
from gateway.domain.segments import signed_text
from gateway.domain.content import ContentError, render
from gateway.plugins import call_async
from gateway.storage.errors import StaleBatch, StorageUnavailable

from .dispatcher import Dispatcher, TaskFailure
from .results import MessageResults

log = logging.getLogger(__name__)

STUCK_SECONDS = 60.0  # a step running longer than this (real time) is reported by /healthz
MAINTENANCE_SECONDS = 30.0  # real seconds between housekeeping runs (abandoned uploads)


class Engine:
    def __init__(self, storage, clock, platforms: dict, pm, config, metrics, dispatcher: Dispatcher,
                 results: MessageResults, maintenance=None):
        self.lifecycle = storage.lifecycle
        self.state = storage.state
        self.results = results
        self.maintenance = maintenance  # an async callable run every MAINTENANCE_SECONDS (abandoned uploads)
        self._maintained_at = 0.0
        self.step_started: float | None = None  # monotonic time the running step started, None between steps
        self.last_step_ok: float | None = None
        self.last_error: str | None = None
        self.clock = clock
        self.platforms = platforms
        self.pm = pm
        self.config = config
        self.metrics = metrics
        self.dispatcher = dispatcher
        self._step_lock = asyncio.Lock()
        self._dispatches: dict[int, asyncio.Task] = {}
        self._resume_after: dict[int, float] = {}  # task → monotonic time: its dispatcher stopped on a storage error
        self._loop_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        # whether this instance runs the background work (gateway.pipeline.leadership): with
        # several instances on one database only the leader steps and dispatches
        self.leading = False

    # -- running -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the loop; it steps once this instance leads (``lead``)."""
        self._loop_task = asyncio.create_task(self._loop(), name="engine")

    def lead(self) -> None:
        """This instance now runs the background work: the next step resumes every task that is
        sending (from what was recorded, with the same idempotency keys)."""
        self.leading = True
        self.wake()

    async def step_down(self) -> None:
        """Another instance leads now (or this one could not keep its lease): stop stepping and
        sending at once. What a dispatch submitted but did not record is submitted again by the
        new leader with the same keys, and answered from the carrier's record."""
        self.leading = False
        tasks = [t for t in self._dispatches.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in [self._loop_task, *self._dispatches.values()] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """Step soon (a task was created or changed)."""
        self._wake.set()

    async def _loop(self) -> None:
        saved_at = self.clock.now()
        while not self._stopping:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation that stop() sends when the event fires at the same moment
                async with asyncio.timeout(self.config.tick_interval):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if not self.leading:
                continue
            try:
                async with self._step_lock:
                    await self._step(self.clock.now())
                await self._maintain()
                if self.clock.mode == "virtual" and self.clock.rate and self.clock.now() - saved_at >= self.clock.rate:
                    await self.save_clock()
                    saved_at = self.clock.now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.log(logging.WARNING if isinstance(exc, StorageUnavailable) else logging.ERROR,
                        "engine step failed", exc_info=True)

    def health(self) -> dict:
        """For /healthz: is a step stuck, and did the last one fail?"""
        running = None if self.step_started is None else time.monotonic() - self.step_started
        info = {"status": "ok", "step_running_seconds": None if running is None else round(running, 3),
                "last_error": self.last_error}
        if running is not None and running > STUCK_SECONDS:
            info["status"] = "stuck"
        elif self.last_error is not None:
            info["status"] = "failing"
        return info

    async def _maintain(self) -> None:
        now = time.monotonic()
        if self.maintenance is None or now - self._maintained_at < MAINTENANCE_SECONDS:
            return
        self._maintained_at = now
        await self.maintenance()

    async def advance(self, seconds: float) -> float:
        """Virtual clock only: move forward ``seconds``, processing every event on the way.

        The target is taken under the step lock: two clients advancing at once each move the
        clock by their own ``seconds``, one after the other (read before the lock, both would
        aim at the same instant and one advance would be lost)."""
        async with self._step_lock:
            target = self.clock.now() + seconds
            while True:
                await self._settle(self.clock.now())
                upcoming = await self._next_event_after(self.clock.now())
                t = target if upcoming is None else min(upcoming, target)
                self.clock.set(t)
                self.dispatcher.clock_moved()
                await self._settle(t)
                if self.clock.now() >= target:
                    break
            await self.save_clock()
        return self.clock.now()

    async def save_clock(self) -> None:
        """A restarted service continues the virtual timeline where it stopped."""
        if self.clock.mode == "virtual":
            await self.state.save_virtual_now(self.clock.now())

    async def _settle(self, now: float) -> None:
        """Step, let the sends it started finish, and step again until nothing is left to do."""
        for _ in range(100_000):
            await self._step(now)
            waiting = self.dispatcher.backing_off | self.dispatcher.stalled
            running = [t for tid, t in self._dispatches.items() if not t.done() and tid not in waiting]
            if not running:
                await self._step(now)
                return
            # a send that starts backing off (its platform is down until later) stops being waited for
            await asyncio.wait(running, timeout=0.01)

    async def _next_event_after(self, now: float) -> float | None:
        timeout = self.config.receipt_timeout
        events = await self.lifecycle.upcoming(now, F.submitted_before(now, timeout))
        # a number times out at the first instant the rule calls late, counted from the start of
        # its dispatch (the first numbers) and from its end (the last)
        candidates = [events.at] + [F.late_from(t, timeout) for t in (events.dispatch_started_at, events.dispatch_done_at)
                                    if t is not None]
        # a send backing off until its platform's outage ends (or it gives up) is an event too
        candidates += self.dispatcher.retry_due.values()
        upcoming = [t for t in candidates if t is not None and t > now]
        return min(upcoming) if upcoming else None

    async def step_now(self) -> None:
        async with self._step_lock:
            await self._step(self.clock.now())

    async def _step(self, now: float) -> None:
        self.step_started = time.monotonic()
        try:
            for platform in self.platforms.values():
                await platform.on_clock(now)
            await self._moderate_due(now)
            await self._start_due(now)
            await self._resume_dispatches()
            await self._sweep_timeouts(now)
            await self._complete_finished(now)
            await self._purge_expired(now)
        finally:
            self.step_started = None
        self.last_step_ok = time.monotonic()
        self.last_error = None

    # -- status changes ----------------------------------------------------------------------
    async def _set_status(self, task_id: int, old: str, new: str, reason: str | None, unchanged_since: float | None = None,
                          finished: bool = False) -> bool:
        """Move a task from ``old`` to ``new`` if the lifecycle allows it; a no-op when it is no
        longer ``old`` (or was edited after ``unchanged_since``, so a review of stale content is
        thrown away). ``finished``: the task ends here, so it gets its completion time."""
        check_transition(old, new)
        changed = await self.lifecycle.transition(task_id, old, new, reason, self.clock.now(), unchanged_since, finished)
        if changed:
            try:
                await call_async(self.pm.hook.smslab_task_status_changed, task_id=task_id, old=old, new=new, reason=reason)
            except Exception:  # the change is committed; an observer's failure must not stall the engine
                log.exception("a smslab_task_status_changed hook failed")
        return changed

    async def _moderate_due(self, now: float) -> None:
        for task_id, name, platform_name, sms_type, signature, content, send_type, send_at, updated_at, ws in (
                await self.lifecycle.due_for_moderation(now)):
            reasons: list[str] = []
            platform = self.platforms.get(platform_name)
            if platform is not None:
                platform = platform.for_workspace(ws)
            try:
                text = signed_text(signature, render(json.loads(content)))
            except ContentError as exc:
                text = ""
                reasons.append(str(exc))
            info = {"id": task_id, "name": name, "platform": platform_name, "sms_type": sms_type, "workspace_id": ws}
            if platform is None:
                reasons.append(f"the platform {platform_name!r} is not installed")
            else:
                reasons += await platform.moderate(text, info)
            for verdict in await call_async(self.pm.hook.smslab_moderate_content, text=text, task=info):
                if verdict:
                    reasons += [str(r) for r in verdict]
            outcome = after_moderation(reasons, send_type)
            await self._set_status(task_id, Status.MODERATING, outcome, "; ".join(reasons) if reasons else None,
                                   unchanged_since=updated_at)
        # immediate sends start as soon as moderation passed; scheduled ones in _start_due

    async def _start_due(self, now: float) -> None:
        for task_id in await self.lifecycle.due_to_start(now):
            if await self._set_status(task_id, Status.SCHEDULED, Status.SENDING, None):
                self._spawn_dispatch(task_id)

    async def _resume_dispatches(self) -> None:
        """Send every task that is sending but has no dispatcher running: after a restart, and
        after a dispatcher that the storage stopped (a full disk) gave up; it resumes from what
        was recorded, resubmitting the rest with the same idempotency keys."""
        now = time.monotonic()
        for task_id in await self.lifecycle.sending_undispatched():
            if self._resume_after.get(task_id, 0.0) <= now:
                self._resume_after.pop(task_id, None)
                self._spawn_dispatch(task_id)

    def _spawn_dispatch(self, task_id: int) -> None:
        if task_id in self._dispatches and not self._dispatches[task_id].done():
            return
        self._dispatches[task_id] = asyncio.create_task(self._dispatch(task_id), name=f"dispatch-{task_id}")

    async def _dispatch(self, task_id: int) -> None:
        try:
            await self.dispatcher.run(task_id)
        except TaskFailure as exc:
            await self._set_status(task_id, Status.SENDING, Status.FAILED, str(exc), finished=True)
        except asyncio.CancelledError:
            raise
        except StaleBatch as exc:
            # another instance took the task over while this one still sent it; that one carries on
            log.warning("dispatch of task %s stopped: %s", task_id, exc)
        except StorageUnavailable as exc:
            # the storage, not the task, failed: the task stays sending and the next step
            # starts a dispatcher for it again (_resume_dispatches)
            log.warning("dispatch of task %s stopped by the storage (%s); it resumes in a second", task_id, exc)
            self.last_error = f"dispatch of task {task_id}: {exc}"
            self._resume_after[task_id] = time.monotonic() + 1.0
        except Exception as exc:
            log.exception("dispatch of task %s failed", task_id)
            await self._set_status(task_id, Status.SENDING, Status.FAILED, f"internal error while sending: {exc}", finished=True)
        finally:
            self._dispatches.pop(task_id, None)
        self.wake()

    # -- sweepers ----------------------------------------------------------------------------
    async def _sweep_timeouts(self, now: float) -> None:
        swept = await self.results.sweep_timeouts(now)
        if swept:
            self.metrics.receipt_timeouts.inc(swept)

    async def _complete_finished(self, now: float) -> None:
        for task_id in await self.lifecycle.finished_sending():
            await self._set_status(task_id, Status.SENDING, Status.COMPLETED, None, finished=True)

    async def _purge_expired(self, now: float) -> None:
        await self.results.purge_expired(now)
