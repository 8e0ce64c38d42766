"""Play a loaded scenario against a gateway with a virtual clock, over its REST API
(``gateway.client.AsyncClient``), printing one line per step.

Exit codes (``smslab scenario run``): 0 every expectation held; 1 an expectation failed (the run
goes on to the end, every failure is printed); 2 the file is invalid or the target unusable (wall
clock, bad URL or token); 3 a step could not be played (the API refused it, or its time is past)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from ..clock import parse_rfc3339, to_rfc3339
from ..domain.numbers import mask
from .load import Loaded
from .model import COUNT_NAMES, Generate, Step
from .timespec import format_duration, format_tod, parse_at, parse_duration

OPEN_END = "8999-12-31T00:00:00.000Z"  # an outage without an end lasts until an outage_end step


class StepFailed(Exception):
    """A step that could not be played (exit 3)."""


class TargetError(Exception):
    """The service cannot play scenarios (exit 2): wall clock, unreachable, bad token."""


class Runner:
    def __init__(self, loaded: Loaded, client, out: TextIO = sys.stdout):
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.client = client
        self.out = out
        self.audiences: dict[str, int] = {}
        self.tasks: dict[str, int] = {}
        self.failures: list[str] = []
        self.expectations = 0
        self.now = 0.0
        self.day = 0.0

    # -- plumbing -----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def stamp(self, instant: float | None = None) -> str:
        instant = self.now if instant is None else instant
        days, rest = divmod(instant - self.day, 86400)
        text = format_tod(rest)
        return f"day {int(days) + 1} {text}" if days else text

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        from ..client import ApiError

        try:
            return await self.client.request(method, path, body)
        except ApiError as exc:
            raise StepFailed(f"{method} {path} answered {exc.status} {exc.code}: {exc.message}") from None

    async def read_clock(self) -> float:
        self.now = parse_rfc3339((await self.call("GET", "/api/v1/clock"))["now"])
        return self.now

    async def move_to(self, target: float) -> None:
        now = await self.read_clock()
        if target < now - 0.0005:
            raise StepFailed(f"{self.stamp(target)} is already past: the service clock is at {self.stamp(now)}"
                             " and only moves forward")
        if target > now:
            await self.advance(target - now)

    async def advance(self, seconds: float) -> None:
        from ..client import ApiError

        try:
            answer = await self.client.advance(round(seconds, 3))
        except ApiError as exc:
            raise StepFailed(f"advancing the clock {format_duration(seconds)} answered {exc.status} {exc.code}: {exc.message}") from None
        self.now = parse_rfc3339(answer["now"])

    def instant(self, text: str) -> float:
        kind, value = parse_at(text)
        return self.day + value if kind == "tod" else value

    # -- the run ------------------------------------------------------------------------------
    async def start(self) -> None:
        from ..client import ApiError

        try:
            clock = await self.client.request("GET", "/api/v1/clock")
        except ApiError as exc:
            raise TargetError(f"the service answered {exc.status} {exc.code}: {exc.message}") from None
        except OSError as exc:
            raise TargetError(f"cannot reach {self.client.base_url}: {exc}") from None
        if clock.get("mode") != "virtual":
            raise TargetError("the service runs on the wall clock; scenarios need a virtual clock"
                              " (start it with `smslab serve --clock virtual`)")
        self.now = parse_rfc3339(clock["now"])
        if self.loaded.start is not None:
            if self.loaded.start < self.now - 0.0005:
                raise TargetError(f"the scenario starts at {to_rfc3339(self.loaded.start)} but the service clock is"
                                  f" already at {clock['now']}; drop `start` or use a fresh service")
            try:
                self.day = self.loaded.start - self.loaded.start % 86400
                await self.move_to(self.loaded.start)
            except StepFailed as exc:
                raise TargetError(str(exc)) from None
        self.day = self.now - self.now % 86400

    async def run(self) -> int:
        title = self.scenario.name or Path(self.loaded.path).name
        await self.start()
        self.say(f"scenario {title}: {len(self.scenario.steps)} steps, day {to_rfc3339(self.day)[:10]},"
                 f" clock at {self.stamp()}")
        for index, step in enumerate(self.scenario.steps):
            number = index + 1
            try:
                await self.timing(step)
                words, ok = await self.play(step)
            except StepFailed as exc:
                self.say(f"[{self.stamp()}] step {number} {step.action()} ... ERROR")
                self.say(f"  {self.loaded.path}:{self.loaded.lines[index]}: step {number}: {exc}")
                self.say(f"scenario {title}: stopped at step {number} of {len(self.scenario.steps)}")
                return 3
            note = f"  # {step.note}" if step.note else ""
            self.say(f"[{self.stamp()}] step {number} {step.action()} {words[0]} ... {'ok' if ok else 'FAILED'}{note}")
            for line in words[1:]:
                self.say(f"    {line}")
            if not ok:
                self.failures.append(f"{self.loaded.path}:{self.loaded.lines[index]}: step {number}")
        await self.summary(title)
        return 1 if self.failures else 0

    async def summary(self, title: str) -> None:
        for name, task_id in self.tasks.items():
            t = await self.call("GET", f"/api/v1/tasks/{task_id}")
            skipped = {k: v for k, v in sorted(t["skipped"].items()) if v}
            counts = " ".join(f"{k}={t[k]}" for k in COUNT_NAMES)
            self.say(f"  task {name}: status={t['status']} {counts}"
                     + (f" skipped={json.dumps(skipped, separators=(',', ':'))}" if skipped else ""))
        passed = self.expectations - len(self.failures)
        verdict = "FAILED" if self.failures else "passed"
        self.say(f"scenario {title}: {verdict}: {len(self.scenario.steps)} steps, {passed} of {self.expectations}"
                 f" expectations held, clock at {self.stamp()}")
        for where in self.failures:
            self.say(f"  failed: {where}")

    async def timing(self, step: Step) -> None:
        if step.at is not None:
            await self.move_to(self.instant(step.at))
        elif step.after is not None:
            await self.move_to(await self.read_clock() + parse_duration(step.after))
        else:
            await self.read_clock()

    async def play(self, step: Step) -> tuple[list[str], bool]:
        action = step.action()
        return await getattr(self, f"do_{action}")(getattr(step, action))

    # -- actions ------------------------------------------------------------------------------
    async def do_preset(self, name: str):
        await self.call("POST", f"/api/v1/simulator/presets/{name}")
        return [name], True

    async def do_profile(self, fields: dict):
        await self.call("PATCH", "/api/v1/simulator/profile", fields)
        return [" ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in fields.items())], True

    async def _outages(self) -> list[dict]:
        """The profile's outage windows with every bound absolute, so that changing the list (which
        restarts relative windows from now) keeps the windows where they were."""
        profile = await self.call("GET", "/api/v1/simulator/profile")
        anchor = None
        windows = []
        for window in profile.get("outages") or []:
            window = dict(window)
            for key in ("start", "end"):
                if not isinstance(window[key], str):
                    if anchor is None:
                        platforms = await self.call("GET", "/api/v1/platforms")
                        sim = next((p for p in platforms["items"] if p.get("name") == "sim"), {})
                        raw = sim.get("outages_anchor")
                        anchor = parse_rfc3339(raw) if isinstance(raw, str) else float(raw or self.now)
                    window[key] = to_rfc3339(anchor + float(window[key]))
            windows.append(window)
        return windows

    async def do_outage(self, o):
        start = self.now if o.start is None else self.instant(o.start)
        if o.end is not None:
            end = self.instant(o.end)
        elif o.duration is not None:
            end = start + parse_duration(o.duration)
        else:
            end = None
        if end is not None and end <= start:
            raise StepFailed(f"outage end {self.stamp(end)} is not after its start {self.stamp(start)}")
        windows = await self._outages()
        windows.append({"kind": o.kind, "start": to_rfc3339(start), "end": to_rfc3339(end) if end else OPEN_END})
        await self.call("PATCH", "/api/v1/simulator/profile", {"outages": windows})
        until = f"until {self.stamp(end)}" if end is not None else "until an outage_end step"
        return [f"{o.kind} from {self.stamp(start)} {until}"], True

    async def do_outage_end(self, kind: str):
        windows, kept, ended = await self._outages(), [], 0
        for w in windows:
            start, end = parse_rfc3339(w["start"]), parse_rfc3339(w["end"])
            if (kind == "all" or w["kind"] == kind) and start <= self.now < end:
                ended += 1
                if start < self.now:
                    kept.append({**w, "end": to_rfc3339(self.now)})
                continue
            kept.append(w)
        if not ended:
            raise StepFailed(f"no {kind if kind != 'all' else ''} outage is going on at {self.stamp()}".replace("  ", " "))
        await self.call("PATCH", "/api/v1/simulator/profile", {"outages": kept})
        return [f"{kind}: {ended} window{'s' if ended != 1 else ''} ended"], True

    async def do_reply(self, r):
        body = {"from": r.from_, "text": r.text}
        if r.to is not None:
            body["to"] = r.to
        await self.call("POST", "/api/v1/simulator/mo", body)
        return [f"from {r.from_}: {r.text!r}"], True

    async def do_audience(self, a):
        numbers = generate(a.numbers) if isinstance(a.numbers, Generate) else list(a.numbers)
        numbers += a.extra
        made = await self.call("POST", "/api/v1/audiences", {"name": a.name, "numbers": numbers})
        self.audiences[a.name] = made["id"]
        return [f"{a.name}: {made['size']} numbers"], True

    async def do_task(self, t):
        body = {"name": t.name, "platform": t.platform, "sms_type": t.sms_type, "signature": t.signature,
                "content": {"text": t.text}, "audience_id": self.audiences[t.audience], "send_type": t.send_type,
                "sub_activities": [{"id": s.id, "name": s.name} for s in t.sub_activities]}
        if t.send_at is not None:
            body["send_at"] = to_rfc3339(self.instant(t.send_at))
        made = await self.call("POST", "/api/v1/tasks", body)
        self.tasks[t.name] = made["id"]
        when = f" at {self.stamp(self.instant(t.send_at))}" if t.send_at is not None else ""
        return [f"{t.name}: {t.send_type}{when} to {t.audience}, status {made['status']}"], True

    async def do_advance(self, duration):
        seconds = parse_duration(duration)
        await self.advance(seconds)
        return [format_duration(seconds)], True

    async def do_expect(self, e):
        self.expectations += 1
        t = await self.call("GET", f"/api/v1/tasks/{self.tasks[e.task]}")
        wrong = []
        if e.status is not None and t["status"] != e.status:
            wrong.append(("status", e.status, t["status"]))
        if e.status_reason is not None and e.status_reason.lower() not in (t.get("status_reason") or "").lower():
            wrong.append(("status_reason", f"contains {e.status_reason!r}", t.get("status_reason")))
        for name, want in e.counts.items():
            if t.get(name) != want:
                wrong.append((name, want, t.get(name)))
        for reason, want in e.skipped.items():
            got = (t.get("skipped") or {}).get(reason, 0)
            if got != want:
                wrong.append((f"skipped.{reason}", want, got))
        if e.reasons:
            got_reasons = await self.reason_counts(t["id"])
            for code, want in e.reasons.items():
                if got_reasons.get(code, 0) != want:
                    wrong.append((f"reasons.{code}", want, got_reasons.get(code, 0)))
        checked = ([f"status={e.status}"] if e.status else []) + [f"{k}={v}" for k, v in e.counts.items()] \
            + [f"skipped.{k}={v}" for k, v in e.skipped.items()] + [f"reasons.{k}={v}" for k, v in e.reasons.items()] \
            + ([f"status_reason~{e.status_reason!r}"] if e.status_reason is not None else [])
        lines = [f"{e.task}: {' '.join(checked) or 'exists'}"]
        for name, want, got in wrong:
            lines.append(f"{name}: expected {want}, actual {got}")
        return lines, not wrong

    async def pages(self, path: str) -> list[dict]:
        items, cursor = [], None
        while True:
            page = await self.call("GET", path + (f"&cursor={cursor}" if cursor else ""))
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def reason_counts(self, task_id: int) -> Counter:
        rows = await self.pages(f"/api/v1/tasks/{task_id}/messages?result=failed&limit=1000")
        counts: Counter = Counter()
        for row in rows:
            counts.update({r["code"] for r in row["failure_reasons"]})
        return counts

    async def do_expect_ground_truth(self, name: str):
        """The gateway's counts and per-number results agree with what the carrier decided and
        emitted so far (the comparison of tests/test_simulator_service.py, over the API: numbers
        are matched by their masked form, the API's only form of a number)."""
        self.expectations += 1
        task_id = self.tasks[name]
        task = await self.call("GET", f"/api/v1/tasks/{task_id}")
        truth = await self.pages(f"/api/v1/simulator/ground-truth?task_id={task_id}&limit=1000")
        rows = await self.pages(f"/api/v1/tasks/{task_id}/messages?limit=1000")
        wrong = []
        sent = [m for m in truth if m["outcome"] != "refused"]
        for label, want, got in (("sent", len(sent), task["sent"]),
                                 ("skipped.refused", len(truth) - len(sent), (task.get("skipped") or {}).get("refused", 0)),
                                 ("segments", sum(m["parts"] for m in sent), task["segments"]),
                                 ("per-number rows", len(sent), len(rows))):
            if want != got:
                wrong.append(f"{label}: ground truth says {want}, the gateway shows {got}")
        shown = Counter(r["result"] for r in rows)
        for result in ("succeeded", "failed", "pending"):
            if shown[result] != task[result]:
                wrong.append(f"{result}: the task counts {task[result]}, its per-number rows {shown[result]}")
        by_mask: dict[str, list[dict]] = {}
        for row in rows:
            by_mask.setdefault(row["number_masked"], []).append(row)
        settled = Counter()
        mismatched = 0
        for m in sent:
            allowed = self.allowed_results(m)
            candidates = by_mask.get(mask(m["number"])) or []
            match = next((r for r in candidates if r["result"] in allowed and self.reasons_fit(m, r)), None)
            if match is None:
                mismatched += 1
                if mismatched <= 5:
                    got = ", ".join(f"{r['result']} {[x['code'] for x in r['failure_reasons']]}" for r in candidates) or "no row"
                    wrong.append(f"{mask(m['number'])}: carrier decided {m['expected_result']}"
                                 f" (may show {'/'.join(sorted(allowed))}), the gateway shows {got}")
                continue
            candidates.remove(match)
            settled[match["result"]] += 1
        if mismatched > 5:
            wrong.append(f"... {mismatched - 5} more numbers disagree")
        expected = Counter(m["expected_result"] for m in truth)
        summary = " ".join(f"{k}={expected[k]}" for k in ("succeeded", "failed", "receipt_timeout", "refused") if expected[k])
        lines = [f"{name}: {len(truth)} numbers, carrier decided {summary or 'nothing'};"
                 f" gateway shows succeeded={shown['succeeded']} failed={shown['failed']} pending={shown['pending']}"]
        return lines + wrong, not wrong

    def allowed_results(self, m: dict) -> set[str]:
        expected = m["expected_result"]
        final = {"succeeded": "succeeded", "failed": "failed", "receipt_timeout": "failed"}[expected]
        due = [r for r in m["receipts"] if not r["swallowed"]]
        if expected == "receipt_timeout":
            return {"pending", "failed"}  # failed only with RECEIPT_TIMEOUT (reasons_fit)
        if all(r["emitted_at"] is not None for r in due):
            return {final}
        return {final, "pending"}

    @staticmethod
    def reasons_fit(m: dict, row: dict) -> bool:
        codes = {r["code"] for r in row["failure_reasons"]}
        if row["result"] != "failed":
            return True
        if m["expected_result"] == "receipt_timeout":
            return "RECEIPT_TIMEOUT" in codes
        emitted = {r["code"] for r in m["receipts"] if r["emitted_at"] is not None and r["status"] == "failed"}
        return bool(codes) and codes <= emitted | {"RECEIPT_TIMEOUT"}


def generate(g: Generate) -> list[str]:
    """``prefix`` + ``first``, ``first + 1``, … zero-padded to ``digits`` (default: to 13 digits in all,
    a Chinese mobile number with +86)."""
    digits = g.digits if g.digits is not None else max(13 - (len(g.prefix) - 1), len(str(g.first + g.count - 1)))
    return [f"{g.prefix}{n:0{digits}d}" for n in range(g.first, g.first + g.count)]


# -- targets ----------------------------------------------------------------------------------
async def play(loaded: Loaded, url: str | None = None, token: str | None = None, out: TextIO = sys.stdout) -> int:
    """Play against ``url`` with ``token``, or against a private in-process gateway."""
    from ..client import AsyncClient

    if url:
        async with AsyncClient(url, token) as client:
            return await _play(loaded, client, out)
    with tempfile.TemporaryDirectory(prefix="smslab-scenario-") as folder:
        async with private_gateway(folder, loaded.start) as (base_url, admin_token):
            async with AsyncClient(base_url, admin_token) as client:
                return await _play(loaded, client, out)


async def _play(loaded: Loaded, client, out: TextIO) -> int:
    try:
        return await Runner(loaded, client, out).run()
    except TargetError as exc:
        print(f"smslab: {exc}", file=sys.stderr)
        return 2


class private_gateway:
    """A gateway in this process on 127.0.0.1 and a free port, virtual clock starting at ``start``
    (default: midnight UTC today), a fresh SQLite file in ``folder``; yields (base_url, admin token)."""

    def __init__(self, folder: str, start: float | None, clock: str = "virtual"):
        self.folder = folder
        self.clock = clock
        now = time.time()
        self.start = start if start is not None else now - now % 86400

    async def __aenter__(self):
        from aiohttp import web

        from ..auth import create_token
        from ..config import Config
        from ..web.app import create_app
        from ..web.keys import clock_key, storage_key

        config = Config(db_path=str(Path(self.folder) / "scenario.db"), clock=self.clock, clock_start=self.start,
                        host="127.0.0.1", port=0)
        app = create_app(config)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        token = await create_token(app[storage_key], "scenario", app[clock_key].now(), admin=True)
        return f"http://127.0.0.1:{port}", token

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def run_file(path: str, url: str | None = None, token: str | None = None, out: TextIO = sys.stdout) -> int:
    from .load import ScenarioError, load

    try:
        loaded = load(path)
    except ScenarioError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    return asyncio.run(play(loaded, url, token, out))


def check_files(paths: list[str], out: TextIO = sys.stdout) -> int:
    from .load import ScenarioError, load

    status = 0
    for path in paths:
        try:
            loaded = load(path)
        except ScenarioError as exc:
            for line in exc.errors:
                print(line, file=sys.stderr)
            status = 2
            continue
        actions = Counter(step.action() for step in loaded.scenario.steps)
        print(f"{path}: ok, {len(loaded.scenario.steps)} steps ("
              + ", ".join(f"{n} {a}" for a, n in actions.items()) + ")", file=out)
    return status


__all__ = ["Runner", "check_files", "generate", "play", "run_file"]
